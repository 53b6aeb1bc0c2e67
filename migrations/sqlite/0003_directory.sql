-- The directory: accounts (version 2 of that projection), the organization
-- tree and sessions. Each table belongs to exactly one projection.

-- projection accounts (version 2 rebuilds it, filling the new columns)
ALTER TABLE rm_accounts ADD COLUMN phone TEXT;
ALTER TABLE rm_accounts ADD COLUMN phone_erased BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rm_accounts ADD COLUMN department_id TEXT;
ALTER TABLE rm_accounts ADD COLUMN title TEXT;
ALTER TABLE rm_accounts ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE rm_accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE rm_accounts ADD COLUMN frozen_until TEXT;
ALTER TABLE rm_accounts ADD COLUMN password_changed_at TEXT;
-- lower(login || ' ' || name || ' ' || phone) without erased parts
ALTER TABLE rm_accounts ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX rm_accounts_login ON rm_accounts (login);
CREATE INDEX rm_accounts_alliance ON rm_accounts (alliance_id, login);
CREATE INDEX rm_accounts_hospital ON rm_accounts (hospital_id, login);
CREATE INDEX rm_accounts_department ON rm_accounts (department_id, login);

-- projection organization
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

-- projection sessions
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
