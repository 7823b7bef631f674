"""Assignment's two bulk statements, built from named fragments.

``READ`` returns, in one round trip, everything a transaction decides from: the
roster, the batch's leads decided or closed before, the routing state of a scope, and
the open leads a pass of moves may touch with their cooldowns. ``APPLY`` writes, in one
round trip, everything it decided: the decisions, each lead's place, cursors, rep load,
daily intake, weighted counts and cooldowns. Each part writes other rows, as one
statement's parts must.

Parameters are written ``:name`` and numbered when the statement is built; a ``Rows``
fragment stands for one column array per field (``unnest``), so each part names what
it reads.
"""

# Every statement here is built from this module's constants; values go in as parameters.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["APPLY", "EVENT_COLUMNS", "READ", "Rows", "Statement"]


@dataclass(frozen=True, slots=True)
class Statement:
    text: str
    names: tuple[str, ...]

    @classmethod
    def build(cls, sql: str) -> Statement:
        names: list[str] = []

        def number(m: re.Match[str]) -> str:
            if m.group(1) not in names:
                names.append(m.group(1))
            return f"${names.index(m.group(1)) + 1}"

        # ":name", not the "::type" of a cast.
        return cls(re.sub(r"(?<![:\w]):([a-z_]+)", number, sql), tuple(names))

    def args(self, values: Mapping[str, object]) -> list[object]:
        return [values[name] for name in self.names]


@dataclass(frozen=True, slots=True)
class Rows:
    """A set of rows passed as one array per column."""

    name: str
    columns: tuple[tuple[str, str], ...]

    def source(self) -> str:
        arrays = ", ".join(f":{self.name}_{col}::{kind}[]" for col, kind in self.columns)
        return f"unnest({arrays}) AS {self.name}({', '.join(c for c, _ in self.columns)})"

    def values(self, rows: Sequence[tuple[object, ...]]) -> dict[str, list[object]]:
        if rows and len(rows[0]) != len(self.columns):
            raise ValueError(f"{self.name}: {len(rows[0])} values for {len(self.columns)}")
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.columns]
        return {
            f"{self.name}_{c}": list(v) for (c, _), v in zip(self.columns, columns, strict=True)
        }


#: ``assignments``' columns as events are read back (``postgres._event``).
EVENT_COLUMNS = (
    "assignment_id, lead_id, kind, owner_id, team_id, rule_id, rule_version, strategy, "
    "previous_owner_id, reason, priority, lead_occurred_at, assigned_at, event_id, seq"
)

DECIDED = Rows(
    "decided",
    (
        ("assignment_id", "text"),
        ("lead_id", "text"),
        ("kind", "text"),
        ("owner_id", "text"),
        ("team_id", "text"),
        ("rule_id", "text"),
        ("rule_version", "text"),
        ("strategy", "text"),
        ("previous_owner_id", "text"),
        ("reason", "jsonb"),
        ("priority", "text"),
        ("lead_occurred_at", "timestamptz"),
        ("assigned_at", "timestamptz"),
        ("event_id", "text"),
        ("cause_event_id", "text"),
        ("seq", "int"),
    ),
)
PLACED = Rows(
    "placed",
    (
        ("lead_id", "text"),
        ("lead", "jsonb"),
        ("team_id", "text"),
        ("rule_id", "text"),
        ("owner_id", "text"),
        ("priority_rank", "smallint"),
        ("accepted_at", "timestamptz"),
        ("moves", "int"),
    ),
)
CURSORS = Rows("cursors", (("team_id", "text"), ("rep_id", "text")))
LOAD = Rows(
    "load", (("rep_id", "text"), ("team_id", "text"), ("opened", "int"), ("assigned", "bigint"))
)
INTAKE = Rows("intake", (("rep_id", "text"), ("day", "date"), ("assigned", "int")))
WEIGHTED = Rows(
    "weighted",
    (("team_id", "text"), ("roster_id", "text"), ("rep_id", "text"), ("assigned", "bigint")),
)
COOLDOWNS = Rows("cooldowns", (("lead_id", "text"), ("rep_id", "text"), ("until", "timestamptz")))

_DECIDED = f"""INSERT INTO assignments ({", ".join(c for c, _ in DECIDED.columns)})
    SELECT * FROM {DECIDED.source()}"""

# A first decision stores the lead (a row may exist: the lead closed before it was
# decided); a move changes the place and counts the move.
_PLACED = f"""INSERT INTO assignment_leads AS a (lead_id, lead, team_id, rule_id, owner_id,
        priority_rank, accepted_at, moves, updated_at)
    SELECT placed.*, :now::timestamptz FROM {PLACED.source()}
    ON CONFLICT (lead_id) DO UPDATE SET lead = coalesce(EXCLUDED.lead, a.lead),
        team_id = EXCLUDED.team_id, rule_id = EXCLUDED.rule_id, owner_id = EXCLUDED.owner_id,
        priority_rank = coalesce(EXCLUDED.priority_rank, a.priority_rank),
        accepted_at = coalesce(EXCLUDED.accepted_at, a.accepted_at),
        moves = a.moves + EXCLUDED.moves, updated_at = EXCLUDED.updated_at"""

