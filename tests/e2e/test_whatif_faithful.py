"""``leadloop whatif`` with the configuration in force reproduces a simulated day exactly.

A day of traffic (seeded: leads of every rule, touches, promises, stage changes, won and
lost) runs through assignment's and sla-monitor's own use cases on a fresh PostgreSQL
database, moment by moment as the services would with no delay between them: the CRM's
events of an instant, then its leads, then every ladder step due, whose reassign and
return-to-pool steps assignment acts on at once; the pool is drained after each. The CRM
events are stored as ingest stores them. Then the command, as a login of the
``leadloop_whatif`` role, replays the day with the same files: every decision and every
ladder step (fired and resolved) must come out with the same ids, owners and teams, twice
over with the same bytes. A candidate rule set and ladder must change the figures.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from tests.support.processes import ROOT
from tests.support.stack import Stack

from leadloop.calendar import CalendarSet
from leadloop.clock import SystemClock
from leadloop.db import create_pool
from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    EscalationAction,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    LossReason,
    Priority,
    Stage,
    StageChanged,
)
from leadloop.messaging import RecordingPublisher
from leadloop_assignment.adapters.postgres import PostgresUnitOfWork as AssignmentStore
from leadloop_assignment.domain.moves import Takeback
from leadloop_assignment.domain.rules import RuleSet, with_calendars
from leadloop_assignment.handlers import AssignmentHandler, ChangeHandler
from leadloop_sla_monitor.adapters.postgres import PostgresUnitOfWork as SlaStore
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.handlers import SlaHandler

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DAY = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
END = DAY + timedelta(days=1)

RULES = """
version: "day-1"
teams:
  - team_id: t-rr
    manager_id: m-rr
    reps:
      - {rep_id: a1}
      - {rep_id: a2}
      - {rep_id: a3, daily_cap: 6}
  - team_id: t-w
    manager_id: m-w
    timezone: Asia/Shanghai
    reps:
      - {rep_id: b1, weight: 2}
      - {rep_id: b2, weight: 1}
  - team_id: t-ll
    manager_id: m-ll
    reps:
      - {rep_id: c1, capacity: 6}
      - {rep_id: c2, capacity: 6}
rules:
  - rule_id: returning
    when: {is_returning: {equals: true}}
    strategy: sticky
  - rule_id: reseller
    when: {campaign: {equals: reseller}}
    team: t-rr
    strategy: pool
  - rule_id: china
    when: {country: {in: [CN, HK]}}
    team: t-w
    strategy: weighted
  - rule_id: hot
    when: {priority: {equals: hot}}
    team: t-ll
    strategy: least_loaded
  - rule_id: default
    team: t-rr
    strategy: round_robin
"""

SLA = """
policies:
  - policy_id: fr-hot
    kind: first_response
    when: {priority: [hot]}
    limit_seconds: 300
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 300, action: reassign}
  - policy_id: fr
    kind: first_response
    limit_seconds: 900
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 900, action: notify_manager}
      - {level: 3, after_seconds: 1800, action: reassign}
  - policy_id: fu
    kind: follow_up
    limit_seconds: 7200
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 3600, action: return_to_pool, warn_before_seconds: 600}
  - policy_id: stall
    kind: stage_stall
    when: {stage: [proposal]}
    limit_seconds: 10800
    ladder:
      - {level: 1, after_seconds: 0, action: notify_manager}
"""

CALENDARS = """
default: always
calendars:
  always:
    timezone: UTC
    weekly:
      monday: ["00:00-24:00"]
      tuesday: ["00:00-24:00"]
      wednesday: ["00:00-24:00"]
      thursday: ["00:00-24:00"]
      friday: ["00:00-24:00"]
      saturday: ["00:00-24:00"]
      sunday: ["00:00-24:00"]
