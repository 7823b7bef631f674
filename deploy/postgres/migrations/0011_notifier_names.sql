-- A team may opt into the lead's name in its notices (config/notify.yaml
-- `include_name: true`). The notifier then reads the name from leads at render time —
-- the name column only, with lead_id and erased_at to skip erased leads; not email,
-- phone, company or the dedupe keys — and records every read in notifier_name_reads,
-- in the same transaction as the read. Names are never copied into the notifier's own
-- tables (outbox payloads stay PII-free), logs or metrics.
GRANT SELECT (lead_id, name, erased_at) ON leads TO leadloop_notifier;

-- One row per lead name put in a message: which lead, to whom, when (service time).
CREATE TABLE notifier_name_reads (
    read_id    bigserial PRIMARY KEY,
    lead_id    text NOT NULL,
    recipient  text NOT NULL,
    read_at    timestamptz NOT NULL
);
CREATE INDEX notifier_name_reads_lead ON notifier_name_reads (lead_id, read_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON notifier_name_reads TO leadloop_notifier;
GRANT USAGE ON SEQUENCE notifier_name_reads_read_id_seq TO leadloop_notifier;
