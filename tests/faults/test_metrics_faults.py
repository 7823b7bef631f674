"""metrics under `kill -9`: the worker is killed three times while it folds
``LEADLOOP_FAULT_SCALE`` events (default 30,000; ``make soak`` runs 500,000) from all
seven input topics, and after the restarts every served series equals the truth.

Two independent checks: ``reconcile`` (the stored facts replayed, compared with the
stored and the served values, every bucket included), and a ground truth computed from
the generated leads alone (``tests/support/metrics_truth.py``, which shares no code with
the service) — every funnel, pipeline, outcome, SLA, per-rep and leak-ledger series —
compared with /metrics; and repeat business and customer satisfaction; histograms whole
(buckets, sums and counts of assignment latency, first response and time in stage, their
boundaries as the truth writes them).

The workload keeps that truth independent of the order in which the topics interleave: a
lead keeps one team; a won or lost lead has one assignment decision (the owner and team
a win or loss is attributed to are frozen when it becomes known), and its stage changes
reach an open stage before it is lost; only leads that stay open are reassigned to
another rep or reclaimed into the pool, by a second decision on the same partition after
the first; a lead touched and moved by the CRM is moved to `contacted` at its first
touch (a stage's time is fixed when the next stage is first known). Owners are reps of
the roster of config/rules.yaml (mostly of the lead's team, some of any team) and one
rep not on it; activities (some of them notes, which are no touch) and stage changes
carry the owner of the moment, ladder steps the owner they fired for. A fifth of the
leads come from customers who had won before (``customer_won_before`` on
leads.accepted): their wins are repurchases. A fifth are rated on crm.satisfaction, once
or twice, decided or not, each score about an owner of the lead, another rep on or off
the roster, or nobody. Producer retries are simulated by sending a share of the events
twice.

The events are dated January 2026: the metrics' silence sweep would find every owned
open lead silent, so it is off here (``LEADLOOP_SILENT_AFTER_BUSINESS_DAYS=0``) and no
lead is in the ledger's ``silent`` state.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from tests.support.events import accepted, escalation
from tests.support.metrics_truth import (
    COVERED,
    NEW_SERIES,
    REPEAT_AND_SATISFACTION,
    Activity,
    Decision,
    LabelSets,
    Lead,
    Rating,
    Sample,
    StageChange,
    Step,
    bucket_differences,
    describe,
    differences,
    key,
    lead_samples,
    roster,
    served_units,
)
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import reconcile_metrics, running, stack_env

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    AssignmentKind,
    EscalationStatus,
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAssigned,
    LossReason,
    Priority,
    SatisfactionRecorded,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "30000"))
TIMEOUT_S = 300 + SCALE // 200
SESSION_TIMEOUT_S = 10
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SOURCES = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
ROSTER = roster(ROOT / "config/rules.yaml")
TEAMS = tuple(dict.fromkeys(ROSTER.values()))
TEAM_REPS = {team: sorted(r for r, t in ROSTER.items() if t == team) for team in TEAMS}
#: An owner the rule file does not list: `other` for both labels of a rep's series.
OFF_ROSTER = "rep-zz-99"
LABELS = LabelSets(frozenset(SOURCES), frozenset(TEAMS), ROSTER)
OPEN = ("contacted", "qualified", "proposal", "negotiation")
TOUCHES = [k for k in ActivityKind if k is not ActivityKind.NOTE]

assert OFF_ROSTER not in ROSTER

#: Produces one event: (topic, key, event).
Send = Callable[[str, str, BaseModel], None]


@dataclass
class Workload:
    #: (topic, key, value) in production order; some values appear twice.
    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    unique_events: int = 0
    accepted_leads: int = 0
    expected: Counter[Sample] = field(default_factory=Counter)


def pick_rep(rng: random.Random, team: str, but: str | None = None) -> str:
    """Mostly a rep of the lead's team; else any rep of the roster or the one off it."""
    team_reps = TEAM_REPS.get(team, [])
    pool = team_reps if team_reps and rng.random() < 0.8 else [*ROSTER, OFF_ROSTER]
    return rng.choice([r for r in pool if r != but] or [r for r in ROSTER if r != but])


