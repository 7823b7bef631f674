"""The statements of sla-monitor's PostgreSQL repository (``postgres.PostgresClocks``).

Each moves a whole batch in one round trip: rows go in as one array per column
(``unnest``) and come out as rows.
"""

__all__ = [
    "ADVANCE",
    "CLAIM",
    "DUE",
    "FIRED",
    "INSERT_ALERTS",
    "INSERT_ESCALATIONS",
    "READ_CLOCKS",
    "READ_LEADS",
    "SAVE_CLOCKS",
    "SAVE_LEADS",
    "SAVE_REPS",
    "SAVE_TOUCHES",
]

CLAIM = """
INSERT INTO sla_applied_events (event_id, applied_at)
SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING event_id
"""

# One row per lead asked for, with its latest touch and its owner's roster entry.
READ_LEADS = """
SELECT k.lead_id, l.lead_id IS NOT NULL AS known, l.source, l.priority, l.team_id,
    l.owner_id, l.stage, l.stage_changed_at, l.closed_at,
    t.last_touch_at, t.next_followup_at, t.touch_event_id,
    r.rep_id, r.team_id AS rep_team_id, r.manager_id, r.status, r.updated_at
FROM unnest($1::text[]) AS k(lead_id)
LEFT JOIN sla_leads l ON l.lead_id = k.lead_id
LEFT JOIN sla_lead_touches t ON t.lead_id = k.lead_id
LEFT JOIN sla_reps r ON r.rep_id = l.owner_id
"""

# Locked: a firing pass holding one of these clocks finishes first, and its steps are
# then visible to resolve.
READ_CLOCKS = """
SELECT lead_id, kind, cycle, policy_id, owner_id, team_id, manager_id, started_at,
    next_level, promised_at, due_at, stopped_at, stop_reason FROM sla_clocks
WHERE lead_id = ANY($1::text[]) AND (stopped_at IS NULL OR cycle = ANY($2::text[]))
FOR UPDATE
"""

SAVE_LEADS = """
INSERT INTO sla_leads (lead_id, source, priority, team_id, owner_id, stage,
    stage_changed_at, closed_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::timestamptz[], $8::timestamptz[])
ON CONFLICT (lead_id) DO UPDATE SET source = EXCLUDED.source,
    priority = EXCLUDED.priority, team_id = EXCLUDED.team_id,
    owner_id = EXCLUDED.owner_id, stage = EXCLUDED.stage,
    stage_changed_at = EXCLUDED.stage_changed_at, closed_at = EXCLUDED.closed_at
"""

SAVE_TOUCHES = """
INSERT INTO sla_lead_touches (lead_id, last_touch_at, next_followup_at, touch_event_id)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[])
ON CONFLICT (lead_id) DO UPDATE SET last_touch_at = EXCLUDED.last_touch_at,
    next_followup_at = EXCLUDED.next_followup_at, touch_event_id = EXCLUDED.touch_event_id
"""

# The newest roster entry wins: an older one than stored changes nothing.
SAVE_REPS = """
INSERT INTO sla_reps (rep_id, team_id, manager_id, status, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (rep_id) DO UPDATE SET team_id = EXCLUDED.team_id,
    manager_id = EXCLUDED.manager_id, status = EXCLUDED.status,
    updated_at = EXCLUDED.updated_at
WHERE sla_reps.updated_at <= EXCLUDED.updated_at
RETURNING rep_id
"""

# The lifecycle changes a clock's policy, due time and stop; firing (below) its level.
SAVE_CLOCKS = """
INSERT INTO sla_clocks (lead_id, kind, cycle, policy_id, owner_id, team_id, manager_id,
    started_at, next_level, promised_at, due_at, stopped_at, stop_reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::timestamptz[], $9::int[], $10::timestamptz[],
    $11::timestamptz[], $12::timestamptz[], $13::text[])
ON CONFLICT (lead_id, kind, cycle) DO UPDATE SET policy_id = EXCLUDED.policy_id,
    due_at = EXCLUDED.due_at, stopped_at = EXCLUDED.stopped_at,
    stop_reason = EXCLUDED.stop_reason
"""

FIRED = """
SELECT escalation_id, breached_at, manager_id FROM escalations
WHERE status = 'firing' AND escalation_id = ANY($1::text[])
"""

DUE = """
SELECT c.lead_id, c.kind, c.cycle, c.policy_id, c.owner_id, c.team_id,
    coalesce(r.manager_id, c.manager_id), c.started_at, c.next_level, c.promised_at
FROM sla_clocks c LEFT JOIN sla_reps r ON r.rep_id = c.owner_id
WHERE c.stopped_at IS NULL AND c.due_at <= $1
ORDER BY c.due_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED
"""

ADVANCE = """
UPDATE sla_clocks c SET next_level = coalesce(u.next_level, c.next_level),
    due_at = coalesce(u.due_at, 'infinity'::timestamptz)
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[])
    AS u(lead_id, kind, cycle, next_level, due_at)
WHERE c.lead_id = u.lead_id AND c.kind = u.kind AND c.cycle = u.cycle
"""

# One statement per batch. published_at is the moment of the insert (clock_timestamp,
# not the transaction's start) when the broker acknowledged the steps before it.
INSERT_ESCALATIONS = """
INSERT INTO escalations (escalation_id, status, event_id, lead_id, owner_id, team_id,
    manager_id, policy_id, kind, level, action, due_at, breached_at, occurred_at)
SELECT u.*
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::int[], $11::text[], $12::timestamptz[],
    $13::timestamptz[], $14::timestamptz[])
    AS u(escalation_id, status, event_id, lead_id, owner_id, team_id, manager_id,
         policy_id, kind, level, action, due_at, breached_at, occurred_at)
ON CONFLICT DO NOTHING
"""

# A resolve goes to Alertmanager only for a step whose firing went there.
INSERT_ALERTS = """
INSERT INTO sla_alert_outbox (escalation_id, status, next_attempt_at, created_at)
SELECT u.escalation_id, u.status, $3, $3
FROM unnest($1::text[], $2::text[]) AS u(escalation_id, status)
WHERE u.status = 'firing' OR EXISTS (
    SELECT 1 FROM sla_alert_outbox o
    WHERE o.escalation_id = u.escalation_id AND o.status = 'firing')
ON CONFLICT DO NOTHING
"""
