-- leadloop foundation schema. Forward-only: never edit an applied file, add a new one.
-- Each service writes only its own tables (prefix by owner below); effects are made
-- exactly-once by the unique keys here, not by Kafka.

-- ingest -------------------------------------------------------------------------
-- The system of record for leads, including their personal data.
CREATE TABLE leads (
    lead_id          text PRIMARY KEY,
    source           text NOT NULL,
    source_lead_id   text NOT NULL,
    email            text,
    phone            text,
    name             text,
    company          text,
    title            text,
    country          text,
    region           text,
    city             text,
    industry         text,
    product          text,
    company_size     integer,
    budget           double precision,
    campaign         text,
    message          text,
    attributes       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Keyed HMACs (secret pepper) of the normalised email and phone: dedupe keys that
    -- cannot be reversed by hashing a list of known addresses.
    email_key        text,
    phone_key        text,
    score            smallint NOT NULL CHECK (score BETWEEN 0 AND 100),
    priority         text NOT NULL CHECK (priority IN ('hot', 'warm', 'cold')),
    is_returning     boolean NOT NULL DEFAULT false,
    previous_owner_id text,
    occurred_at      timestamptz NOT NULL,
    accepted_at      timestamptz NOT NULL,
    accepted_event_id text NOT NULL UNIQUE,
    -- The leads.raw record that created the lead.
    raw_partition    integer NOT NULL,
    raw_offset       bigint NOT NULL,
    UNIQUE (source, source_lead_id)
);
CREATE INDEX leads_email_key ON leads (email_key) WHERE email_key IS NOT NULL;
CREATE INDEX leads_phone_key ON leads (phone_key) WHERE phone_key IS NOT NULL;

-- One row per leads.raw record: how it ended. Conservation (received = accepted +
-- duplicate + rejected) is checked against this table; the primary key makes a
-- redelivered record recognisable.
CREATE TABLE ingest_outcomes (
    raw_topic      text NOT NULL,
    raw_partition  integer NOT NULL,
    raw_offset     bigint NOT NULL,
    source         text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'rejected')),
    reason         text,
    detail         text,
    lead_id        text REFERENCES leads (lead_id),
    event_id       text NOT NULL UNIQUE,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (raw_topic, raw_partition, raw_offset)
);
CREATE INDEX ingest_outcomes_source ON ingest_outcomes (source, outcome);

-- assignment ---------------------------------------------------------------------
CREATE TABLE assignments (
    assignment_id     text PRIMARY KEY,
    lead_id           text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('initial', 'reassigned', 'reclaimed', 'pooled')),
    owner_id          text,
    team_id           text NOT NULL,
    rule_id           text NOT NULL,
    rule_version      text NOT NULL,
    strategy          text NOT NULL,
    previous_owner_id text,
    reason            jsonb NOT NULL,
    priority          text NOT NULL,
    lead_occurred_at  timestamptz NOT NULL,
    assigned_at       timestamptz NOT NULL,
    event_id          text NOT NULL UNIQUE,
    -- The leads.accepted event that caused it: a redelivery finds this row.
    cause_event_id    text NOT NULL
);
-- Exactly one first decision per lead: an initial owner or an explicit pooling.
CREATE UNIQUE INDEX assignments_one_initial ON assignments (lead_id)
    WHERE kind IN ('initial', 'pooled');
CREATE UNIQUE INDEX assignments_cause ON assignments (cause_event_id, kind);
CREATE INDEX assignments_owner ON assignments (owner_id);

-- Round-robin position per team: the last rep served. Rotation resumes after that rep
-- in rep-id order, so a roster change neither resets nor skews the rotation.
CREATE TABLE rotation_cursors (
    team_id      text PRIMARY KEY,
    last_rep_id  text NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- Open-lead load per rep, changed in the same transaction as the assignment.
CREATE TABLE rep_load (
    rep_id          text PRIMARY KEY,
    team_id         text NOT NULL,
    open_leads      integer NOT NULL DEFAULT 0 CHECK (open_leads >= 0),
    assigned_total  bigint NOT NULL DEFAULT 0
);

-- sla-monitor --------------------------------------------------------------------
-- One clock per lead, kind and cycle. The cycle is the id of the assignment that
-- started it, so a reassignment starts a new cycle and a redelivery finds the old one.
CREATE TABLE sla_clocks (
    lead_id      text NOT NULL,
    kind         text NOT NULL,
    cycle        text NOT NULL,
    policy_id    text NOT NULL,
    owner_id     text,
    team_id      text NOT NULL,
    manager_id   text,
    started_at   timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    -- The next ladder level to fire (levels below it have fired) and when it is due;
    -- due_at is 'infinity' once the ladder is exhausted.
    next_level   integer NOT NULL DEFAULT 1,
    stopped_at   timestamptz,
    stop_reason  text,
    PRIMARY KEY (lead_id, kind, cycle)
);
-- The due-time index: the ticker reads only clocks that are due, never all of them.
CREATE INDEX sla_clocks_due ON sla_clocks (due_at) WHERE stopped_at IS NULL;

-- Every escalation step, once (escalation_id is deterministic). Also the outbox:
-- a row is published to sla.escalations until published_at is set.
CREATE TABLE escalations (
    escalation_id  text NOT NULL,
    status         text NOT NULL CHECK (status IN ('firing', 'resolved')),
    event_id       text NOT NULL UNIQUE,
    lead_id        text NOT NULL,
    owner_id       text,
    team_id        text NOT NULL,
    manager_id     text,
    policy_id      text NOT NULL,
    kind           text NOT NULL,
    level          integer NOT NULL,
    action         text NOT NULL,
    due_at         timestamptz NOT NULL,
    breached_at    timestamptz NOT NULL,
    occurred_at    timestamptz NOT NULL,
    published_at   timestamptz,
    PRIMARY KEY (escalation_id, status)
);
CREATE INDEX escalations_unpublished ON escalations (occurred_at) WHERE published_at IS NULL;

-- The latest touch per lead: an activity can arrive before the assignment it answers
-- (they travel on different topics), and must still stop that clock.
CREATE TABLE sla_lead_touches (
    lead_id        text PRIMARY KEY,
    last_touch_at  timestamptz NOT NULL
);

-- Input events sla-monitor has applied (dedupe of redeliveries).
CREATE TABLE sla_applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL
);

-- metrics ------------------------------------------------------------------------
-- Every event folded into the counters, once. The counter values change in the same
-- transaction, so a redelivered event never counts twice.
CREATE TABLE metric_applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL
);

CREATE TABLE metric_values (
    metric  text NOT NULL,
    labels  jsonb NOT NULL,
    value   double precision NOT NULL,
    PRIMARY KEY (metric, labels)
);
