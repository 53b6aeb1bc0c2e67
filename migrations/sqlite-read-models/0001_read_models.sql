-- The read models' own file (`medledger.read-models.db` beside `medledger.db`).
--
-- Read models and their checkpoints live apart from the event log so that
-- applying them never waits for the log's one writer, nor the log's appends for
-- them: each SQLite file has its own write lock. Everything here is rebuilt
-- from the log (a new file starts every projection at position 0), so a
-- database made before the split loses nothing: its read models are applied
-- again here, and migration 0011 of the log drops the old copies there.
--
-- This is the schema the log's migrations 0001-0010 had built for these tables;
-- later read-model changes are migrations in this folder.

CREATE TABLE projection_checkpoints (
    name     TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL
);

CREATE TABLE rm_audit_log (
    position    INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    actor       TEXT,
    alliance_id TEXT,
    hospital_id TEXT,
    client      TEXT,
    recorded_at TEXT NOT NULL
);

CREATE INDEX rm_audit_log_stream ON rm_audit_log (stream_id, position);

CREATE INDEX rm_audit_log_type ON rm_audit_log (event_type, position);

CREATE INDEX rm_audit_log_actor ON rm_audit_log (actor, position);

CREATE INDEX rm_audit_log_hospital ON rm_audit_log (hospital_id, position);

CREATE INDEX rm_audit_log_time ON rm_audit_log (recorded_at);

CREATE TABLE rm_accounts (
    account_id          TEXT PRIMARY KEY,
    login               TEXT NOT NULL,
    display_name        TEXT,
    display_name_erased BOOLEAN NOT NULL DEFAULT FALSE,
    role                TEXT NOT NULL,
    alliance_id         TEXT,
    hospital_id         TEXT,
    registered_at       TEXT NOT NULL,
    last_login_at       TEXT,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    phone TEXT,
    phone_erased BOOLEAN NOT NULL DEFAULT FALSE,
    department_id TEXT,
    title TEXT,
    roles TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'active',
    frozen_until TEXT,
    password_changed_at TEXT,
    search_text TEXT NOT NULL DEFAULT ''
);

CREATE INDEX rm_accounts_login ON rm_accounts (login);

CREATE INDEX rm_accounts_alliance ON rm_accounts (alliance_id, login);

CREATE INDEX rm_accounts_hospital ON rm_accounts (hospital_id, login);

CREATE INDEX rm_accounts_department ON rm_accounts (department_id, login);

CREATE TABLE rm_alliances (
    alliance_id TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE rm_hospitals (
    hospital_id       TEXT PRIMARY KEY,
    alliance_id       TEXT NOT NULL,
    name              TEXT NOT NULL,
    code              TEXT NOT NULL,
    address           TEXT NOT NULL,
    time_zone         TEXT NOT NULL,
    qr_url            TEXT,
    logo_blob_key     TEXT,
    logo_content_type TEXT,
    logo_sha256       TEXT,
    registered_at     TEXT NOT NULL
);

CREATE INDEX rm_hospitals_alliance ON rm_hospitals (alliance_id, name);

CREATE TABLE rm_departments (
    department_id TEXT PRIMARY KEY,
    hospital_id   TEXT NOT NULL,
    name          TEXT NOT NULL,
    phone         TEXT,
    created_at    TEXT NOT NULL
);

CREATE INDEX rm_departments_hospital ON rm_departments (hospital_id, name);

CREATE TABLE rm_roles (
    role_id     TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- JSON array of permission names, sorted
    permissions TEXT NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT FALSE,
    defined_at  TEXT NOT NULL
);

CREATE INDEX rm_roles_hospital ON rm_roles (hospital_id, name);

CREATE TABLE rm_sessions (
    session_id     TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    client         TEXT NOT NULL,
    method         TEXT,
    started_at     TEXT NOT NULL,
    last_active_at TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    ended_at       TEXT,
    end_reason     TEXT
);

CREATE INDEX rm_sessions_account ON rm_sessions (account_id, started_at);

CREATE INDEX rm_audit_log_alliance ON rm_audit_log (alliance_id, position);

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
    instance_count     INTEGER NOT NULL DEFAULT 0,
    size_bytes         INTEGER NOT NULL DEFAULT 0,
    duplicates         INTEGER NOT NULL DEFAULT 0,
    conflicts          INTEGER NOT NULL DEFAULT 0,
    received_at        TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    -- lower-cased patient name, patient id and accession for keyword search
    search_text        TEXT NOT NULL DEFAULT '',
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    storage_tier TEXT NOT NULL DEFAULT 'online',
    objects_erased BOOLEAN NOT NULL DEFAULT FALSE,
    printed_at TEXT
);

CREATE INDEX rm_worklist_hospital_time ON rm_worklist (hospital_id, study_datetime, study_key);

CREATE INDEX rm_worklist_alliance_time ON rm_worklist (alliance_id, study_datetime, study_key);

CREATE INDEX rm_worklist_subject ON rm_worklist (patient_subject);

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
    received_at         TEXT NOT NULL,
    metadata TEXT,
    patient_subject TEXT,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    storage_tier TEXT NOT NULL DEFAULT 'online',
    erased BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX rm_instances_study ON rm_instances (hospital_id, study_instance_uid, series_instance_uid, instance_number);

CREATE INDEX rm_instances_subject ON rm_instances (patient_subject);

CREATE TABLE rm_study_shares (
    share_id           TEXT PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    shared_with        TEXT NOT NULL,
    shared_by          TEXT NOT NULL,
    note               TEXT,
    shared_at          TEXT NOT NULL
);