"""

#: A candidate: one more rep in the round-robin team, hot leads by round robin, and a
#: first-response limit twice as long.
CANDIDATE_RULES = RULES.replace(
    "      - {rep_id: a3, daily_cap: 6}", "      - {rep_id: a3, daily_cap: 6}\n      - {rep_id: a4}"
).replace("strategy: least_loaded", "strategy: round_robin")
CANDIDATE_SLA = SLA.replace("limit_seconds: 900", "limit_seconds: 1800")


@dataclass(frozen=True)
class Script:
    leads: list[LeadAccepted]
    crm: list[ActivityRecorded | StageChanged]


def script(seed: int = 20261103, n: int = 140) -> Script:
    """A day's traffic: arrival times, and for each lead its touches and stages."""
    rnd = random.Random(seed)
    leads: list[LeadAccepted] = []
    crm: list[ActivityRecorded | StageChanged] = []
    for i in range(n):
        at = DAY + timedelta(seconds=rnd.randrange(0, 20 * 3600))
        returning = i > 10 and rnd.random() < 0.08
        lead = LeadAccepted(
            event_id=f"acc-{i}",
            occurred_at=at,
            lead_id=f"lead-{i:03d}",
            source=rnd.choice(["web_form", "wechat", "referral"]),
            source_lead_id=str(i),
            accepted_at=at,
            country=rnd.choice(["CN", "US", "DE", "HK", "US"]),
            campaign="reseller" if rnd.random() < 0.1 else None,
            is_returning=returning,
            previous_owner_id=rnd.choice(["a1", "b2", "c1", "gone"]) if returning else None,
            score=rnd.randrange(0, 100),
            priority=rnd.choice([Priority.HOT, Priority.WARM, Priority.COLD, Priority.WARM]),
        )
        leads.append(lead)
        t = at
        for k in range(rnd.choice([0, 1, 1, 2, 3])):
            # The first touch within 45 minutes, later ones hours apart.
            t += timedelta(
                seconds=rnd.randrange(60, 2700) if k == 0 else rnd.randrange(600, 3 * 3600)
            )
            promise = (
                t + timedelta(seconds=rnd.randrange(1800, 4 * 3600))
                if k and rnd.random() < 0.3
                else None
            )
            crm.append(
                ActivityRecorded(
                    event_id=f"act-{i}-{k}",
                    lead_id=lead.lead_id,
                    rep_id="someone",
                    kind=rnd.choice(list(ActivityKind)),
                    occurred_at=t,
                    next_followup_at=promise,
                )
            )
            if rnd.random() < 0.35:
                t += timedelta(seconds=rnd.randrange(60, 3600))
                stage = rnd.choice([Stage.CONTACTED, Stage.PROPOSAL, Stage.WON, Stage.LOST])
                crm.append(
                    StageChanged(
                        event_id=f"stage-{i}-{k}",
                        lead_id=lead.lead_id,
                        rep_id="someone",
                        stage=stage,
                        occurred_at=t,
                        loss_reason=LossReason.TIMING if stage is Stage.LOST else None,
                    )
                )
                if stage in (Stage.WON, Stage.LOST):
                    break
    return Script(leads, [e for e in crm if e.occurred_at < END])


_MOVING = frozenset({EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL})


