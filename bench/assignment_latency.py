"""Assignment latency at a steady 1,000 leads/s and throughput at saturation, side by side
with a bare aiokafka loop.

Both contenders consume the same ``leads.accepted`` events from a fresh topic and write
one record per lead, keyed by the lead id, to a fresh ``leads.assigned``; each is a
separate process:

- **leadloop**: the real assignment service (``python -m leadloop_assignment``) on a
  freshly migrated database, with a generated rule set of 200 reps in 10 teams and 13
  rules that use every strategy: one PostgreSQL transaction per batch (team cursors
  locked, decisions, load, intake and weighted counts), ``leads.assigned`` with acks=all.
- **bare**: an aiokafka consumer that, per batch, ``json.loads`` every record, produces
  it to the output topic (acks=all), awaits the batch's deliveries and commits.

Two measurements per contender and run, each on its own topics (and database):

- **latency**: the contender is started on empty topics and must be ready; then this
  driver produces leads at a steady rate (default 1,000/s, acks=all) for a warm-up and a
  measured window, and reads ``leads.assigned`` itself. A lead's latency is the time this
  process saw its ``leads.assigned`` record minus the time it handed its
  ``leads.accepted`` record to the producer: both on one clock (``perf_counter``), so no
  clock skew between processes enters. The Kafka record timestamps (CreateTime of both
  records, set by the two producers from the same machine's wall clock) are reported
  beside it.
- **saturation**: N leads are produced before the contender starts; leads/s is counted
  from the first output record observed to the N-th, so start-up is left out.

Runs alternate (leadloop, bare, leadloop, …); ratios are medians of per-pair ratios.

With ``--workers N`` (N > 1) only saturation is measured (the latency at 1,000 leads/s
is a one-worker figure: it is in the one-worker result). Each contender is N processes
in one consumer group (N assignment services on the one database, N bare loops), CPU is
metered per worker and summed. The workers are started on the empty topic and the clock
only starts once every one of them is ready and the group is stable with N members, each
with partitions of ``leads.accepted`` (so no rebalance happens while measuring); then the
``--saturation-leads`` are produced as fast as the driver can and leads/s is counted, as
with one worker, from the first output record observed to the last. ``preload_s`` says when the
driver had produced them all: the contender reads them while they are produced. The
result also holds the scale-out factor against the one-worker result (``--baseline``):
saturation leads/s with N workers over one.

    python -m bench.assignment_latency [--rate 1000] [--warmup 10] [--duration 30]
        [--saturation-leads 20000] [--runs 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.group import MemberAssignment
from bench.common import (
    RELAY_BATCH,
    ContenderRun,
    CpuMeter,
    ThroughputRun,
    TopicReader,
    add_relay_benchmark_options,
    bench_dir,
    check_exit,
    env_pairs,
    finish_result,
    grouped_cores,
    leadloop_and_bare,
    machine_info,
    machine_line,
    median,
    ratio,
    run_relay_benchmark,
    running_stack,
    scale_out,
    scale_out_line,
    start_relay_worker,
    stop_all,
    throughput_summary,
    throughput_table,
    wait_ready_line,
    watch,
    worker_meter,
)
from tests.support.children import ChildProcess, Service
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop.events import LeadAccepted, RawLead, deterministic_id
from leadloop.settings import KafkaSettings
from leadloop.simulate.traffic import RecordKind, iter_records
from leadloop.topics import by_name, qualified
from leadloop_assignment.domain.rules import RuleSet
from leadloop_ingest.domain.scoring import ScoringWeights, score
from leadloop_ingest.domain.validation import NormalisedContact

ACCEPTED = "leads.accepted"
ASSIGNED = "leads.assigned"
RESULTS = ROOT / "bench" / "results"
DEFAULT_RESULTS = RESULTS / "assignment_latency.json"
PERCENTILES = (50, 90, 99)

# --------------------------------------------------------------------------- workload

TEAMS = 10
REPS_PER_TEAM = 20
_EMEA = ["GB", "DE", "FR", "NL", "ES", "IT", "SE", "CH"]
#: team id, time zone, strategy of its main rule: the teams the rule set routes to.
_TEAMS: tuple[tuple[str, str], ...] = (
    ("team-cn-east", "Asia/Shanghai"),
    ("team-cn-south", "Asia/Shanghai"),
    ("team-greater-china", "Asia/Taipei"),
    ("team-apac", "Asia/Singapore"),
    ("team-emea-enterprise", "Europe/Berlin"),
    ("team-emea", "Europe/London"),
    ("team-americas", "America/New_York"),
    ("team-enterprise", "Asia/Shanghai"),
    ("team-partners", "UTC"),
    ("team-inbound", "UTC"),
)


def rep_ids(team: str) -> list[str]:
    return [f"rep-{team.removeprefix('team-')}-{r:02d}" for r in range(1, REPS_PER_TEAM + 1)]


def rule_set(version: str) -> dict[str, Any]:
    """200 reps in 10 teams and an ordered rule list that exercises every strategy and
    every skip reason (away, left, at capacity, daily cap), as a YAML-ready document.

    Per team: the last rep is away, every other team has a rep who left, every 7th rep
    has a small open-lead cap and every 5th a daily cap, so the busy teams hit both
    during a run; weights 1–3 give the weighted teams uneven shares."""
    teams = []
    for t, (team, zone) in enumerate(_TEAMS):
        reps = []
        for r, rep in enumerate(rep_ids(team), start=1):
            entry: dict[str, Any] = {"rep_id": rep, "capacity": 100_000, "weight": 1 + r % 3}
            if r == REPS_PER_TEAM:
                entry["status"] = "away"
            elif r == REPS_PER_TEAM - 1 and t % 2 == 0:
                entry["status"] = "left"
            if r % 7 == 0:
                entry["capacity"] = 150
            if r % 5 == 0:
                entry["daily_cap"] = 300
            reps.append(entry)
        teams.append({"team_id": team, "manager_id": f"mgr-{t:02d}", "timezone": zone,
                      "reps": reps})  # fmt: skip
    rules: list[dict[str, Any]] = [
        {"rule_id": "returning-customer", "when": {"is_returning": {"equals": True}},
         "strategy": "sticky"},
        {"rule_id": "key-account-referral",
         "when": {"source": {"equals": "referral"}, "company_size": {"gte": 5000}},
         "team": "team-enterprise", "strategy": "direct", "rep_id": rep_ids("team-enterprise")[0]},
        {"rule_id": "hot-enterprise",
         "when": {"priority": {"equals": "hot"}, "company_size": {"gte": 1000}},
         "team": "team-enterprise", "strategy": "least_loaded"},
        {"rule_id": "partner-program", "when": {"campaign": {"equals": "partner-program"}},
         "team": "team-partners", "strategy": "weighted"},
        {"rule_id": "trade-show-cold",
         "when": {"source": {"equals": "trade_show_csv"}, "priority": {"equals": "cold"}},
         "team": "team-inbound", "strategy": "pool"},
        {"rule_id": "china-wechat",
         "when": {"country": {"equals": "CN"}, "source": {"equals": "wechat"}},
         "team": "team-cn-east", "strategy": "weighted"},
        {"rule_id": "china", "when": {"country": {"equals": "CN"}},
         "team": "team-cn-south", "strategy": "weighted"},
        {"rule_id": "greater-china", "when": {"country": {"in": ["HK", "TW", "MO"]}},
         "team": "team-greater-china", "strategy": "round_robin"},
        {"rule_id": "apac", "when": {"country": {"in": ["SG", "JP", "IN", "AU", "KR"]}},
         "team": "team-apac", "strategy": "round_robin"},
        {"rule_id": "emea-large",
         "when": {"country": {"in": _EMEA}, "company_size": {"gte": 200}},
         "team": "team-emea-enterprise", "strategy": "least_loaded"},
        {"rule_id": "emea", "when": {"country": {"in": _EMEA}},
         "team": "team-emea", "strategy": "round_robin"},
        {"rule_id": "americas", "when": {"country": {"in": ["US", "CA", "BR", "MX"]}},
         "team": "team-americas", "strategy": "round_robin"},
        {"rule_id": "default", "team": "team-inbound", "strategy": "round_robin"},
    ]  # fmt: skip
    doc = {"version": version, "teams": teams, "rules": rules}
    RuleSet.model_validate(doc)  # a generated rule set the service would refuse fails here
    return doc


@dataclass(frozen=True)
class Workload:
    """Accepted leads, encoded once and sent as the same bytes to every contender.

    Built from the simulator's traffic (``iter_records``): its new and returning people,
    with their channels, countries, company sizes, budgets and campaigns, scored by
    ingest's own scoring, as ingest would publish them. Malformed records and exact
    redeliveries are left out: ingest never publishes them. A returning person gets a
    previous owner drawn from the roster (away and left reps included, so the sticky
    rule also falls through)."""

    keys: list[bytes]
    values: list[bytes]
    mix: dict[str, Any]

    @classmethod
    def build(cls, seed: int, n: int) -> Workload:
        rng = random.Random(seed)
        reps = [rep for team, _ in _TEAMS for rep in rep_ids(team)]
        weights = ScoringWeights()
        now = datetime.now(UTC)
        keys: list[bytes] = []
        values: list[bytes] = []
        priorities: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        returning = 0
        for record in iter_records(seed):
            if len(values) == n:
                break
            if record.kind in (RecordKind.MALFORMED, RecordKind.REDELIVERY):
                continue
            raw = RawLead.model_validate_json(record.value)
            points, priority = score(
                raw, NormalisedContact(email=raw.email, phone=raw.phone, name=None), weights
            )
            is_returning = record.kind is RecordKind.RETURNING
            lead_id = deterministic_id("lead", raw.source, raw.source_lead_id)
            event = LeadAccepted(
                event_id=deterministic_id(ACCEPTED, lead_id),
                occurred_at=raw.occurred_at or now,
                lead_id=lead_id,
                source=raw.source,
                source_lead_id=raw.source_lead_id,
                accepted_at=now,
                country=raw.country,
                region=raw.region,
                city=raw.city,
                industry=raw.industry,
                product=raw.product,
                company_size=raw.company_size,
                budget=raw.budget,
                campaign=raw.campaign,
                is_returning=is_returning,
                previous_owner_id=rng.choice(reps) if is_returning else None,
                score=points,
                priority=priority,
            )
            keys.append(lead_id.encode())
            values.append(event.model_dump_json().encode())
            priorities[priority.value] += 1
            sources[raw.source] += 1
            returning += is_returning
        mix = {
            "priority": dict(priorities.most_common()),
            "source": dict(sources.most_common()),
            "returning": returning,
            "mean_bytes": round(sum(map(len, values)) / max(1, len(values))),
        }
        return cls(keys=keys, values=values, mix=mix)

    @property
    def n(self) -> int:
        return len(self.values)


# --------------------------------------------------------------------------- measurement


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles, the maximum and the mean, rounded to 0.1 ms."""
    ordered = sorted(values)
    out = {f"p{p}": round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)
           for p in PERCENTILES}  # fmt: skip
    out["max"] = round(ordered[-1], 1)
    out["mean"] = round(sum(ordered) / len(ordered), 1)
    return out


