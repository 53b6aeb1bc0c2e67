-- Keyword search of the worklist (patient name, patient ID, accession number):
-- a trigram GIN index serves `search_text LIKE '%…%'` without scanning every
-- study. Lookups by patient ID and accession number (QIDO-RS) use plain indexes.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX rm_worklist_search_trgm ON rm_worklist USING gin (search_text gin_trgm_ops);
CREATE INDEX rm_worklist_name_trgm ON rm_worklist USING gin (LOWER(patient_name) gin_trgm_ops);
CREATE INDEX rm_worklist_patient_id ON rm_worklist (hospital_id, patient_id);
CREATE INDEX rm_worklist_accession ON rm_worklist (hospital_id, accession_number);
