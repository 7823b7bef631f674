-- sla-monitor: policies with conditions, follow-up promises, stage stalls, the rep
-- roster (manager ids for escalations) and on-call delivery to Alertmanager.

-- sla_clocks.next_level is now the position in the policy's *schedule* (its ladder
-- steps plus any reclaim warnings, ordered by due time); without warnings it is the
-- ladder level, as before. promised_at: a follow-up clock that runs to the rep's own
-- next_followup_at instead of the policy's limit.
ALTER TABLE sla_clocks ADD COLUMN promised_at timestamptz;
-- Stopping a lead's clocks looks them up by lead.
CREATE INDEX sla_clocks_open_by_lead ON sla_clocks (lead_id) WHERE stopped_at IS NULL;

-- The latest touch's promise and event: a touch read before the assignment it answers
-- (another topic) still starts the follow-up clock once the assignment arrives.
ALTER TABLE sla_lead_touches
    ADD COLUMN next_followup_at timestamptz,
    ADD COLUMN touch_event_id   text;

-- What the monitor knows of each lead for policy conditions: source and priority
-- (leads.accepted), team, owner and priority (leads.assigned), stage (crm.stage-changes).
CREATE TABLE sla_leads (
    lead_id           text PRIMARY KEY,
    source            text,
    priority          text,
    team_id           text,
    owner_id          text,
    stage             text NOT NULL DEFAULT 'new',
    stage_changed_at  timestamptz,
    closed_at         timestamptz
);

-- The roster from the compacted crm.reps topic: the latest entry per rep wins.
CREATE TABLE sla_reps (
    rep_id      text PRIMARY KEY,
    team_id     text NOT NULL,
    manager_id  text,
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- On-call delivery to Alertmanager, outbox-style: a row is written in the transaction
-- that fires (or resolves) a paged step and retried with backoff until Alertmanager
-- accepted it. Alertmanager deduplicates by labels, so a repeat after a crash between
-- its answer and delivered_at is harmless.
CREATE TABLE sla_alert_outbox (
    escalation_id    text NOT NULL,
    status           text NOT NULL CHECK (status IN ('firing', 'resolved')),
    seq              bigserial,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (escalation_id, status),
    FOREIGN KEY (escalation_id, status) REFERENCES escalations (escalation_id, status)
);
CREATE INDEX sla_alert_outbox_pending ON sla_alert_outbox (next_attempt_at, seq)
    WHERE delivered_at IS NULL;
