-- The event log and what is written in the same transaction as appends.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    hash            TEXT    NOT NULL,
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE streams (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);

-- Uniqueness guards (login names, session token hashes, …).
CREATE TABLE guards (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Global seals: running hash over all event hashes up to a position.
CREATE TABLE seals (
    position     INTEGER PRIMARY KEY,
    running_hash TEXT NOT NULL,
    sealed_at    TEXT NOT NULL
);

CREATE TABLE relay_checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Per-subject data keys, wrapped by the master key. Forgetting a subject
-- sets wrapped_key to NULL: the key is gone, the log stays whole.
CREATE TABLE subject_keys (
    subject_id   TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    wrapped_key  BLOB,
    created_at   TEXT NOT NULL,
    destroyed_at TEXT
);

-- Idempotency-Key records for POST commands.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    headers      TEXT,
    body         BLOB,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Projection checkpoints, written in the same transaction as their effect.
CREATE TABLE projection_checkpoints (
    name     TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    position INTEGER NOT NULL
);