@dataclass(kw_only=True)
class LatencyRun(ContenderRun):
    """Per-lead latency at a steady rate; CPU over the measured window."""

    rate_target: float
    #: Leads produced in the measured window (after the warm-up) and the rate achieved.
    leads: int
    warmup_leads: int
    rate_achieved: float
    #: Driver's clock: leads.assigned seen by this process − leads.accepted handed to the
    #: producer, in ms (p50, p90, p99, max, mean over the measured leads).
    latency_ms: dict[str, float]
    #: CreateTime(leads.assigned) − CreateTime(leads.accepted), in ms: the contender's
    #: producer stamps its record when it sends it, so the output's acknowledgement and
    #: this driver's fetch are not in it (1 ms resolution).
    record_timestamp_ms: dict[str, float]
    #: Most the paced producer fell behind its schedule: if large, the driver (not the
    #: contender) shaped the traffic.
    producer_max_behind_ms: float


@dataclass(kw_only=True)
class SaturationRun(ThroughputRun):
    """Timed from the first output record observed to the N-th; leads/s counts the leads
    after the first fetched batch over that time, so neither start-up nor the first batch
    is in it. ``first_output_s``: contender process start → first output record
    (start-up, group join, first batch); with several workers, which start before the
    leads are produced, the driver's producer start → first output record."""

    preload_s: float