def workload(scale: int, seed: int) -> Workload:
    """About ``scale`` events over leads that each take a random path through the loop."""
    rng = random.Random(seed)
    w = Workload()
    exp = w.expected
    seen: set[str] = set()

    def send(topic: str, lead: str, event: BaseModel) -> None:
        value = event.model_dump_json().encode()
        w.messages.append((topic, lead.encode(), value))
        event_id = str(getattr(event, "event_id", ""))
        if event_id not in seen:
            seen.add(event_id)
            w.unique_events += 1
        if rng.random() < 0.03:  # a producer retry: the same event again
            w.messages.append((topic, lead.encode(), value))

    n = 0
    while w.unique_events < scale:
        lead_id = f"L{n:07d}"
        t = T0 + timedelta(seconds=n)
        source = rng.choice((*SOURCES, "partner_x"))
        team = rng.choice((*TEAMS, "team-unknown"))
        priority = rng.choice(list(Priority))
        n += 1
        # Rejected records have no lead: only the ingest counters see them.
        if rng.random() < 0.05:
            reason = rng.choice(["invalid_email", "missing_contact"])
            send(
                "ingest.outcomes",
                source,
                IngestOutcomeRecorded(
                    event_id=f"rej-{lead_id}",
                    occurred_at=t,
                    source=source,
                    outcome=IngestOutcome.REJECTED,
                    reason=reason,
                    raw_partition=0,
                    raw_offset=n,
                ),
            )
            source_l = LABELS.source(source)
            exp[key("leadloop_leads_received_total", source=source_l)] += 1
            exp[key("leadloop_leads_rejected_total", source=source_l, reason=reason)] += 1
            continue
        plan = Lead(lead_id, source, priority.value, team, t)
        plan.customer_won_before = rng.random() < 0.2
        generate(rng, plan, t)
        rate(rng, plan, t)
        emit(send, plan, t, priority, n)
        exp.update(lead_samples(plan, LABELS))
        w.accepted_leads += 1
    ledger = sum(v for (name, _), v in exp.items() if name == "leadloop_leads_by_state")
    assert ledger == w.accepted_leads, (ledger, w.accepted_leads)
    return w


def generate(rng: random.Random, plan: Lead, t: datetime) -> None:
    """A random history for ``plan``, accepted at ``t``: a few leads are never decided,
    a tenth are pooled, the rest owned; an owner's activities, stage changes (maybe won
    or lost) and first-response ladder steps; a share of the leads that stay open is
    reassigned or reclaimed."""
    if rng.random() < 0.03:  # still awaiting its assignment decision
        return
    owned = rng.random() > 0.1
    assigned_at = t + timedelta(milliseconds=rng.randint(1, 3000))
    first = pick_rep(rng, plan.team) if owned else None
    plan.decisions.append(
        Decision(
            assigned_at,
            "initial" if owned else "pooled",
            "round_robin" if owned else "pool",
            first,
        )
    )
    if first is None:
        return
    # The owner's timeline: activities (a few are notes), then a prefix of the pipeline
    # and maybe an outcome once the lead had some activity.
    at = assigned_at
    timeline: list[tuple[datetime, str]] = []
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        at += timedelta(seconds=rng.randint(30, 3600))
        kind = ActivityKind.NOTE if rng.random() < 0.15 else rng.choice(TOUCHES)
        timeline.append((at, f"activity:{kind.value}"))
    stages = list(OPEN[: rng.randint(0, 4)]) if timeline else []
    end = rng.choice([None, "won", "lost"]) if stages else None
    # The CRM moves a touched lead to `contacted` at its first touch (the time in a
    # stage would otherwise depend on which topic the metrics read first).
    first_touch = next((when for when, what in timeline if what != "activity:note"), None)
    for stage in [*stages, *([end] if end else [])]:
        at += timedelta(minutes=rng.randint(5, 600))
        when = first_touch if stage == "contacted" and first_touch is not None else at
        timeline.append((when, f"stage:{stage}"))
    timeline.sort(key=lambda item: item[0])
    # Only leads that stay open move to another owner: an outcome is attributed to the
    # owner when it becomes known, which would depend on the order of arrival.
    moved_at: datetime | None = None
    second: str | None = None
    if end is None and rng.random() < 0.25:
        moved_at = assigned_at + timedelta(seconds=rng.randint(60, 4 * 3600))
        reclaim = rng.random() < 0.3
        second = None if reclaim else pick_rep(rng, plan.team, but=first)
        plan.decisions.append(
            Decision(
                moved_at,
                "reclaimed" if reclaim else "reassigned",
                "pool" if reclaim else "round_robin",
                second,
                previous_owner=first,
            )
        )
    amount: int | None = None
    for when, what in timeline:
        rep = first if moved_at is None or when < moved_at else second
        if rep is None:  # reclaimed: nobody works the pooled lead
            break
        what_kind, value = what.split(":")
        if what_kind == "activity":
            plan.activities.append(Activity(when, rep, value))
            continue
        if value in ("proposal", "negotiation", "won"):
            amount = rng.randint(100_000, 9_000_000)
        plan.stages.append(
            StageChange(
                when,
                value,
                rep,
                amount if value in ("proposal", "negotiation", "won") else None,
                rng.choice(list(LossReason)).value if value == "lost" else None,
            )
        )
    # First-response ladder steps: level 1 ten minutes after the assignment (touches come
    # 30 s to an hour after it: some in time, some late), sometimes level 2; half of the
    # clocks resolved. A second owner's clock may breach too.
    if rng.random() < 0.15:
        breach = assigned_at + timedelta(minutes=10)
        if moved_at is None or breach < moved_at:
            resolved = rng.random() < 0.5
            plan.steps.append(Step(1, first, breach, resolved))
            if rng.random() < 0.3 and (
                moved_at is None or breach + timedelta(minutes=30) < moved_at
            ):
                plan.steps.append(Step(2, first, breach + timedelta(minutes=30), resolved))
    if second is not None and moved_at is not None and rng.random() < 0.4:
        plan.steps.append(Step(1, second, moved_at + timedelta(minutes=10), rng.random() < 0.5))


