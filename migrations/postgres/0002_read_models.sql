-- Read models: each table belongs to exactly one projection.

-- projection audit_log
CREATE TABLE rm_audit_log (
    position    BIGINT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    actor       TEXT,
    alliance_id TEXT,
    hospital_id TEXT,
    client      TEXT,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX rm_audit_log_stream ON rm_audit_log (stream_id, position);
CREATE INDEX rm_audit_log_type ON rm_audit_log (event_type, position);
CREATE INDEX rm_audit_log_actor ON rm_audit_log (actor, position);
CREATE INDEX rm_audit_log_hospital ON rm_audit_log (hospital_id, position);
CREATE INDEX rm_audit_log_time ON rm_audit_log (recorded_at);

-- projection accounts
CREATE TABLE rm_accounts (
    account_id          TEXT PRIMARY KEY,
    login               TEXT NOT NULL,
    display_name        TEXT,
    display_name_erased BOOLEAN NOT NULL DEFAULT FALSE,
    role                TEXT NOT NULL,
    alliance_id         TEXT,
    hospital_id         TEXT,
    registered_at       TIMESTAMPTZ NOT NULL,
    last_login_at       TIMESTAMPTZ,
    failed_logins       BIGINT NOT NULL DEFAULT 0
);
