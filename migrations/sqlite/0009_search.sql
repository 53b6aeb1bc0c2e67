-- Keyword search of the worklist (patient name, patient ID, accession number):
-- an FTS5 trigram index over rm_worklist.search_text, kept in step by triggers,
-- so a substring search does not scan every study. Lookups by patient ID and
-- accession number (QIDO-RS) use plain indexes.
CREATE VIRTUAL TABLE rm_worklist_fts USING fts5(
    search_text, content='rm_worklist', content_rowid='rowid', tokenize='trigram'
);
INSERT INTO rm_worklist_fts (rowid, search_text) SELECT rowid, search_text FROM rm_worklist;
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
