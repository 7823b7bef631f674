-- The notifier: what it has seen (roster, leads, escalations), the outbox of notices and
-- the send schedule. Every table is granted to leadloop_notifier only (0008's rule). The
-- notifier reads no personal data of leads: lead facts it shows come from the PII-free
-- leads.accepted topic. It does hold reps' contact addresses (crm.reps `contacts`),
-- which is why it has a role of its own.

-- Input events already applied (consumer-side dedupe). Written in the same transaction
-- as the notices an event produces, so a redelivered event changes nothing.
CREATE TABLE notifier_applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL
);

-- The roster as crm.reps last said it: who manages whom, the team (its calendar, its
-- templates) and where a rep is reached (channel name -> address).
CREATE TABLE notifier_reps (
    rep_id      text PRIMARY KEY,
    team_id     text NOT NULL,
    manager_id  text,
    status      text NOT NULL,
    timezone    text NOT NULL,
    contacts    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL
);

-- Leads as the notifier has seen them: non-personal facts from leads.accepted, the owner
-- from leads.assigned, the stage from crm.stage-changes. Feeds the digest.
CREATE TABLE notifier_leads (
    lead_id      text PRIMARY KEY,
    facts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    owner_id     text,
    team_id      text,
    sequence     integer NOT NULL DEFAULT -1,
    assigned_at  timestamptz,
    stage        text NOT NULL DEFAULT 'new',
    stage_at     timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX notifier_leads_owner ON notifier_leads (owner_id)
    WHERE stage NOT IN ('won', 'lost');

-- Escalation steps as sla.escalations said them (firing, then maybe resolved): the
-- digest's "overdue" and the resolved follow-up's recipient.
CREATE TABLE notifier_escalations (
    escalation_id  text PRIMARY KEY,
    lead_id        text NOT NULL,
    owner_id       text,
    team_id        text NOT NULL,
    action         text NOT NULL,
    due_at         timestamptz NOT NULL,
    breached_at    timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('firing', 'resolved')),
    resolved_at    timestamptz
);
CREATE INDEX notifier_escalations_owner ON notifier_escalations (owner_id)
    WHERE status = 'firing';

-- The outbox: one row per (notice, recipient, channel). The primary key is the
-- exactly-once key: a redelivered event, a second digest pass or a repeated
-- Alertmanager notification finds its row and adds nothing. A row is 'sent' only after
-- the vendor accepted it; `lease_until` (real time, the database's clock) keeps other
-- workers off a row while one sends it, and lets them take it over after a crash.
CREATE TABLE notifier_outbox (
    notice_key     text NOT NULL,
    recipient      text NOT NULL,
    channel        text NOT NULL,
    kind           text NOT NULL,
    team_id        text NOT NULL,
    lead_id        text,
    -- Template variables: ids and non-personal lead facts only.
    payload        jsonb NOT NULL,
    -- The recipient's channel order when the row was made, for a fallback on failure.
    fallbacks      text[] NOT NULL DEFAULT '{}',
    -- When the notice happened (breach, assignment): the delivery-latency histogram.
    origin_at      timestamptz NOT NULL,
    -- Service time: the next working moment of the recipient's calendar, or now.
    due_at         timestamptz NOT NULL,
    -- Rows of one (recipient, channel) due within this window go out as one message.
    coalesce_s     double precision NOT NULL DEFAULT 0,
    not_before     timestamptz,
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'dead', 'cancelled')),
    attempts       integer NOT NULL DEFAULT 0,
    lease_until    timestamptz,
    message_id     text,
    last_code      text,
    created_at     timestamptz NOT NULL,
    sent_at        timestamptz,
    seq            bigserial,
    PRIMARY KEY (notice_key, recipient, channel)
);
CREATE INDEX notifier_outbox_due ON notifier_outbox (due_at) WHERE status = 'pending';
CREATE INDEX notifier_outbox_lead ON notifier_outbox (lead_id, kind) WHERE status = 'pending';
CREATE INDEX notifier_outbox_message ON notifier_outbox (message_id);

-- Rate limits by scheduling: the earliest time (service time) the next message may go
-- to a destination (a robot, or one person on one channel).
CREATE TABLE notifier_rate (
    destination   text PRIMARY KEY,
    next_free_at  timestamptz NOT NULL
);

-- One digest per rep and local date.
CREATE TABLE notifier_digests (
    rep_id      text NOT NULL,
    local_date  date NOT NULL,
    made_at     timestamptz NOT NULL,
    PRIMARY KEY (rep_id, local_date)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    notifier_applied_events, notifier_reps, notifier_leads, notifier_escalations,
    notifier_outbox, notifier_rate, notifier_digests
    TO leadloop_notifier;
GRANT USAGE ON SEQUENCE notifier_outbox_seq_seq TO leadloop_notifier;
