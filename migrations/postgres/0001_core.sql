-- The event log and what is written in the same transaction as appends.
CREATE TABLE events (
    global_position BIGINT      PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  INT         NOT NULL,
    payload         TEXT        NOT NULL,
    metadata        TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    hash            TEXT        NOT NULL,
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE streams (
    stream_id TEXT   PRIMARY KEY,
    version   BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);

-- The single row every append transaction locks first: positions are handed
-- out in commit order (see commands/src/store/postgres.rs).
CREATE TABLE position_counter (
    id            INT    PRIMARY KEY CHECK (id = 1),
    last_position BIGINT NOT NULL
);
INSERT INTO position_counter (id, last_position) VALUES (1, 0);

CREATE TABLE guards (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE seals (
    position     BIGINT      PRIMARY KEY,
    running_hash TEXT        NOT NULL,
    sealed_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE relay_checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE subject_keys (
    subject_id   TEXT        PRIMARY KEY,
    key_id       TEXT        NOT NULL,
    wrapped_key  BYTEA,
    created_at   TIMESTAMPTZ NOT NULL,
    destroyed_at TIMESTAMPTZ
);

CREATE TABLE idempotency_keys (
    scope        TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    status       BIGINT,
    headers      TEXT,
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE projection_checkpoints (
    name     TEXT   PRIMARY KEY,
    version  BIGINT NOT NULL,
    position BIGINT NOT NULL
);
