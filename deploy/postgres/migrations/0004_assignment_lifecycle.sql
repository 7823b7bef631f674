-- assignment after the first decision: the roster from crm.reps, every lead's current
-- owner (or pool), closing, moves (reassigned / reclaimed / out of the pool) with a
-- cooldown, and an outbox for the events those moves publish. Everything here changes
-- under the rotation_cursors row locks of the teams involved, like the first decision.

-- The roster as published on the compacted crm.reps topic. A rep listed here overrides
-- the rules file's entry of the same rep_id (team, status, capacity, weight); rows only
-- move forward in updated_at, so a replayed older entry changes nothing.
CREATE TABLE assignment_reps (
    rep_id      text PRIMARY KEY,
    team_id     text NOT NULL,
    manager_id  text,
    status      text NOT NULL CHECK (status IN ('active', 'away', 'left')),
    capacity    integer NOT NULL CHECK (capacity >= 0),
    weight      integer NOT NULL CHECK (weight >= 0),
    timezone    text NOT NULL,
    updated_at  timestamptz NOT NULL,
    event_id    text
);

-- Every lead assignment has decided, with what it needs to decide it again: the
-- leads.accepted event (no personal data), its current owner (NULL: in the team's pool)
-- and whether it is still open. A won or lost lead frees its owner's capacity once.
CREATE TABLE assignment_leads (
    lead_id        text PRIMARY KEY,
    lead           jsonb,
    team_id        text,
    rule_id        text,
    owner_id       text,
    priority_rank  smallint,
    accepted_at    timestamptz,
    -- Moves after the first decision; names the next move's assignment id.
    moves          integer NOT NULL DEFAULT 0,
    closed_at      timestamptz,
    updated_at     timestamptz NOT NULL
);
-- The pool: open leads without an owner, hottest first, then oldest.
CREATE INDEX assignment_leads_pool ON assignment_leads (team_id, priority_rank, accepted_at)
    WHERE owner_id IS NULL AND closed_at IS NULL AND lead IS NOT NULL;
CREATE INDEX assignment_leads_owner ON assignment_leads (owner_id)
    WHERE closed_at IS NULL;

-- A rep a lead was taken from does not get it back before `until`.
CREATE TABLE assignment_cooldowns (
    lead_id  text NOT NULL,
    rep_id   text NOT NULL,
    until    timestamptz NOT NULL,
    PRIMARY KEY (lead_id, rep_id)
);

-- Input events (crm.reps, crm.stage-changes, sla.escalations) already applied.
CREATE TABLE assignment_applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL
);

-- Decisions are published from the table: NULL until leads.assigned has the event, so
-- a crash between commit and publish only delays it (a timer republishes).
ALTER TABLE assignments ADD COLUMN published_at timestamptz;
UPDATE assignments SET published_at = assigned_at;
-- The lead's n-th assignment (0: the first decision): `sequence` on leads.assigned.
ALTER TABLE assignments ADD COLUMN seq integer NOT NULL DEFAULT 0;
CREATE INDEX assignments_unpublished ON assignments (assigned_at) WHERE published_at IS NULL;

-- A worker stopped inside a transaction holds its teams' cursor locks; end such a
-- transaction rather than stall every worker behind it.
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   current_database(), '20s');
END $$;