async def run_day(database_url: str, day: Script, tmp: Path) -> None:
    """The day through the services' use cases, moment by moment."""
    calendars = CalendarSet.model_validate(_yaml(CALENDARS))
    rules = with_calendars(RuleSet.model_validate(_yaml(RULES)), calendars)
    policies = PolicySet.model_validate(_yaml(SLA))
    pool = await create_pool(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        out = RecordingPublisher()
        astore, clock = AssignmentStore(pool), SystemClock()
        decide = AssignmentHandler(astore, out, clock, rules=lambda: rules)
        changes = ChangeHandler(astore, out, clock, rules=lambda: rules)
        sla = SlaHandler(
            SlaStore(pool),
            Lifecycle(policies, calendars),
            Escalator(policies, calendars),
            RecordingPublisher(),
            clock,
        )
        await _store_leads(conn, day.leads)
        arrivals = sorted(day.leads, key=lambda x: (x.accepted_at, x.lead_id))
        crm = sorted(day.crm, key=lambda e: (e.occurred_at, e.event_id))
        i = j = 0

        async def moved(events: Sequence[LeadAssigned], now: datetime) -> None:
            if events:
                await sla.apply(list(events), now)

        while True:
            due = await conn.fetchval(
                "SELECT min(due_at) FROM sla_clocks WHERE stopped_at IS NULL "
                "AND due_at < 'infinity'"
            )
            times = [
                x
                for x in (
                    crm[i].occurred_at if i < len(crm) else None,
                    arrivals[j].accepted_at if j < len(arrivals) else None,
                    due,
                )
                if x is not None and x < END
            ]
            if not times:
                break
            t = min(times)
            here = []
            while i < len(crm) and crm[i].occurred_at == t:
                here.append(crm[i])
                i += 1
            if here:
                await _store_crm(conn, here)
                await sla.apply(here, t)
            closings = [
                (e.lead_id, e.occurred_at)
                for e in here
                if isinstance(e, StageChanged) and e.stage in (Stage.WON, Stage.LOST)
            ]
            await moved(await changes.maintain(rules, t, closings=closings), t)
            batch = []
            while j < len(arrivals) and arrivals[j].accepted_at == t:
                batch.append(arrivals[j])
                j += 1
            if batch:
                assigned = await decide.assign(batch, rules, t)
                await sla.apply([*batch, *assigned], t)
                await moved(await changes.maintain(rules, t), t)
            while True:
                seen = len(sla.publisher.messages)  # type: ignore[attr-defined]
                if not await sla.fire_due(t):
                    break
                fired = [
                    EscalationRaised.model_validate_json(m.value)
                    for m in sla.publisher.messages[seen:]  # type: ignore[attr-defined]
                ]
                takebacks = [
                    Takeback(e.lead_id, e.owner_id, e.action, e.event_id)
                    for e in fired
                    if e.status is EscalationStatus.FIRING and e.action in _MOVING
                ]
                if takebacks:
                    await moved(await changes.maintain(rules, t, takebacks=takebacks), t)
    finally:
        await conn.close()
        await pool.close()


def _yaml(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


async def _store_leads(conn: asyncpg.Connection, leads: Sequence[LeadAccepted]) -> None:
    """The leads as ingest stores them (the CRM events reference them)."""
    await conn.executemany(
        "INSERT INTO leads (lead_id, source, source_lead_id, score, priority, occurred_at, "
        "accepted_at, accepted_event_id, raw_partition, raw_offset, email) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, 'x@example.com')",
        [
            (
                x.lead_id,
                x.source,
                x.source_lead_id,
                x.score,
                x.priority.value,
                x.occurred_at,
                x.accepted_at,
                x.event_id,
                n,
            )
            for n, x in enumerate(leads)
        ],
    )


async def _store_crm(
    conn: asyncpg.Connection, events: Sequence[ActivityRecorded | StageChanged]
) -> None:
    for e in events:
        if isinstance(e, ActivityRecorded):
            await conn.execute(
                "INSERT INTO lead_activities (event_id, lead_id, rep_id, kind, occurred_at, "
                "next_followup_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
                e.event_id,
                e.lead_id,
                e.rep_id,
                e.kind.value,
                e.occurred_at,
                e.next_followup_at,
            )
        else:
            await conn.execute(
                "INSERT INTO lead_stage_changes (event_id, lead_id, stage, occurred_at, rep_id, "
                "loss_reason, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $4)",
                e.event_id,
                e.lead_id,
                e.stage.value,
                e.occurred_at,
                e.rep_id,
                e.loss_reason.value if e.loss_reason else None,
            )


def whatif(url: str, rules: Path, sla: Path, calendars: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [
            str(ROOT / ".venv/bin/leadloop"),
            "whatif",
            "--rules",
            str(rules),
            "--sla",
            str(sla),
            "--calendars",
            str(calendars),
            "--from",
            DAY.isoformat(),
            "--to",
            END.isoformat(),
            "--format",
            "json",
            *extra,
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_whatif_reproduces_a_simulated_day(
    database_url: str, stack: Stack, tmp_path: Path
) -> None:
    day = script()
    await run_day(database_url, day, tmp_path)
    files = {}
    for name, text in (
        ("rules", RULES),
        ("sla", SLA),
        ("calendars", CALENDARS),
        ("cand-rules", CANDIDATE_RULES),
        ("cand-sla", CANDIDATE_SLA),
    ):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)

    # A login of the read-only group role: its grants are all the command needs.
    user, password = f"leadloop_whatif_t{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    admin = await asyncpg.connect(stack.admin_url)
    await admin.execute(f"CREATE ROLE {user} LOGIN IN ROLE leadloop_whatif PASSWORD '{password}'")
    try:
        parts = urlsplit(database_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        login = urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
        conn = await asyncpg.connect(database_url)
        try:
            decisions = await conn.fetchval("SELECT count(*) FROM assignments")
            steps = dict(await conn.fetch("SELECT status, count(*) FROM escalations GROUP BY 1"))
            moves = await conn.fetchval("SELECT count(*) FROM assignments WHERE seq > 0")
        finally:
            await conn.close()
        live = whatif(login, files["rules"], files["sla"], files["calendars"])
        again = whatif(login, files["rules"], files["sla"], files["calendars"])
        candidate = whatif(login, files["cand-rules"], files["cand-sla"], files["calendars"])
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {user}")
        await admin.close()

    # The day exercised the ladders and the moves, not just first decisions.
    assert live["actual"]["leads"] == len(day.leads)
    assert steps.get("firing", 0) > 100, steps
    assert steps.get("resolved", 0) > 10, steps
    assert moves > 10
    assert live["actual"]["reclaimed"] > 0
    assert live["actual"]["reassigned"] > 0
    fidelity = live["fidelity"]
    assert fidelity["exact"], fidelity
    assert fidelity["decisions"] == decisions
    assert fidelity["steps"] == sum(steps.values())
    assert live["actual"] == live["whatif"]
    assert live["rescued"] == live["lost"] == {"first_response": 0, "follow_up": 0}
    # Deterministic: the same input gives the same report (timings aside).
    for report in (live, again):
        report.pop("seconds")
    assert again == live
    # The candidate changes things, and says so.
    assert not candidate["fidelity"]["exact"]
    assert candidate["whatif"]["reps"].get("a4", 0) > 0
    assert candidate["rescued"]["first_response"] > 0
    # Fewer leads breach first response with their first owner (later cycles of
    # never-touched leads breach either way).
    fr = "first_response"
    assert candidate["whatif"]["breached_leads"][fr] < candidate["actual"]["breached_leads"][fr]
