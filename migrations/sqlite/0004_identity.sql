-- The embedded notification channel: messages a real SMS/e-mail sender
-- would deliver (reset codes). Not a read model: written by the notifier.
CREATE TABLE notification_outbox (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    channel    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notification_outbox_account ON notification_outbox (account_id, created_at);

-- The operation log of an alliance is filtered by alliance.
CREATE INDEX rm_audit_log_alliance ON rm_audit_log (alliance_id, position);
