-- A lead's ownership history looked up by lead: ingest keeps leads.owner_id from the
-- newest leads.assigned event (a NOT EXISTS over the lead's later ownership rows), and
-- hand-off reads a lead's ownership when it hands the lead to the CRM. Without this
-- index each lookup read the whole table, so every assignment cost more than the one
-- before it. Building it blocks writes to the table while it runs; on a large
-- installation create it CONCURRENTLY by hand first, under this name, and this
-- migration then finds it in place.
CREATE INDEX IF NOT EXISTS lead_ownership_lead ON lead_ownership (lead_id, assigned_at);
