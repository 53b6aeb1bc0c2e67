-- WADO-RS /metadata from the database: each instance's data set as DICOM JSON
-- (decrypted copy of the sealed event field; erased with the patient).
ALTER TABLE rm_instances ADD COLUMN metadata TEXT;
ALTER TABLE rm_instances ADD COLUMN patient_subject TEXT;
ALTER TABLE rm_instances ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
-- 'online', 'archived'
ALTER TABLE rm_instances ADD COLUMN storage_tier TEXT NOT NULL DEFAULT 'online';
ALTER TABLE rm_instances ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX rm_instances_subject ON rm_instances (patient_subject);

ALTER TABLE rm_worklist ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
-- 'online', 'archived'
ALTER TABLE rm_worklist ADD COLUMN storage_tier TEXT NOT NULL DEFAULT 'online';
ALTER TABLE rm_worklist ADD COLUMN objects_erased BOOLEAN NOT NULL DEFAULT FALSE;

-- projection study_sharing: studies shown to colleagues, and each user's notifications.
CREATE TABLE rm_study_shares (
    share_id           TEXT PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    shared_with        TEXT NOT NULL,
    shared_by          TEXT NOT NULL,
    note               TEXT,
    shared_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX rm_study_shares_user ON rm_study_shares (shared_with, shared_at);
CREATE TABLE rm_notifications (
    notification_id TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX rm_notifications_user ON rm_notifications (user_id, created_at);

-- projection storage: bytes and counts per hospital, and one upload-log row per arrival.
CREATE TABLE rm_storage_plans (
    hospital_id      TEXT PRIMARY KEY,
    billing_unit     TEXT NOT NULL,
    resource_package TEXT NOT NULL,
    validity_months  BIGINT NOT NULL
);
CREATE TABLE rm_storage_usage (
    hospital_id TEXT PRIMARY KEY,
    alliance_id TEXT,
    bytes       BIGINT NOT NULL DEFAULT 0,
    instances   BIGINT NOT NULL DEFAULT 0,
    studies     BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rm_storage_studies (
    study_key TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    bytes     BIGINT NOT NULL DEFAULT 0,
    instances BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rm_upload_log (
    position           BIGINT PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    alliance_id        TEXT,
    study_instance_uid TEXT NOT NULL,
    sop_instance_uid   TEXT NOT NULL,
    size_bytes         BIGINT NOT NULL,
    arrival            TEXT NOT NULL,
    billing_unit       TEXT NOT NULL,
    billing_subject    TEXT NOT NULL,
    resource_package   TEXT NOT NULL,
    valid_until        TEXT NOT NULL,
    uploaded_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX rm_upload_log_hospital ON rm_upload_log (hospital_id, position);
CREATE INDEX rm_upload_log_alliance ON rm_upload_log (alliance_id, position);

-- projection preferences: each user's worklist columns (JSON array, in order).
CREATE TABLE rm_worklist_columns (
    user_id TEXT PRIMARY KEY,
    columns TEXT NOT NULL
);

-- projection dicom_peers: calling AE titles registered per hospital.
CREATE TABLE rm_dicom_peers (
    ae_title    TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    alliance_id TEXT,
    description TEXT,
    registered_at TIMESTAMPTZ NOT NULL
);
