-- Customer satisfaction (客户满意度) from crm.satisfaction, part of the lead's timeline:
-- one row per event_id (a redelivery changes nothing). The contract carries no comment
-- text, so there is nothing here for an erasure to remove.
CREATE TABLE lead_satisfaction (
    event_id     text PRIMARY KEY,
    lead_id      text NOT NULL REFERENCES leads (lead_id),
    rep_id       text,
    score        smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    survey_id    text,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX lead_satisfaction_lead ON lead_satisfaction (lead_id, occurred_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON lead_satisfaction TO leadloop_ingest;
