-- projection worklist: one row per study of a hospital.
CREATE TABLE rm_worklist (
    study_key          TEXT PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    alliance_id        TEXT,
    study_instance_uid TEXT NOT NULL,
    patient_subject    TEXT NOT NULL,
    patient_id         TEXT,
    patient_name       TEXT,
    patient_sex        TEXT,
    patient_birth_date TEXT,
    patient_erased     BOOLEAN NOT NULL DEFAULT FALSE,
    modalities         TEXT NOT NULL DEFAULT '',
    body_part          TEXT,
    study_description  TEXT,
    study_date         TEXT,
    study_time         TEXT,
    -- YYYYMMDDHHMMSS (missing parts as zeros): sorts as text.
    study_datetime     TEXT NOT NULL,
    accession_number   TEXT,
    referring_physician TEXT,
    institution        TEXT,
    status             TEXT NOT NULL DEFAULT 'received',
    instance_count     BIGINT NOT NULL DEFAULT 0,
    size_bytes         BIGINT NOT NULL DEFAULT 0,
    duplicates         BIGINT NOT NULL DEFAULT 0,
    conflicts          BIGINT NOT NULL DEFAULT 0,
    received_at        TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    -- lower-cased patient name, patient id and accession for keyword search
    search_text        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rm_worklist_hospital_time ON rm_worklist (hospital_id, study_datetime, study_key);
CREATE INDEX rm_worklist_alliance_time ON rm_worklist (alliance_id, study_datetime, study_key);
CREATE INDEX rm_worklist_subject ON rm_worklist (patient_subject);