_CURSORS = f"""UPDATE rotation_cursors c SET last_rep_id = cursors.rep_id, updated_at = now()
    FROM {CURSORS.source()} WHERE c.team_id = cursors.team_id"""

# Load moves by steps (see ``domain.changes``). A new row starts at the step (never
# below 0: the CHECK holds on the inserted row even when it conflicts); an existing one
# takes it from the step itself. A rep's team is the one it last got a lead for.
_LOAD = """INSERT INTO rep_load AS r (rep_id, team_id, open_leads, assigned_total)
    SELECT rep_id, team_id, greatest(opened, 0), assigned FROM load_steps
    ON CONFLICT (rep_id) DO UPDATE SET
        team_id = CASE WHEN EXCLUDED.assigned_total > 0 THEN EXCLUDED.team_id ELSE r.team_id END,
        open_leads = greatest(r.open_leads
            + (SELECT s.opened FROM load_steps s WHERE s.rep_id = EXCLUDED.rep_id), 0),
        assigned_total = r.assigned_total + EXCLUDED.assigned_total"""

_INTAKE = f"""INSERT INTO rep_daily_intake (rep_id, day, assigned) SELECT * FROM {INTAKE.source()}
    ON CONFLICT (rep_id, day) DO UPDATE SET
        assigned = rep_daily_intake.assigned + EXCLUDED.assigned"""

_WEIGHTED = f"""INSERT INTO weighted_counts (team_id, roster_id, rep_id, assigned)
    SELECT * FROM {WEIGHTED.source()}
    ON CONFLICT (team_id, roster_id, rep_id) DO UPDATE SET
        assigned = weighted_counts.assigned + EXCLUDED.assigned"""

_COOLDOWNS = f"""INSERT INTO assignment_cooldowns (lead_id, rep_id, until)
    SELECT * FROM {COOLDOWNS.source()}
    ON CONFLICT (lead_id, rep_id) DO UPDATE SET until = EXCLUDED.until"""

APPLY = Statement.build(
    f"""WITH load_steps AS (SELECT * FROM {LOAD.source()}),
decided AS ({_DECIDED}),
placed AS ({_PLACED}),
cursors AS ({_CURSORS}),
load AS ({_LOAD}),
intake AS ({_INTAKE}),
weighted AS ({_WEIGHTED})
{_COOLDOWNS}"""
)

# The open leads a pass of moves may touch: those named, those of the listed owners,
# and each listed team's pool (hottest, then oldest, first; at most :pool_limit).
_HELD = """SELECT a.lead_id, a.lead, a.team_id, a.rule_id, a.owner_id, a.moves
    FROM assignment_leads a
    WHERE cardinality(:named::text[]) + cardinality(:owners::text[]) > 0
        AND a.closed_at IS NULL AND a.lead IS NOT NULL
        AND (a.lead_id = ANY(:named::text[]) OR a.owner_id = ANY(:owners::text[]))
    UNION ALL
    SELECT p.* FROM unnest(:pools::text[]) AS t(team) CROSS JOIN LATERAL (
        SELECT a.lead_id, a.lead, a.team_id, a.rule_id, a.owner_id, a.moves
        FROM assignment_leads a WHERE a.team_id = t.team AND a.owner_id IS NULL
            AND a.closed_at IS NULL AND a.lead IS NOT NULL
        ORDER BY a.priority_rank, a.accepted_at LIMIT :pool_limit) p"""

READ = Statement.build(
    f"""WITH held AS ({_HELD})
SELECT
    ARRAY(SELECT row(rep_id, team_id, manager_id, status, capacity, weight)
          FROM assignment_reps ORDER BY rep_id) AS roster,
    ARRAY(SELECT row({EVENT_COLUMNS}) FROM assignments
          WHERE lead_id = ANY(:leads::text[]) AND kind IN ('initial', 'pooled')) AS decided,
    ARRAY(SELECT lead_id FROM assignment_leads
          WHERE lead_id = ANY(:leads::text[]) AND closed_at IS NOT NULL) AS closed,
    ARRAY(SELECT row(rep_id, open_leads) FROM rep_load
          WHERE rep_id = ANY(:reps::text[])) AS load,
    ARRAY(SELECT row(i.rep_id, i.day, i.assigned) FROM rep_daily_intake i
          JOIN unnest(:intake_reps::text[], :intake_days::date[]) AS k(rep_id, day)
          ON i.rep_id = k.rep_id AND i.day = k.day) AS intake,
    ARRAY(SELECT row(w.team_id, w.roster_id, w.rep_id, w.assigned) FROM weighted_counts w
          JOIN unnest(:teams::text[], :rosters::text[]) AS k(team_id, roster_id)
          ON w.team_id = k.team_id AND w.roster_id = k.roster_id) AS weighted,
    ARRAY(SELECT row(lead_id, lead::text, team_id, rule_id, owner_id, moves) FROM held) AS held,
    ARRAY(SELECT row(lead_id, rep_id) FROM assignment_cooldowns
          WHERE lead_id IN (SELECT lead_id FROM held) AND until > :now::timestamptz) AS cooling"""
)