CREATE INDEX rm_study_shares_user ON rm_study_shares (shared_with, shared_at);

CREATE TABLE rm_notifications (
    notification_id TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE INDEX rm_notifications_user ON rm_notifications (user_id, created_at);

CREATE TABLE rm_storage_plans (
    hospital_id      TEXT PRIMARY KEY,
    billing_unit     TEXT NOT NULL,
    resource_package TEXT NOT NULL,
    validity_months  INTEGER NOT NULL
);

CREATE TABLE rm_storage_usage (
    hospital_id TEXT PRIMARY KEY,
    alliance_id TEXT,
    bytes       INTEGER NOT NULL DEFAULT 0,
    instances   INTEGER NOT NULL DEFAULT 0,
    studies     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE rm_storage_studies (
    study_key TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    bytes     INTEGER NOT NULL DEFAULT 0,
    instances INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE rm_upload_log (
    position           INTEGER PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    alliance_id        TEXT,
    study_instance_uid TEXT NOT NULL,
    sop_instance_uid   TEXT NOT NULL,
    size_bytes         INTEGER NOT NULL,
    arrival            TEXT NOT NULL,
    billing_unit       TEXT NOT NULL,
    billing_subject    TEXT NOT NULL,
    resource_package   TEXT NOT NULL,
    valid_until        TEXT NOT NULL,
    uploaded_at        TEXT NOT NULL
);

CREATE INDEX rm_upload_log_hospital ON rm_upload_log (hospital_id, position);

CREATE INDEX rm_upload_log_alliance ON rm_upload_log (alliance_id, position);

CREATE TABLE rm_worklist_columns (
    user_id TEXT PRIMARY KEY,
    columns TEXT NOT NULL
);

CREATE TABLE rm_dicom_peers (
    ae_title    TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    alliance_id TEXT,
    description TEXT,
    registered_at TEXT NOT NULL
);

CREATE TABLE rm_reports (
    report_id          TEXT PRIMARY KEY,
    hospital_id        TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    patient_subject    TEXT,
    template_id        TEXT,
    status             TEXT NOT NULL DEFAULT 'draft',
    version            INTEGER NOT NULL DEFAULT 1,
    critical           BOOLEAN NOT NULL DEFAULT FALSE,
    created_by         TEXT NOT NULL,
    last_editor        TEXT,
    preliminary_by     TEXT,
    preliminary_at     TEXT,
    reviewed_by        TEXT,
    reviewed_at        TEXT,
    sent_back_reason   TEXT,
    lock_holder        TEXT,
    lock_since         TEXT,
    print_count        INTEGER NOT NULL DEFAULT 0,
    printed_at         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE UNIQUE INDEX rm_reports_study ON rm_reports (hospital_id, study_instance_uid);

CREATE INDEX rm_reports_hospital_time ON rm_reports (hospital_id, updated_at, report_id);

CREATE INDEX rm_reports_subject ON rm_reports (patient_subject);

CREATE TABLE rm_report_templates (
    template_id  TEXT PRIMARY KEY,
    hospital_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    modality     TEXT NOT NULL DEFAULT '',
    body_part    TEXT NOT NULL DEFAULT '',
    exam_item    TEXT NOT NULL DEFAULT '',
    departments  TEXT NOT NULL DEFAULT '[]',
    spec         TEXT NOT NULL,
    retired      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at   TEXT NOT NULL
);

CREATE INDEX rm_report_templates_hospital ON rm_report_templates (hospital_id, name);

CREATE TABLE rm_knowledge (
    entry_id     TEXT PRIMARY KEY,
    hospital_id  TEXT NOT NULL,
    owner_id     TEXT,
    title        TEXT NOT NULL,
    findings     TEXT NOT NULL DEFAULT '',
    impression   TEXT NOT NULL DEFAULT '',
    tags         TEXT NOT NULL DEFAULT '[]',
    modality     TEXT NOT NULL DEFAULT '',
    body_part    TEXT NOT NULL DEFAULT '',
    retired      BOOLEAN NOT NULL DEFAULT FALSE,
    usage_count  INTEGER NOT NULL DEFAULT 0,
    search_text  TEXT NOT NULL DEFAULT '',
    updated_at   TEXT NOT NULL
);

CREATE INDEX rm_knowledge_hospital ON rm_knowledge (hospital_id, title);

CREATE VIRTUAL TABLE rm_worklist_fts USING fts5(
    search_text, content='rm_worklist', content_rowid='rowid', tokenize='trigram'
);

CREATE TRIGGER rm_worklist_fts_insert AFTER INSERT ON rm_worklist BEGIN
    INSERT INTO rm_worklist_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TRIGGER rm_worklist_fts_delete AFTER DELETE ON rm_worklist BEGIN
    INSERT INTO rm_worklist_fts (rm_worklist_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;

CREATE TRIGGER rm_worklist_fts_update AFTER UPDATE OF search_text ON rm_worklist BEGIN
    INSERT INTO rm_worklist_fts (rm_worklist_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO rm_worklist_fts (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE INDEX rm_worklist_patient_id ON rm_worklist (hospital_id, patient_id);

CREATE INDEX rm_worklist_accession ON rm_worklist (hospital_id, accession_number);

CREATE TABLE rm_prior_sharing (
    hospital_id  TEXT PRIMARY KEY,
    alliance_id  TEXT NOT NULL,
    -- none | studies | studies_and_reports
    sharing      TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE INDEX rm_prior_sharing_alliance ON rm_prior_sharing (alliance_id, sharing);

CREATE INDEX rm_knowledge_usage ON rm_knowledge (hospital_id, usage_count, title, entry_id);