def rate(rng: random.Random, plan: Lead, t: datetime) -> None:
    """Customer satisfaction for a fifth of the leads, decided or not: one or two scores,
    each about one of the lead's owners, any rep on or off the roster, or nobody."""
    if rng.random() >= 0.2:
        return
    owners = [d.owner for d in plan.decisions if d.owner is not None]
    for k in range(rng.choice([1, 1, 2])):
        pick = rng.random()
        rep = (
            rng.choice(owners)
            if owners and pick < 0.6
            else None
            if pick < 0.8
            else rng.choice([*ROSTER, OFF_ROSTER])
        )
        plan.ratings.append(Rating(t + timedelta(days=2, minutes=k), rng.randint(1, 5), rep))


def emit(send: Send, plan: Lead, t: datetime, priority: Priority, offset: int) -> None:
    """The events of ``plan``, each topic's in time order."""
    lead = plan.lead_id
    send(
        "ingest.outcomes",
        plan.source,
        IngestOutcomeRecorded(
            event_id=f"out-{lead}",
            occurred_at=t,
            source=plan.source,
            outcome=IngestOutcome.ACCEPTED,
            lead_id=lead,
            raw_partition=0,
            raw_offset=offset,
        ),
    )
    send(
        "leads.accepted",
        lead,
        accepted(
            lead,
            t,
            event_id=f"acc-{lead}",
            source=plan.source,
            source_lead_id=lead,
            score=50,
            priority=priority,
            is_returning=plan.customer_won_before,
            customer_won_before=plan.customer_won_before,
        ),
    )
    for k, d in enumerate(plan.decisions):
        send(
            "leads.assigned",
            lead,
            LeadAssigned(
                event_id=f"asg-{lead}-{k}",
                occurred_at=d.at,
                assignment_id=f"asg-{lead}-{k}",
                lead_id=lead,
                owner_id=d.owner,
                team_id=plan.team,
                rule_id="r",
                rule_version="v",
                strategy=Strategy(d.strategy),
                kind=AssignmentKind(d.kind),
                previous_owner_id=d.previous_owner,
                reason="test",
                lead_occurred_at=t,
                assigned_at=d.at,
                priority=priority,
                sequence=k,
            ),
        )
    for k, a in enumerate(plan.activities):
        send(
            "crm.activities",
            lead,
            ActivityRecorded(
                event_id=f"act-{lead}-{k}",
                lead_id=lead,
                rep_id=a.rep,
                kind=ActivityKind(a.kind),
                occurred_at=a.at,
            ),
        )
    for k, c in enumerate(plan.stages):
        send(
            "crm.stage-changes",
            lead,
            StageChanged(
                event_id=f"stg-{lead}-{k}",
                lead_id=lead,
                stage=Stage(c.stage),
                occurred_at=c.at,
                rep_id=c.rep,
                amount=None if c.amount_cents is None else c.amount_cents / 100,
                loss_reason=None if c.loss_reason is None else LossReason(c.loss_reason),
            ),
        )
    for k, r in enumerate(plan.ratings):
        send(
            "crm.satisfaction",
            lead,
            SatisfactionRecorded(
                event_id=f"sat-{lead}-{k}",
                lead_id=lead,
                rep_id=r.rep,
                score=r.score,
                occurred_at=r.at,
            ),
        )
    for k, s in enumerate(plan.steps):
        statuses = [EscalationStatus.FIRING] + ([EscalationStatus.RESOLVED] if s.resolved else [])
        for status in statuses:
            send(
                "sla.escalations",
                lead,
                escalation(
                    lead,
                    s.owner,
                    plan.team,
                    s.breached_at,
                    event_id=f"esc-{lead}-{k}-{status.value}",
                    escalation_id=f"esc-{lead}-{k}",
                    level=s.level,
                    status=status,
                ),
            )


