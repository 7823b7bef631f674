-- The edges: the hand-off to CRM targets, the read API for reps' tools, and the roles of
-- the two services at the edges (hand-off and notifier). Grants follow 0008's rule: a
-- table is granted to its service's role only.

-- roles --------------------------------------------------------------------------
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['leadloop_handoff', 'leadloop_notifier'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END $$;
DO $$ BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadloop_handoff, leadloop_notifier',
                   current_database());
END $$;
GRANT USAGE ON SCHEMA public TO leadloop_handoff, leadloop_notifier;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM leadloop_handoff, leadloop_notifier;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM leadloop_handoff, leadloop_notifier;

-- hand-off -----------------------------------------------------------------------
-- One row per (target, lead, assignment): the outbox of deliveries. The primary key is
-- the exactly-once key: a redelivered leads.assigned event finds its row and changes
-- nothing. Rows hold the PII-free assignment event only; contact details are read from
-- leads at send time, so an erasure in between is honoured.
CREATE TABLE handoff_deliveries (
    target          text NOT NULL,
    lead_id         text NOT NULL,
    -- The assignment id, or 'erase' for the erasure sent to a target after one.
    assignment_id   text NOT NULL,
    -- The lead's move number (leads.assigned sequence): deliveries of one lead to one
    -- target go out in this order; an older move arriving after a newer one is
    -- superseded instead of overwriting the CRM's newer state.
    sequence        integer NOT NULL,
    kind            text NOT NULL
        CHECK (kind IN ('initial', 'reassigned', 'reclaimed', 'pooled', 'erase')),
    event           jsonb NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled', 'superseded')),
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    assigned_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    -- The last reply: HTTP status (null: none came) and a stable code, never a body.
    last_status     integer,
    last_code       text,
    crm_id          text,
    PRIMARY KEY (target, lead_id, assignment_id)
);
CREATE INDEX handoff_deliveries_due ON handoff_deliveries (due_at) WHERE status = 'pending';
CREATE INDEX handoff_deliveries_lead ON handoff_deliveries (target, lead_id, sequence);
CREATE INDEX handoff_deliveries_dead ON handoff_deliveries (target, finished_at)
    WHERE status = 'dead';

-- Roster facts the hand-off needs: the rep's user id per CRM (crm.reps external_ids).
CREATE TABLE handoff_reps (
    rep_id        text PRIMARY KEY,
    external_ids  jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL
);

-- How far the erasure scan has read leads.erased_at (one row).
CREATE TABLE handoff_erasure_cursor (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    erased_at   timestamptz NOT NULL
);
CREATE INDEX leads_erased_at ON leads (erased_at) WHERE erased_at IS NOT NULL;

-- Read API: every read of a lead's contact details (client, lead, time, scope).
CREATE TABLE lead_reads (
    read_id     bigserial PRIMARY KEY,
    client_id   text NOT NULL,
    lead_id     text NOT NULL,
    scope       text NOT NULL,
    read_at     timestamptz NOT NULL
);
CREATE INDEX lead_reads_lead ON lead_reads (lead_id, read_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    handoff_deliveries, handoff_reps, handoff_erasure_cursor, lead_reads
    TO leadloop_handoff;
GRANT USAGE ON SEQUENCE lead_reads_read_id_seq TO leadloop_handoff;
-- The one other role that reads personal data: what a CRM and a rep's tool receive.
-- Read-only, and only the columns a card and the read API show (no dedupe keys).
GRANT SELECT (lead_id, source, source_lead_id, email, phone, name, company, title,
              country, region, city, industry, product, company_size, budget, campaign,
              message, attributes, score, priority, is_returning, previous_owner_id,
              occurred_at, accepted_at, erased_at)
    ON leads TO leadloop_handoff;
-- The read API's timeline and open clocks (read-only views of other services' tables).
GRANT SELECT ON lead_activities, lead_stage_changes, lead_ownership TO leadloop_handoff;
GRANT SELECT (lead_id, kind, policy_id, owner_id, team_id, started_at, due_at, next_level,
              stopped_at)
    ON sla_clocks TO leadloop_handoff;