class OutputWatcher(TopicReader):
    """Reads the run's ``leads.assigned`` and notes, per expected key, when it was first
    seen (``perf_counter``) and its record timestamp."""

    def __init__(self, kafka: KafkaSettings, keys: Sequence[bytes]) -> None:
        super().__init__(kafka, ASSIGNED)
        self._index = {key: i for i, key in enumerate(keys)}
        self.seen_at = [math.nan] * len(keys)
        self.stamped_ms = [0] * len(keys)
        self.count = 0
        #: Records for a lead already seen: a later move (a pool drain) or a redelivery.
        self.duplicates = 0
        self.unexpected = 0
        self.first_batch = 0

    async def until_all(self, on_first: Callable[[], None] | None = None) -> float:
        """Wait until every expected key was seen; the ``perf_counter`` time of the last."""
        total = len(self._index)
        while self.count < total:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            now = time.perf_counter()
            before = self.count
            for records in batch.values():
                for record in records:
                    i = self._index.get(record.key) if record.key is not None else None
                    if i is None:
                        self.unexpected += 1
                    elif not math.isnan(self.seen_at[i]):
                        self.duplicates += 1
                    else:
                        self.seen_at[i] = now
                        self.stamped_ms[i] = record.timestamp
                        self.count += 1
            if before == 0 and self.count:
                self.first_batch = self.count
                if on_first is not None:
                    on_first()
        return time.perf_counter()


def _producer(kafka: KafkaSettings, **extra: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**kafka.client_kwargs(), acks="all", **extra)


class PacedProducer:
    """Sends leads at a steady rate (acks=all), noting when each was handed over."""

    def __init__(self, kafka: KafkaSettings, workload: Workload, n: int, rate: float) -> None:
        self._topic = qualified(ACCEPTED, kafka.topic_prefix)
        self._workload = workload
        self._n = n
        self._rate = rate
        # Default linger (0): a record leaves as soon as the previous request is done,
        # as a lead from ingest would; nothing is held back to fill a batch.
        self._producer = _producer(kafka)
        self.sent_at = [0.0] * n
        self.stamped_ms = [0] * n
        self.max_behind_s = 0.0
        #: ``perf_counter`` time the i-th lead was handed over, for i = the warm-up count.
        self.marks: dict[int, float] = {}

    async def start(self) -> None:
        await self._producer.start()

    async def send_all(self, mark_at: int, on_mark: Callable[[], None]) -> float:
        """Send lead i at ``t0 + i / rate``; call ``on_mark`` when lead ``mark_at`` is
        due (the measured window starts). Returns the time the last one was acked."""
        w, rate = self._workload, self._rate
        futures = []
        t0 = time.perf_counter()
        i = 0
        while i < self._n:
            now = time.perf_counter()
            due = min(self._n, int((now - t0) * rate) + 1)
            if due > i:
                self.max_behind_s = max(self.max_behind_s, now - (t0 + i / rate))
            while i < due:
                if i == mark_at:
                    on_mark()
                    self.marks[i] = time.perf_counter()
                self.sent_at[i] = time.perf_counter()
                # CreateTime set here, so both ends of the record-timestamp latency are
                # stamped the same way (by a producer, from the wall clock).
                stamp = int(time.time() * 1000)
                self.stamped_ms[i] = stamp
                futures.append(
                    await self._producer.send(
                        self._topic, w.values[i], key=w.keys[i], timestamp_ms=stamp
                    )
                )
                i += 1
            await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
        await asyncio.gather(*futures)
        self.marks[self._n] = time.perf_counter()
        return time.perf_counter()

    async def stop(self) -> None:
        await self._producer.stop()


