-- projection reports: one row per diagnostic report (one report per study).
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

-- projection report_templates
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

-- projection knowledge
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

-- the worklist shows when a study's report was last printed.
ALTER TABLE rm_worklist ADD COLUMN printed_at TEXT;