def served(text: str) -> dict[Sample, float]:
    """The non-zero leadloop samples of an exposition (zero equals absent)."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("leadloop_"):
            continue
        for s in family.samples:
            if s.value and not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def produce(kafka: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=20)
    await producer.start()
    try:
        for i in range(0, len(messages), 2000):
            futures = [
                await producer.send(qualified(topic, kafka.topic_prefix), value, key=k)
                for topic, k, value in messages[i : i + 2000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.fixture
def metrics(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        BROKER_SESSION_TIMEOUT=str(SESSION_TIMEOUT_S),
        # The events are dated January 2026: a silence sweep would silence every owned
        # open lead. Silence has a test of its own.
        LEADLOOP_SILENT_AFTER_BUSINESS_DAYS="0",
    )
    with running(env, tmp_path, "metrics", clean_exit=False) as group:
        yield group


async def applied(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM metric_applied_events"))


def scrape(group: ServiceGroup) -> str:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=10) as r:
        return str(r.read().decode())


async def test_kill_9_of_the_metrics_worker_leaves_every_series_exact(
    metrics: ServiceGroup, kafka_settings: KafkaSettings, database_url: str
) -> None:
    load = workload(SCALE, seed=6)
    started = time.monotonic()
    producing = asyncio.create_task(produce(kafka_settings, load.messages))
    conn = await asyncpg.connect(database_url)
    killed_at: list[int] = []
    try:
        for fraction in (0.2, 0.5, 0.8):
            deadline = time.monotonic() + TIMEOUT_S / 3
            while await applied(conn) < fraction * load.unique_events:
                assert metrics.alive("metrics"), metrics.log("metrics")
                assert time.monotonic() < deadline, f"stuck at {await applied(conn)}"
                await asyncio.sleep(0.05)
            metrics.signal("metrics", signal.SIGKILL)
            metrics.procs["metrics"].wait(timeout=30)
            killed_at.append(await applied(conn))
            metrics.start("metrics")
            await asyncio.to_thread(metrics.wait_ready, "metrics", timeout=120)
        await producing
        deadline = time.monotonic() + TIMEOUT_S / 3
        while await applied(conn) < load.unique_events:
            assert metrics.alive("metrics"), metrics.log("metrics")
            assert time.monotonic() < deadline, f"stuck at {await applied(conn)}"
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        # The last batch is committed; the view shows it once the handler returns.
        await asyncio.sleep(1)
        assert await applied(conn) == load.unique_events
    finally:
        producing.cancel()
        await conn.close()

    exposition = await asyncio.to_thread(scrape, metrics)
    # The time histograms' boundaries are the truth's own: the scrape must serve them.
    assert not bucket_differences(exposition), "\n".join(bucket_differences(exposition))
    got = served(exposition)
    wanted = served_units(load.expected)
    # Every covered series must have samples in the truth: a comparison of nothing
    # would pass.
    assert {name for name, _ in wanted} == set(COVERED), set(COVERED) ^ {n for n, _ in wanted}
    diffs = differences(wanted, got)
    assert not diffs, describe(diffs)
    compared = {k for k in got if k[0] in COVERED}
    assert len(compared) == len(wanted), (len(compared), len(wanted))
    per_series = Counter(name for name, _ in compared)
    ledger = sum(v for (name, _), v in got.items() if name == "leadloop_leads_by_state")
    assert ledger == sum(
        v for (name, _), v in got.items() if name == "leadloop_leads_accepted_total"
    )
    assert ledger == load.accepted_leads

    result = await reconcile_metrics(metrics, metrics.env, within=600)
    print(
        f"\n{load.unique_events} events ({len(load.messages)} sent), "
        f"{load.accepted_leads} leads, kills at {killed_at}, {elapsed:.0f}s; "
        f"{len(compared)} samples of {len(per_series)} series equal the truth "
        f"({sum(per_series[n] for n in NEW_SERIES)} of the per-rep and ledger series, "
        f"{sum(per_series[n] for n in REPEAT_AND_SATISFACTION)} of repurchases and "
        f"satisfaction)"
        f"\n{result.stdout}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(0 < n < load.unique_events for n in killed_at), killed_at