async def preload(kafka: KafkaSettings, workload: Workload, n: int) -> float:
    """Produce the first ``n`` leads as fast as possible; seconds it took."""
    producer = _producer(kafka, linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        topic = qualified(ACCEPTED, kafka.topic_prefix)
        t0 = time.perf_counter()
        futures = [
            await producer.send(topic, workload.values[i], key=workload.keys[i]) for i in range(n)
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Context:
    """What every run of this benchmark shares."""

    stack: Stack
    workload: Workload
    tmp: Path
    rules_file: Path
    rate: float
    warmup_s: float
    duration_s: float
    saturation_leads: int
    run_timeout_s: float
    #: Extra environment for the assignment service (configuration experiments).
    service_env: dict[str, str] = field(default_factory=dict)
    #: Processes of each contender in saturation, in one consumer group.
    workers: int = 1

    @property
    def warmup_leads(self) -> int:
        return round(self.rate * self.warmup_s)

    @property
    def latency_leads(self) -> int:
        return self.warmup_leads + round(self.rate * self.duration_s)


async def measure_latency(
    ctx: Context, kafka: KafkaSettings, contender: ChildProcess, index: int
) -> LatencyRun:
    """Steady traffic to a contender that is ready; per-lead latency after the warm-up."""
    n, warm = ctx.latency_leads, ctx.warmup_leads
    w = ctx.workload
    watcher = OutputWatcher(kafka, w.keys[:n])
    producer = PacedProducer(kafka, w, n, ctx.rate)
    cpu = CpuMeter(contender=contender.pid, driver=os.getpid())
    load = os.getloadavg()[0]
    window: dict[str, dict[str, float]] = {}

    def window_starts() -> None:
        cpu.start()

    await watcher.start()
    await producer.start()
    watching = asyncio.create_task(watcher.until_all())
    producing = asyncio.create_task(producer.send_all(warm, window_starts))
    try:
        await watch(contender, producing, timeout_s=ctx.run_timeout_s, progress=lambda: "producing")
        window["cores"] = cpu.cores()
        await watch(
            contender,
            watching,
            timeout_s=ctx.run_timeout_s,
            progress=lambda: f"{watcher.count} of {n} assigned",
        )
    finally:
        for task in (watching, producing):
            task.cancel()
        await producer.stop()
        await watcher.stop()
    measured = range(warm, n)
    observed = [(watcher.seen_at[i] - producer.sent_at[i]) * 1000 for i in measured]
    stamped = [float(watcher.stamped_ms[i] - producer.stamped_ms[i]) for i in measured]
    wall = producer.marks[n] - producer.marks[warm]
    cores = window["cores"]
    return LatencyRun(
        contender=contender.name,
        index=index,
        rate_target=ctx.rate,
        leads=n - warm,
        warmup_leads=warm,
        rate_achieved=round((n - warm) / wall, 1),
        latency_ms=percentiles(observed),
        record_timestamp_ms=percentiles(stamped),
        producer_max_behind_ms=round(producer.max_behind_s * 1000, 1),
        cpu_cores=cores,
        cpu_ms_per_lead=round(cores.get("contender", 0.0) * wall / (n - warm) * 1000, 4),
        load_average_1m=round(load, 2),
        detail={
            "output_later_records": watcher.duplicates,
            "output_unexpected": watcher.unexpected,
            "p50_ms_by_slice": _slices(observed, ctx.rate),
        },
    )


def _slices(observed: Sequence[float], rate: float, seconds: float = 5) -> list[float]:
    """The median latency of each ``seconds`` of the measured window, in sending order:
    a rising series means a backlog (the contender fell behind the rate), a flat one
    with a high p99 means stalls."""
    size = max(1, round(rate * seconds))
    return [round(median(observed[i : i + size]), 1) for i in range(0, len(observed), size)]


async def measure_saturation(
    ctx: Context,
    kafka: KafkaSettings,
    start: Callable[[], Awaitable[ChildProcess]],
    index: int,
    preload_s: float,
) -> tuple[SaturationRun, ChildProcess]:
    """Start a contender on a preloaded topic; time it from its first output to its last."""
    n = ctx.saturation_leads
    watcher = OutputWatcher(kafka, ctx.workload.keys[:n])
    await watcher.start()
    load = os.getloadavg()[0]
    contender = await start()
    try:
        cpu = CpuMeter(contender=contender.pid, driver=os.getpid())
        started = time.perf_counter()
        first: list[float] = []

        def first_output() -> None:
            first.append(time.perf_counter())
            cpu.start()

        last = await watch(
            contender,
            asyncio.create_task(watcher.until_all(first_output)),
            timeout_s=ctx.run_timeout_s,
            progress=lambda: f"{watcher.count} of {n} assigned",
        )
        cores = cpu.cores()
    except BaseException:
        await contender.stop()
        raise
    finally:
        await watcher.stop()
    run = _saturation_run(
        contender.name, index, watcher, (started, first[0], last), preload_s, cores, load
    )
    return run, contender


def _partitions_of(member_assignment: bytes, topic: str) -> list[int]:
    """A group member's partitions of ``topic``, from its assignment as the broker
    describes it (the consumer protocol's ``MemberAssignment``)."""
    decoded = MemberAssignment.decode(member_assignment)
    return sorted(p for t, parts in decoded.get_item("assignment") if t == topic for p in parts)


async def group_settled(
    kafka: KafkaSettings, group: str, members: int, timeout_s: float
) -> dict[str, list[int]]:
    """Until the consumer group ``group`` (full name) is stable with ``members`` members,
    each assigned at least one partition of the run's ``leads.accepted``; then each
    member's partitions of it. A worker that says it is ready may still lose its
    partitions to a later joiner's rebalance; a stable group with every member assigned
    has no rebalance pending."""
    topic = qualified(ACCEPTED, kafka.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    seen: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                [response] = await admin.describe_consumer_groups([group])
                [seen] = response.to_object()["groups"]
                if seen["state"] == "Stable" and len(seen["members"]) == members:
                    assigned = {
                        m["member_id"]: _partitions_of(m["member_assignment"], topic)
                        for m in seen["members"]
                        if m["member_assignment"]
                    }
                    if len(assigned) == members and all(assigned.values()):
                        return assigned
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise RuntimeError(
            f"group {group} not stable with {members} assigned members after "
            f"{timeout_s:.0f} s: state {seen.get('state')}, "
            f"{len(seen.get('members', []))} members"
        ) from None
    finally:
        await admin.close()


async def measure_saturation_group(
    ctx: Context,
    kafka: KafkaSettings,
    contender: str,
    workers: Mapping[str, ChildProcess],
    index: int,
) -> SaturationRun:
    """Produce the leads to a contender whose workers are all ready in a stable group, as
    fast as the driver can; time it from its first output to its last. ``first_output_s``
    and ``preload_s`` count from the driver starting its producer."""
    n = ctx.saturation_leads
    watcher = OutputWatcher(kafka, ctx.workload.keys[:n])
    cpu = worker_meter(workers)
    await watcher.start()
    load = os.getloadavg()[0]
    first: list[float] = []

    def first_output() -> None:
        first.append(time.perf_counter())
        cpu.start()

    started = time.perf_counter()
    producing = asyncio.create_task(preload(kafka, ctx.workload, n))
    try:
        last = await watch(
            workers,
            asyncio.create_task(watcher.until_all(first_output)),
            timeout_s=ctx.run_timeout_s,
            progress=lambda: f"{watcher.count} of {n} assigned",
            feeding=producing,
        )
        cores = grouped_cores(cpu.cores(), list(workers))
        preload_s = await producing
    finally:
        producing.cancel()
        await watcher.stop()
    return _saturation_run(
        contender, index, watcher, (started, first[0], last), preload_s, cores, load
    )


def _saturation_run(
    contender: str,
    index: int,
    watcher: OutputWatcher,
    times: tuple[float, float, float],
    preload_s: float,
    cores: dict[str, float],
    load: float,
) -> SaturationRun:
    """The run's figures from its clock (started, first output, last output)."""
    started, first, last = times
    n = len(watcher.seen_at)
    elapsed = last - first
    counted = n - watcher.first_batch
    return SaturationRun(
        contender=contender,
        index=index,
        leads=n,
        elapsed_s=round(elapsed, 3),
        leads_per_s=round(counted / elapsed, 1) if elapsed > 0 else math.inf,
        first_output_s=round(first - started, 3),
        preload_s=round(preload_s, 3),
        cpu_cores=cores,
        cpu_ms_per_lead=round(cores.get("contender", 0.0) * elapsed / max(1, counted) * 1000, 4),
        load_average_1m=round(load, 2),
        detail={"first_batch": watcher.first_batch, "output_later_records": watcher.duplicates},
    )


# --------------------------------------------------------------------------- contenders


async def start_assignment(
    ctx: Context, kafka: KafkaSettings, db_url: str, name: str, process: str = "leadloop"
) -> tuple[ChildProcess, Service]:
    """The service as a child process (named ``process``), and how to wait until it is
    ready."""
    service = Service.on(
        "assignment",
        kafka,
        db_url=db_url,
        data_dir=ctx.tmp / f"data-{name}",
        extra={"LEADLOOP_RULES_FILE": str(ctx.rules_file), **ctx.service_env},
        name=process,
    )
    return await service.start(ctx.tmp / f"assignment-{name}.log", label=name), service


async def start_bare(ctx: Context, kafka: KafkaSettings, name: str) -> ChildProcess:
    # The child's name is "bare" (start_bare_worker), for every worker.
    return await start_relay_worker(
        "bench.assignment_latency",
        kafka,
        ACCEPTED,
        ASSIGNED,
        log_path=ctx.tmp / f"bare-{name}.log",
        label=name,
    )


async def _service_stopped(child: ChildProcess) -> dict[str, Any]:
    """Stop the service (SIGTERM) and say how it ended.

    A service that died during the measurement has already failed the run (the driver
    watches it). A crash while shutting down, after every lead was assigned and checked,
    does not change the figures; it is recorded with its reason and reported, not
    hidden and not fatal."""
    code = await child.stop()
    detail: dict[str, Any] = {"exit_code": code}
    if code != 0:
        tail = child.log_tail(20_000).splitlines()
        why = [line for line in tail if "Crashed reason=" in line or '"critical"' in line]
        detail["unclean_shutdown"] = (why[-1] if why else tail[-1] if tail else "")[:300]
        print(
            f"  warning: {child.name} exited with {code} after SIGTERM: "
            f"{detail['unclean_shutdown']}",
            file=sys.stderr,
        )
    return detail


async def _decisions(db_url: str, n: int) -> dict[str, Any]:
    """What reached PostgreSQL: one first decision per lead, and how the rules spread
    them (proof that several rules, strategies and teams took part)."""
    conn = await asyncpg.connect(db_url)
    try:
        first = await conn.fetchval(
            "SELECT count(DISTINCT lead_id) FROM assignments WHERE kind IN ('initial', 'pooled')"
        )
        rows = await conn.fetch(
            "SELECT kind, strategy, rule_id, team_id, count(*) AS n FROM assignments "
            "GROUP BY 1, 2, 3, 4"
        )
        skips = await conn.fetch(
            "SELECT c->>'skipped' AS why, count(DISTINCT a.assignment_id) AS n "
            "FROM assignments a, jsonb_array_elements(a.reason->'candidates') c "
            "WHERE c->>'skipped' IS NOT NULL GROUP BY 1 ORDER BY 2 DESC"
        )
    finally:
        await conn.close()

    def by(col: str) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for r in rows:
            totals[r[col]] += r["n"]
        return dict(totals.most_common())

    if first != n:
        raise RuntimeError(f"expected {n} first decisions in PostgreSQL, found {first}")
    return {
        "first_decisions": first,
        "by_kind": by("kind"),
        "by_strategy": by("strategy"),
        "by_rule": by("rule_id"),
        "by_team": by("team_id"),
        # Decisions that skipped at least one candidate for this reason.
        "decisions_with_skip": {r["why"]: r["n"] for r in skips},
    }


async def leadloop_latency(ctx: Context, index: int) -> LatencyRun:
    async with (
        fresh_topics(ctx.stack, unique_prefix("assignment")) as kafka,
        fresh_database(ctx.stack, "assignment") as db_url,
    ):
        child, service = await start_assignment(ctx, kafka, db_url, f"latency-{index}")
        try:
            # Caught up on the empty topic: from here on the service is in its steady state.
            await service.ready(child)
            run = await measure_latency(ctx, kafka, child, index)
        finally:
            stopped = await _service_stopped(child)
        run.detail.update(stopped)
        run.detail.update(await _decisions(db_url, ctx.latency_leads))
        return run


async def bare_latency(ctx: Context, index: int) -> LatencyRun:
    async with fresh_topics(ctx.stack, unique_prefix("assignment-bare")) as kafka:
        child = await start_bare(ctx, kafka, f"latency-{index}")
        try:
            await wait_ready_line(child)
            run = await measure_latency(ctx, kafka, child, index)
        finally:
            code = await child.stop()
        check_exit(child, code)
        return run


async def leadloop_saturation(ctx: Context, index: int) -> SaturationRun:
    if ctx.workers > 1:
        return await leadloop_saturation_group(ctx, index)
    async with (
        fresh_topics(ctx.stack, unique_prefix("assignment")) as kafka,
        fresh_database(ctx.stack, "assignment") as db_url,
    ):
        preload_s = await preload(kafka, ctx.workload, ctx.saturation_leads)

        async def start() -> ChildProcess:
            child, _ = await start_assignment(ctx, kafka, db_url, f"saturation-{index}")
            return child

        # /readyz is not the start signal here: it also says "caught up" (lag), which a
        # service facing a preloaded backlog is not; the clock starts at its first output.
        run, child = await measure_saturation(ctx, kafka, start, index, preload_s)
        run.detail.update(await _service_stopped(child))
        run.detail.update(await _decisions(db_url, ctx.saturation_leads))
        return run


async def bare_saturation(ctx: Context, index: int) -> SaturationRun:
    if ctx.workers > 1:
        return await bare_saturation_group(ctx, index)
    async with fresh_topics(ctx.stack, unique_prefix("assignment-bare")) as kafka:
        preload_s = await preload(kafka, ctx.workload, ctx.saturation_leads)

        async def start() -> ChildProcess:
            return await start_bare(ctx, kafka, f"saturation-{index}")

        run, child = await measure_saturation(ctx, kafka, start, index, preload_s)
        check_exit(child, await child.stop())
        return run


async def leadloop_saturation_group(ctx: Context, index: int) -> SaturationRun:
    """``--workers N``: N services in one group on one database, ready and settled on
    the empty topic before the leads are produced."""
    async with (
        fresh_topics(ctx.stack, unique_prefix("assignment")) as kafka,
        fresh_database(ctx.stack, "assignment") as db_url,
    ):
        workers: dict[str, ChildProcess] = {}
        services: dict[str, Service] = {}
        stopped: dict[str, dict[str, Any]] = {}
        try:
            for k in range(1, ctx.workers + 1):
                name = f"assignment{k}"
                workers[name], services[name] = await start_assignment(
                    ctx, kafka, db_url, f"saturation-{index}-{k}", f"leadloop {name}"
                )
            # Caught up on the empty topic; then the group must have settled with every
            # worker in it, and each still (or again) ready after the last rebalance.
            await asyncio.gather(*(services[n].ready(c) for n, c in workers.items()))
            assigned = await group_settled(
                kafka, f"{kafka.topic_prefix}leadloop-assignment", ctx.workers, ctx.run_timeout_s
            )
            await asyncio.gather(*(services[n].ready(c) for n, c in workers.items()))
            run = await measure_saturation_group(ctx, kafka, "leadloop", workers, index)
        finally:
            details = await asyncio.gather(*(_service_stopped(c) for c in workers.values()))
            stopped = dict(zip(workers, details, strict=True))
        codes = [d["exit_code"] for d in stopped.values()]
        run.detail["exit_code"] = next((c for c in codes if c != 0), 0)
        run.detail["workers"] = stopped
        run.detail["partitions_by_member"] = sorted(assigned.values())
        run.detail.update(await _decisions(db_url, ctx.saturation_leads))
        return run


async def bare_saturation_group(ctx: Context, index: int) -> SaturationRun:
    """``--workers N``: N bare loops in one group, ready and settled on the empty topic
    before the leads are produced."""
    async with fresh_topics(ctx.stack, unique_prefix("assignment-bare")) as kafka:
        workers: dict[str, ChildProcess] = {}
        try:
            for k in range(1, ctx.workers + 1):
                workers[f"bare{k}"] = await start_bare(ctx, kafka, f"saturation-{index}-{k}")
            await asyncio.gather(*(wait_ready_line(c) for c in workers.values()))
            assigned = await group_settled(
                kafka, f"{kafka.topic_prefix}bare", ctx.workers, ctx.run_timeout_s
            )
            run = await measure_saturation_group(ctx, kafka, "bare", workers, index)
        finally:
            codes = await stop_all(workers)
        run.detail["exit_codes"] = codes
        run.detail["partitions_by_member"] = sorted(assigned.values())
        for name, code in codes.items():
            check_exit(workers[name], code)
        return run


# --------------------------------------------------------------------------- report


def summarise(latency: Sequence[LatencyRun], saturation: Sequence[SaturationRun]) -> dict[str, Any]:
    """Both measurements' medians; no latency runs (``--workers N``): an empty latency."""
    lat_l, lat_b = leadloop_and_bare(latency)
    keys = [*(f"p{p}" for p in PERCENTILES), "max"]
    lat: dict[str, Any] = {}
    for who, runs in (("leadloop", lat_l), ("bare", lat_b)) if latency else ():
        lat[f"{who}_ms_median"] = {k: round(median([r.latency_ms[k] for r in runs]), 1)
                                   for k in keys}  # fmt: skip
        lat[f"{who}_record_timestamp_ms_median"] = {
            k: round(median([r.record_timestamp_ms[k] for r in runs]), 1) for k in keys
        }
        lat[f"{who}_cores_median"] = round(
            median([r.cpu_cores.get("contender", 0) for r in runs]), 2
        )
        lat[f"{who}_cpu_ms_per_lead_median"] = round(median([r.cpu_ms_per_lead for r in runs]), 4)
    if latency:
        pairs = list(zip(lat_l, lat_b, strict=True))
        lat["per_pair_ratio"] = {k: [ratio(a.latency_ms[k], b.latency_ms[k]) for a, b in pairs]
                                 for k in keys}  # fmt: skip
        lat["ratio_leadloop_over_bare_median"] = {
            k: round(median(v), 2) for k, v in lat["per_pair_ratio"].items()
        }
    sat = throughput_summary(*leadloop_and_bare(saturation))
    unclean = [
        f"{r.contender} {kind} {r.index}"
        for kind, runs in (("latency", latency), ("saturation", saturation))
        for r in runs
        if r.detail.get("exit_code", 0) != 0
    ]
    return {"latency": lat, "saturation": sat, "unclean_shutdowns": unclean}


def _latency_lines(result: dict[str, Any]) -> list[str]:
    """The latency table, then a blank line; nothing when latency was not measured."""
    lat_runs = [LatencyRun(**r) for r in result["latency_runs"]]
    if not lat_runs:
        return []
    s, m, w = result["summary"], result["machine"], result["workload"]
    ls = s["latency"]
    lead, bare = leadloop_and_bare(lat_runs)

    def ms(d: Mapping[str, float], k: str) -> str:
        return f"{d[k]:,.1f}"

    lines = [
        f"Assignment latency, {w['rate']:,.0f} leads/s for {w['duration_s']:.0f} s after a "
        f"{w['warmup_s']:.0f} s warm-up ({w['rules']['reps']} reps in {w['rules']['teams']} "
        f"teams, {w['rules']['rules']} rules), {len(lead)} alternating pairs; "
        "ms from leads.accepted produced to leads.assigned seen, leadloop / bare",
        "",
        "| run | p50 | p90 | p99 | max | achieved leads/s | process cores: leadloop / bare "
        f"| machine busy cores (of {m['nproc']}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b in zip(lead, bare, strict=True):
        cells = " | ".join(
            f"{ms(a.latency_ms, k)} / {ms(b.latency_ms, k)}" for k in ("p50", "p90", "p99", "max")
        )
        lines.append(
            f"| {a.index} | {cells} | {a.rate_achieved:,.0f} / {b.rate_achieved:,.0f} "
            f"| {a.cpu_cores.get('contender', 0):.2f} / {b.cpu_cores.get('contender', 0):.2f} "
            f"| {a.cpu_cores['machine']:.2f} / {b.cpu_cores['machine']:.2f} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    lm, bm, rm = (
        ls["leadloop_ms_median"],
        ls["bare_ms_median"],
        ls["ratio_leadloop_over_bare_median"],
    )
    cells = " | ".join(f"**{ms(lm, k)} / {ms(bm, k)}**" for k in ("p50", "p90", "p99", "max"))
    ratio_cells = " | ".join(f"×{rm[k]:.1f}" for k in ("p50", "p90", "p99", "max"))
    lt, bt = ls["leadloop_record_timestamp_ms_median"], ls["bare_record_timestamp_ms_median"]
    stamp_cells = " | ".join(f"{ms(lt, k)} / {ms(bt, k)}" for k in ("p50", "p90", "p99", "max"))
    lines += [
        f"| **median** | {cells} | | **{ls['leadloop_cores_median']:.2f} / "
        f"{ls['bare_cores_median']:.2f}** | | |",
        f"| leadloop / bare | {ratio_cells} | | | | |",
        f"| record timestamps (median) | {stamp_cells} | | | | |",
        "",
    ]
    return lines


def markdown(result: dict[str, Any]) -> str:
    sat_runs = [SaturationRun(**r) for r in result["saturation_runs"]]
    s, m, w = result["summary"], result["machine"], result["workload"]
    # A result from before the benchmark took ``--workers`` ran one.
    workers = w.get("workers", 1)
    lines = [
        *_latency_lines(result),
        (
            f"Throughput at saturation, {w['saturation_leads']:,} leads produced once "
            f"{workers} workers per contender were settled in one group, "
            f"{len(sat_runs) // 2} alternating pairs"
            if workers > 1
            else f"Throughput at saturation, {w['saturation_leads']:,} preloaded leads"
        ),
        "",
        *throughput_table(*leadloop_and_bare(sat_runs), s["saturation"], m["nproc"]),
    ]
    if "scale_out" in result:
        lines += [
            "",
            scale_out_line(
                "saturation leads/s",
                "per contender",
                workers,
                result["scale_out"],
                s["saturation"],
            ),
        ]
    return "\n".join([*lines, "", machine_line(m)])


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    warmup_leads = round(args.rate * args.warmup)
    latency_leads = warmup_leads + round(args.rate * args.duration)
    # With several workers only saturation is measured.
    with_latency = args.workers == 1
    n = max(latency_leads if with_latency else 0, args.saturation_leads)
    print(f"building {n:,} accepted leads (seed {args.seed})", file=sys.stderr)
    workload = Workload.build(args.seed, n)
    rules = rule_set(f"bench-{args.seed}")
    rules_text = yaml.safe_dump(rules, sort_keys=False)
    latency: list[LatencyRun] = []
    saturation: list[SaturationRun] = []
    started = time.monotonic()
    extra_env = env_pairs(args.service_env, "--service-env")
    with bench_dir() as tmp:
        rules_file = tmp / "rules.yaml"
        rules_file.write_text(rules_text, encoding="utf-8")
        ctx = Context(
            stack=stack,
            workload=workload,
            tmp=tmp,
            rules_file=rules_file,
            rate=args.rate,
            warmup_s=args.warmup,
            duration_s=args.duration,
            saturation_leads=args.saturation_leads,
            run_timeout_s=args.timeout,
            service_env=extra_env,
            workers=args.workers,
        )
        for i in range(1, args.runs + 1):
            # Alternating: a drift in machine load hits both contenders alike.
            for go_l in (leadloop_latency, bare_latency) if with_latency else ():
                lat = await go_l(ctx, i)
                latency.append(lat)
                q = lat.latency_ms
                print(
                    f"  {lat.contender:8} latency {i}: p50 {q['p50']:.1f} p90 {q['p90']:.1f} "
                    f"p99 {q['p99']:.1f} max {q['max']:.1f} ms at {lat.rate_achieved:,.0f}/s",
                    file=sys.stderr,
                )
            for go_s in (leadloop_saturation, bare_saturation):
                done = await go_s(ctx, i)
                saturation.append(done)
                print(
                    f"  {done.contender:8} saturation {i}: {done.leads_per_s:9,.0f} leads/s "
                    f"({done.elapsed_s:.1f} s after the first output at "
                    f"{done.first_output_s:.1f} s)",
                    file=sys.stderr,
                )
    summary = summarise(latency, saturation)
    result: dict[str, Any] = {
        **finish_result("assignment_latency", machine, started),
        "workload": {
            "workers": args.workers,
            "rate": args.rate,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            # 0: not measured (several workers).
            "latency_leads": latency_leads if with_latency else 0,
            "saturation_leads": args.saturation_leads,
            "seed": args.seed,
            "mix": workload.mix,
            "rules": {
                "version": rules["version"],
                "teams": len(rules["teams"]),
                "reps": sum(len(t["reps"]) for t in rules["teams"]),
                "rules": len(rules["rules"]),
                "sha256": hashlib.sha256(rules_text.encode()).hexdigest()[:12],
            },
            "partitions": by_name(ACCEPTED).partitions,
            "bare_batch_size": RELAY_BATCH,
            "service_env": extra_env,
        },
        "summary": summary,
    }
    if args.workers > 1 and args.baseline.is_file():
        baseline = json.loads(args.baseline.read_text())
        # scale_out reads a throughput summary: here, the baseline's saturation.
        result["scale_out"] = scale_out(
            summary["saturation"], {**baseline, "summary": baseline["summary"]["saturation"]}
        )
    result["latency_runs"] = [asdict(r) for r in latency]
    result["saturation_runs"] = [asdict(r) for r in saturation]
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="leads per second, steady")
    parser.add_argument("--warmup", type=float, default=10, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=30, help="seconds measured")
    parser.add_argument(
        "--saturation-leads", type=int, default=20_000, help="leads preloaded for saturation"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes per contender in one consumer group; with more than one only "
        "saturation is measured (latency is skipped), with every worker ready and the "
        "group stable before the leads are produced",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_RESULTS,
        help="the one-worker result the saturation scale-out factor is computed against",
    )
    add_relay_benchmark_options(
        parser, output=DEFAULT_RESULTS, service="assignment", env_option="--service-env"
    )
    args = parser.parse_args(argv)
    if args.command != "bare-worker" and args.workers != 1 and args.output == DEFAULT_RESULTS:
        args.output = RESULTS / f"assignment_latency-{args.workers}-workers.json"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command != "bare-worker":
        if args.runs < 1 or args.saturation_leads < 1 or args.rate <= 0 or args.duration <= 0:
            raise SystemExit("--runs, --saturation-leads, --rate and --duration must be positive")
        partitions = by_name(ACCEPTED).partitions
        if not 1 <= args.workers <= partitions:
            # A worker without a partition would never be settled in the group.
            raise SystemExit(f"--workers must be between 1 and {partitions} (the partitions)")
    # The saturation topic is preloaded: the bare worker must not fetch before "ready".
    run_relay_benchmark(args, benchmark=benchmark, markdown=markdown, fetch_until_assigned=False)


if __name__ == "__main__":
    main()
