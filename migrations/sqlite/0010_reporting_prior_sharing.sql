-- projection reports: what each hospital lets the other hospitals of its
-- alliance see of its studies as priors (PriorSharingChanged); no row = none.
CREATE TABLE rm_prior_sharing (
    hospital_id  TEXT PRIMARY KEY,
    alliance_id  TEXT NOT NULL,
    -- none | studies | studies_and_reports
    sharing      TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX rm_prior_sharing_alliance ON rm_prior_sharing (alliance_id, sharing);

-- The knowledge base is paged most used first, then by title.
CREATE INDEX rm_knowledge_usage ON rm_knowledge (hospital_id, usage_count, title, entry_id);
