-- projection instances: every stored instance, for DICOMweb retrieval and
-- series/instance-level queries.
CREATE TABLE rm_instances (
    instance_key        TEXT PRIMARY KEY,
    hospital_id         TEXT NOT NULL,
    study_instance_uid  TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    sop_instance_uid    TEXT NOT NULL,
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    modality            TEXT,
    series_number       INTEGER,
    series_description  TEXT,
    instance_number     INTEGER,
    rows_count          INTEGER,
    columns_count       INTEGER,
    number_of_frames    INTEGER NOT NULL DEFAULT 1,
    blob_key            TEXT NOT NULL,
    size_bytes          INTEGER NOT NULL,
    received_at         TEXT NOT NULL
);
CREATE INDEX rm_instances_study ON rm_instances (hospital_id, study_instance_uid, series_instance_uid, instance_number);
