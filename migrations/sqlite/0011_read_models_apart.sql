-- Read models moved to a file of their own (`medledger.read-models.db`, with
-- its own migrations in migrations/sqlite-read-models): they are rebuilt there
-- from the log, so the copies here are dropped. Durable side tables (subject
-- keys, idempotency records, the notification outbox, seals, relay
-- checkpoints) stay beside the log.
DROP TRIGGER IF EXISTS rm_worklist_fts_insert;
DROP TRIGGER IF EXISTS rm_worklist_fts_delete;
DROP TRIGGER IF EXISTS rm_worklist_fts_update;
DROP TABLE IF EXISTS rm_worklist_fts;
DROP TABLE IF EXISTS projection_checkpoints;
DROP TABLE IF EXISTS rm_audit_log;
DROP TABLE IF EXISTS rm_accounts;
DROP TABLE IF EXISTS rm_alliances;
DROP TABLE IF EXISTS rm_hospitals;
DROP TABLE IF EXISTS rm_departments;
DROP TABLE IF EXISTS rm_roles;
DROP TABLE IF EXISTS rm_sessions;
DROP TABLE IF EXISTS rm_worklist;
DROP TABLE IF EXISTS rm_instances;
DROP TABLE IF EXISTS rm_study_shares;
DROP TABLE IF EXISTS rm_notifications;
DROP TABLE IF EXISTS rm_storage_plans;
DROP TABLE IF EXISTS rm_storage_usage;
DROP TABLE IF EXISTS rm_storage_studies;
DROP TABLE IF EXISTS rm_upload_log;
DROP TABLE IF EXISTS rm_worklist_columns;
DROP TABLE IF EXISTS rm_dicom_peers;
DROP TABLE IF EXISTS rm_reports;
DROP TABLE IF EXISTS rm_report_templates;
DROP TABLE IF EXISTS rm_knowledge;
DROP TABLE IF EXISTS rm_prior_sharing;
