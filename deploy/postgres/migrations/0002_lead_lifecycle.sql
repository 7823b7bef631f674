-- ingest as the system of record for each lead's life: owner, stage, timeline, merges.

-- The lead's current owner and stage, kept from leads.assigned and crm.stage-changes.
-- closed_at is set when the lead is won or lost; person-level dedupe merges only into
-- open leads, and a person whose last lead closed comes back as a returning lead.
ALTER TABLE leads
    ADD COLUMN stage            text NOT NULL DEFAULT 'new',
    ADD COLUMN stage_changed_at timestamptz,
    ADD COLUMN owner_id         text,
    ADD COLUMN closed_at        timestamptz;

DROP INDEX leads_email_key;
DROP INDEX leads_phone_key;
CREATE INDEX leads_email_key ON leads (email_key, accepted_at) WHERE email_key IS NOT NULL;
CREATE INDEX leads_phone_key ON leads (phone_key, accepted_at) WHERE phone_key IS NOT NULL;

-- A record of the same person arriving while their lead was open: merged, not lost.
-- The merged record's normalised data is kept here (it is personal data, like leads).
CREATE TABLE lead_merges (
    raw_topic      text NOT NULL,
    raw_partition  integer NOT NULL,
    raw_offset     bigint NOT NULL,
    lead_id        text NOT NULL REFERENCES leads (lead_id),
    matched_on     text NOT NULL CHECK (matched_on IN ('email', 'phone')),
    source         text NOT NULL,
    source_lead_id text NOT NULL,
    -- The lead id the record would have had (derived from source and source_lead_id):
    -- a later copy of the record finds the lead it was merged into through it.
    proposed_lead_id text NOT NULL,
    payload        jsonb NOT NULL,
    merged_at      timestamptz NOT NULL,
    PRIMARY KEY (raw_topic, raw_partition, raw_offset)
);
CREATE INDEX lead_merges_lead ON lead_merges (lead_id);
CREATE INDEX lead_merges_proposed ON lead_merges (proposed_lead_id);

-- The timeline a manager reviews: every CRM activity and stage change, once.
CREATE TABLE lead_activities (
    event_id          text PRIMARY KEY,
    lead_id           text NOT NULL REFERENCES leads (lead_id),
    rep_id            text NOT NULL,
    kind              text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    outcome           text,
    next_followup_at  timestamptz,
    recorded_at       timestamptz NOT NULL
);
CREATE INDEX lead_activities_lead ON lead_activities (lead_id, occurred_at);

CREATE TABLE lead_stage_changes (
    event_id             text PRIMARY KEY,
    lead_id              text NOT NULL REFERENCES leads (lead_id),
    stage                text NOT NULL,
    occurred_at          timestamptz NOT NULL,
    rep_id               text NOT NULL,
    amount               double precision,
    expected_close_date  date,
    loss_reason          text,
    recorded_at          timestamptz NOT NULL
);
CREATE INDEX lead_stage_changes_lead ON lead_stage_changes (lead_id, occurred_at);

-- Ownership changes seen on leads.assigned (dedupe of redeliveries, and history).
CREATE TABLE lead_ownership (
    event_id     text PRIMARY KEY,
    lead_id      text NOT NULL REFERENCES leads (lead_id),
    owner_id     text,
    kind         text NOT NULL,
    assigned_at  timestamptz NOT NULL
);

-- CRM records ingest could not use, with the reason (the bytes are on crm.rejected).
CREATE TABLE crm_rejects (
    raw_topic      text NOT NULL,
    raw_partition  integer NOT NULL,
    raw_offset     bigint NOT NULL,
    reason         text NOT NULL,
    detail         text NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (raw_topic, raw_partition, raw_offset)
);
