-- The silence sweep's candidates: when an owned, open lead that is not silent yet last
-- moved (assignment, touch, stage change), and its team, whose calendar counts the
-- business days. NULL for every other lead. Leads stored before this migration get
-- their value with their next fact.
ALTER TABLE metric_leads ADD COLUMN quiet_since timestamptz, ADD COLUMN team text;
CREATE INDEX metric_leads_quiet ON metric_leads (quiet_since, lead_id)
    WHERE quiet_since IS NOT NULL;
