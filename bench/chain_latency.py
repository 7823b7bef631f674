"""End to end, ``leads.raw`` to ``leads.assigned``: latency at a steady 1,000 leads/s and
throughput at saturation, side by side with a bare chain of the same two hops.

Both contenders read the same bytes (the simulator's valid new leads, laid out on the
same partitions) from a fresh ``leads.raw`` and write one record per lead to a fresh
``leads.assigned`` through ``leads.accepted``; each hop is ``--workers`` processes in one
consumer group:

- **leadloop**: the real ingest service (``python -m leadloop_ingest``) and the real
  assignment service (``python -m leadloop_assignment``, with ``assignment_latency``'s
  rule set of 200 reps in 10 teams and 13 rules) on one freshly migrated database.
- **bare**: two chained aiokafka relays (``relay_worker``: per batch ``json.loads``
  every record, produce it, acks=all, await the deliveries, commit), raw → accepted →
  assigned.

Every contender is started on empty topics and must be ready (``/readyz``, or "ready"
from every relay) before the clock starts. Then, on the same contender:

- **latency**: the driver produces leads at a steady rate (default 1,000/s, acks=all)
  for a warm-up and a measured window and reads ``leads.assigned`` itself; a lead's
  latency is the time this process saw its output record minus the time it handed its
  ``leads.raw`` record to the producer (one clock, ``perf_counter``).
- **saturation**: N further leads produced as fast as the driver can; leads/s is N over
  the time from the first produced to the N-th output observed.

The driver reads ``leads.accepted`` the same way, so each figure also has its first
hop's share: which of the two steps a lead waits in.

Runs alternate (leadloop, bare, leadloop, …); ratios are medians of per-pair ratios.
With ``--workers 2`` the result also holds the scale-out factor against the one-worker
result (``--baseline``): saturation leads/s with two workers over one.

    python -m bench.chain_latency [--workers 1] [--rate 1000] [--seconds 20]
        [--saturation-leads 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from bench.assignment_latency import percentiles, rule_set
from bench.common import (
    RELAY_BATCH,
    ContenderRun,
    TopicReader,
    add_relay_benchmark_options,
    alternating,
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
    wait_ready_line,
    watch,
    worker_meter,
)
from tests.support.children import ChildProcess, Service
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop.events import RawLead, deterministic_id
from leadloop.settings import KafkaSettings
from leadloop.simulate.traffic import RecordKind, iter_records
from leadloop.topics import by_name, qualified

RAW = "leads.raw"
MID = "leads.accepted"
OUT = "leads.assigned"
RESULTS = ROOT / "bench" / "results"
MODULE = "bench.chain_latency"
DEFAULT_RESULTS = RESULTS / "chain_latency.json"


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """Valid new leads from the simulator's traffic (``iter_records``: every channel,
    country and size), as the channels would produce them: malformed records, exact
    redeliveries and returning people are left out, so every input yields exactly one
    ``leads.accepted`` and one ``leads.assigned``. Keyed records go where Kafka's default
    partitioner puts them, unkeyed ones (the CSV import) round-robin, the same for both
    contenders in every run."""

    keys: list[bytes | None]
    values: list[bytes]
    partitions: list[int]
    #: ``leads.assigned``'s key for leadloop: the lead id ingest derives.
    lead_ids: list[bytes]

    @classmethod
    def build(cls, seed: int, n: int) -> Workload:
        count = by_name(RAW).partitions
        every = list(range(count))
        hash_key = DefaultPartitioner()
        keys: list[bytes | None] = []
        values: list[bytes] = []
        partitions: list[int] = []
        lead_ids: list[bytes] = []
        for record in iter_records(seed):
            if len(values) == n:
                break
            if record.kind is not RecordKind.FRESH:
                continue
            raw = RawLead.model_validate_json(record.value)
            keys.append(record.key)
            values.append(record.value)
            partitions.append(
                hash_key(record.key, every, every)
                if record.key is not None
                else len(values) % count
            )
            lead_ids.append(deterministic_id("lead", raw.source, raw.source_lead_id).encode())
        return cls(keys=keys, values=values, partitions=partitions, lead_ids=lead_ids)

    @property
    def n(self) -> int:
        return len(self.values)


class Arrivals(TopicReader):
    """Reads one of the run's topics (``leads.assigned``, or ``leads.accepted`` for the
    first hop) and notes when each lead's first record was seen (``perf_counter``).
    Leadloop's records are keyed by lead id; the bare chain's carry the raw record's key,
    or for an unkeyed raw record its very bytes."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        by_key: dict[bytes, int],
        by_value: dict[bytes, int],
        n: int,
    ) -> None:
        super().__init__(kafka, topic)
        self._by_key = by_key
        self._by_value = by_value
        self.seen_at = [math.nan] * n
        self.count = 0
        self.duplicates = 0
        self.unexpected = 0

    async def until(self, total: int) -> float:
        """Until ``total`` distinct leads were seen; the ``perf_counter`` time of the last."""
        last = time.perf_counter()
        while self.count < total:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.key is not None:
                        i = self._by_key.get(record.key)
                    else:
                        i = self._by_value.get(record.value or b"")
                    if i is None:
                        self.unexpected += 1
                    elif not math.isnan(self.seen_at[i]):
                        self.duplicates += 1
                    else:
                        self.seen_at[i] = now
                        self.count += 1
                        last = now
        return last


class Producer:
    """Sends the workload's leads to the run's ``leads.raw`` (acks=all): paced, or as fast
    as it can; notes when each lead was handed over."""

    def __init__(self, kafka: KafkaSettings, workload: Workload, **extra: Any) -> None:
        self._topic = qualified(RAW, kafka.topic_prefix)
        self._w = workload
        self._producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", **extra)
        self.sent_at = [0.0] * workload.n
        self.max_behind_s = 0.0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _send(self, i: int) -> asyncio.Future[Any]:
        w = self._w
        self.sent_at[i] = time.perf_counter()
        return await self._producer.send(
            self._topic, w.values[i], key=w.keys[i], partition=w.partitions[i]
        )

    async def paced(
        self, leads: range, rate: float, on_mark: Callable[[], None], mark_at: int
    ) -> float:
        """Lead ``leads[k]`` at ``t0 + k / rate``; ``on_mark`` when lead ``mark_at`` is due
        (the measured window starts). Returns the time the last one was acked."""
        futures = []
        t0 = time.perf_counter()
        k = 0
        while k < len(leads):
            now = time.perf_counter()
            due = min(len(leads), int((now - t0) * rate) + 1)
            if due > k:
                self.max_behind_s = max(self.max_behind_s, now - (t0 + k / rate))
            while k < due:
                if leads[k] == mark_at:
                    on_mark()
                futures.append(await self._send(leads[k]))
                k += 1
            await asyncio.sleep(max(0.001, t0 + k / rate - time.perf_counter()))
        await asyncio.gather(*futures)
        return time.perf_counter()

    async def flood(self, leads: range) -> float:
        """Every lead as fast as the driver can; the time the last one was acked."""
        futures = [await self._send(i) for i in leads]
        await asyncio.gather(*futures)
        return time.perf_counter()


# --------------------------------------------------------------------------- runs


@dataclass(kw_only=True)
class ChainRun(ContenderRun):
    """One contender on one set of topics: the latency phase, then the saturation phase.

    ``cpu_cores`` and ``cpu_ms_per_lead`` are the saturation window's; ``cpu_cores`` has
    every worker process, ``contender`` (their sum), ``kafka`` (the broker), ``postgresql``
    (every server process), ``driver`` and ``machine``."""

    workers: int
    rate_target: float
    rate_achieved: float
    warmup_leads: int
    latency_leads: int
    #: Driver's clock: leads.assigned seen − leads.raw handed to the producer, in ms.
    latency_ms: dict[str, float]
    #: The first hop alone: leads.accepted seen − leads.raw handed to the producer, in ms.
    first_hop_latency_ms: dict[str, float]
    latency_cpu_cores: dict[str, float]
    producer_max_behind_ms: float
    saturation_leads: int
    elapsed_s: float
    leads_per_s: float
    #: When the driver had every saturation lead acknowledged, from the same start.
    produced_s: float
    #: When the N-th saturation lead was seen on leads.accepted, from the same start: the
    #: first hop's share of ``elapsed_s``.
    first_hop_s: float


@dataclass(frozen=True)
class Context:
    """What every run of this benchmark shares."""

    stack: Stack
    workload: Workload
    tmp: Path
    rules_file: Path
    workers: int
    rate: float
    warmup_s: float
    seconds: float
    saturation_leads: int
    run_timeout_s: float
    service_env: dict[str, str] = field(default_factory=dict)

    @property
    def warmup_leads(self) -> int:
        return round(self.rate * self.warmup_s)

    @property
    def latency_leads(self) -> int:
        return self.warmup_leads + round(self.rate * self.seconds)


async def measure(
    ctx: Context,
    kafka: KafkaSettings,
    contender: str,
    workers: Mapping[str, ChildProcess],
    index: int,
) -> ChainRun:
    """The latency phase, then the saturation phase, on contenders that are ready."""
    w = ctx.workload
    lat_n, warm, sat_n = ctx.latency_leads, ctx.warmup_leads, ctx.saturation_leads
    total = lat_n + sat_n
    if contender == "leadloop":
        by_key = {key: i for i, key in enumerate(w.lead_ids[:total])}
        by_value: dict[bytes, int] = {}
    else:
        by_key = {key: i for i, key in enumerate(w.keys[:total]) if key is not None}
        by_value = {w.values[i]: i for i in range(total) if w.keys[i] is None}
    arrivals = Arrivals(kafka, OUT, by_key, by_value, total)
    # The first hop's output, read the same way: which hop a lead waits in.
    accepted = Arrivals(kafka, MID, by_key, by_value, total)
    # Default linger (0) while paced: a lead leaves as soon as it is due, as from a channel.
    paced = Producer(kafka, w)
    # Large batches while flooding keep the driver's share of the two cores small.
    flood = Producer(kafka, w, linger_ms=5, max_batch_size=1024 * 1024)
    load = os.getloadavg()[0]
    names = list(workers)
    lat_cpu = worker_meter(workers)
    marks: list[float] = []

    def window_starts() -> None:
        marks.append(time.perf_counter())
        lat_cpu.start()

    def progress() -> str:
        return f"{contender} run {index}: {arrivals.count} of {total} leads assigned"

    await arrivals.start()
    await accepted.start()
    await paced.start()
    await flood.start()
    try:
        watching = asyncio.create_task(arrivals.until(lat_n))
        first_hop = asyncio.create_task(accepted.until(lat_n))
        producing = asyncio.create_task(paced.paced(range(lat_n), ctx.rate, window_starts, warm))
        sent_last = await watch(workers, producing, timeout_s=ctx.run_timeout_s, progress=progress)
        lat_cores = grouped_cores(lat_cpu.cores(), names)
        lat_last = await watch(workers, watching, timeout_s=ctx.run_timeout_s, progress=progress)
        await watch(workers, first_hop, timeout_s=ctx.run_timeout_s, progress=progress)

        sat_cpu = worker_meter(workers)
        sat_cpu.start()
        t0 = time.perf_counter()
        producing = asyncio.create_task(flood.flood(range(lat_n, total)))
        watching = asyncio.create_task(arrivals.until(total))
        first_hop = asyncio.create_task(accepted.until(total))
        last = await watch(
            workers, watching, timeout_s=ctx.run_timeout_s, progress=progress, feeding=producing
        )
        first_hop_last = await watch(
            workers, first_hop, timeout_s=ctx.run_timeout_s, progress=progress
        )
        sat_cores = grouped_cores(sat_cpu.cores(), names)
        produced = await producing
    finally:
        await flood.stop()
        await paced.stop()
        await accepted.stop()
        await arrivals.stop()
    sent = paced.sent_at
    observed = [(arrivals.seen_at[i] - sent[i]) * 1000 for i in range(warm, lat_n)]
    first_hop_observed = [(accepted.seen_at[i] - sent[i]) * 1000 for i in range(warm, lat_n)]
    elapsed = last - t0
    return ChainRun(
        contender=contender,
        index=index,
        workers=ctx.workers,
        rate_target=ctx.rate,
        rate_achieved=round((lat_n - warm) / (sent[lat_n - 1] - marks[0]), 1)
        if lat_n - warm > 1
        else 0.0,
        warmup_leads=warm,
        latency_leads=lat_n - warm,
        latency_ms=percentiles(observed),
        first_hop_latency_ms=percentiles(first_hop_observed),
        latency_cpu_cores=lat_cores,
        producer_max_behind_ms=round(paced.max_behind_s * 1000, 1),
        saturation_leads=sat_n,
        elapsed_s=round(elapsed, 3),
        leads_per_s=round(sat_n / elapsed, 1),
        produced_s=round(produced - t0, 3),
        first_hop_s=round(first_hop_last - t0, 3),
        cpu_cores=sat_cores,
        cpu_ms_per_lead=round(sat_cores["contender"] * elapsed / sat_n * 1000, 4),
        load_average_1m=round(load, 2),
        detail={
            "output_later_records": arrivals.duplicates,
            "output_unexpected": arrivals.unexpected,
            "latency_acked_s_after_last_sent": round(sent_last - sent[lat_n - 1], 3),
            # Last lead of the latency phase assigned, seconds after it was sent: well
            # above the p50 means a backlog built up (the chain fell behind the rate).
            "latency_drained_s_after_last_sent": round(lat_last - sent[lat_n - 1], 3),
            # Median latency of each 5 s of the window, in sending order: rising means a
            # backlog, flat with a high p99 means stalls.
            "p50_ms_by_slice": _slices(observed, ctx.rate),
            "first_hop_p50_ms_by_slice": _slices(first_hop_observed, ctx.rate),
        },
    )


def _slices(observed: Sequence[float], rate: float, seconds: float = 5) -> list[float]:
    size = max(1, round(rate * seconds))
    return [round(median(observed[i : i + size]), 1) for i in range(0, len(observed), size)]


async def run_leadloop(ctx: Context, index: int) -> ChainRun:
    async with (
        fresh_topics(ctx.stack, unique_prefix("chain")) as kafka,
        fresh_database(ctx.stack, "chain") as db_url,
    ):
        # One pepper for every ingest worker: they must derive the same identities.
        pepper = secrets.token_hex(16)
        services: dict[str, Service] = {}
        for hop, extra in (
            ("ingest", {"LEADLOOP_IDENTITY_PEPPER": pepper}),
            ("assignment", {"LEADLOOP_RULES_FILE": str(ctx.rules_file)}),
        ):
            for k in range(1, ctx.workers + 1):
                services[f"{hop}{k}"] = Service.on(
                    hop,
                    kafka,
                    db_url=db_url,
                    data_dir=ctx.tmp / f"data-{index}-{hop}{k}",
                    extra={**extra, **ctx.service_env},
                    name=f"leadloop {hop}{k}",
                )
        workers: dict[str, ChildProcess] = {}
        try:
            for name, service in services.items():
                workers[name] = await service.start(
                    ctx.tmp / f"{name}-{index}.log", label=f"run {index} {name}"
                )
            # Every worker ready, twice: a late joiner's rebalance can take an early one's
            # partitions away for a moment after it first said ready.
            for _ in range(2):
                await asyncio.gather(*(services[n].ready(c) for n, c in workers.items()))
                await asyncio.sleep(1)
            run = await measure(ctx, kafka, "leadloop", workers, index)
        finally:
            codes = await stop_all(workers)
        run.detail["exit_codes"] = codes
        for name, code in codes.items():
            if code != 0:
                print(f"  warning: {name} exited with {code} after SIGTERM", file=sys.stderr)
        run.detail.update(await _persisted(db_url, ctx.latency_leads + ctx.saturation_leads))
        return run


async def _persisted(db_url: str, n: int) -> dict[str, Any]:
    """What reached PostgreSQL: every lead accepted by ingest and assigned once."""
    conn = await asyncpg.connect(db_url)
    try:
        outcomes = await conn.fetchval("SELECT count(*) FROM ingest_outcomes")
        first = await conn.fetchval(
            "SELECT count(DISTINCT lead_id) FROM assignments WHERE kind IN ('initial', 'pooled')"
        )
    finally:
        await conn.close()
    if first != n:
        raise RuntimeError(f"expected {n} first decisions in PostgreSQL, found {first}")
    return {"ingest_outcome_rows": outcomes, "first_decisions": first}


async def run_bare(ctx: Context, index: int) -> ChainRun:
    async with fresh_topics(ctx.stack, unique_prefix("chain-bare")) as kafka:
        workers: dict[str, ChildProcess] = {}
        try:
            for hop, source, output in (("hop1-", RAW, MID), ("hop2-", MID, OUT)):
                for k in range(1, ctx.workers + 1):
                    # One group per hop, as leadloop's two services have.
                    workers[f"{hop}{k}"] = await start_relay_worker(
                        MODULE,
                        kafka,
                        source,
                        output,
                        log_path=ctx.tmp / f"bare-{index}-{hop}{k}.log",
                        label=f"run {index} {hop}{k}",
                        group=f"bare-{hop}",
                    )
            await asyncio.gather(*(wait_ready_line(c) for c in workers.values()))
            await asyncio.sleep(1)
            run = await measure(ctx, kafka, "bare", workers, index)
        finally:
            codes = await stop_all(workers)
        run.detail["exit_codes"] = codes
        for name, code in codes.items():
            check_exit(workers[name], code)
        return run


# --------------------------------------------------------------------------- report


def summarise(runs: Sequence[ChainRun]) -> dict[str, Any]:
    lead, bare = leadloop_and_bare(runs)
    pairs = list(zip(lead, bare, strict=True))
    keys = ("p50", "p90", "p99", "max")
    out: dict[str, Any] = {}
    for who, rs in (("leadloop", lead), ("bare", bare)):
        out[f"{who}_latency_ms_median"] = {
            k: round(median([r.latency_ms[k] for r in rs]), 1) for k in keys
        }
        out[f"{who}_first_hop_latency_ms_median"] = {
            k: round(median([r.first_hop_latency_ms[k] for r in rs]), 1) for k in keys
        }
        out[f"{who}_leads_per_s_median"] = round(median([r.leads_per_s for r in rs]), 1)
        out[f"{who}_first_hop_s_median"] = round(median([r.first_hop_s for r in rs]), 3)
        out[f"{who}_elapsed_s_median"] = round(median([r.elapsed_s for r in rs]), 3)
        out[f"{who}_cpu_ms_per_lead_median"] = round(median([r.cpu_ms_per_lead for r in rs]), 4)
        out[f"{who}_saturation_cores_median"] = {
            k: round(median([r.cpu_cores.get(k, 0.0) for r in rs]), 2)
            for k in ("contender", "kafka", "postgresql", "driver", "machine")
        }
        out[f"{who}_latency_cores_median"] = {
            k: round(median([r.latency_cpu_cores.get(k, 0.0) for r in rs]), 2)
            for k in ("contender", "kafka", "postgresql", "driver", "machine")
        }
    out["per_pair_latency_ratio"] = {
        k: [ratio(a.latency_ms[k], b.latency_ms[k], 2) for a, b in pairs] for k in keys
    }
    out["latency_ratio_leadloop_over_bare_median"] = {
        k: round(median(v), 2) for k, v in out["per_pair_latency_ratio"].items()
    }
    out["per_pair_throughput_ratio"] = [ratio(a.leads_per_s, b.leads_per_s) for a, b in pairs]
    out["throughput_ratio_leadloop_over_bare_median"] = round(
        median(out["per_pair_throughput_ratio"]), 3
    )
    return out


def markdown(result: dict[str, Any]) -> str:
    lead, bare = leadloop_and_bare([ChainRun(**r) for r in result["runs"]])
    s, m, w = result["summary"], result["machine"], result["workload"]

    def cores(r: ChainRun) -> str:
        c = r.cpu_cores
        return (
            f"{c['contender']:.2f} + {c['kafka']:.2f} + {c['postgresql']:.2f} + "
            f"{c['driver']:.2f} = {c['machine']:.2f}"
        )

    def hop(r: ChainRun) -> str:
        return f"{r.first_hop_latency_ms['p50']:,.1f}, {r.first_hop_latency_ms['p99']:,.1f}"

    lines = [
        f"Chain leads.raw → leads.assigned, {w['workers']} worker(s) per hop, "
        f"{w['rate']:,.0f} leads/s for {w['seconds']:.0f} s after a {w['warmup_s']:.0f} s "
        f"warm-up, then {w['saturation_leads']:,} leads at saturation; "
        f"{len(lead)} alternating pairs, leadloop / bare",
        "",
        "| run | e2e p50 ms | e2e p99 ms | first hop p50 / p99 ms | achieved leads/s "
        "| saturation leads/s | saturation s, first hop / both "
        "| saturation cores leadloop: workers + broker + PostgreSQL + driver = machine "
        "| same, bare | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for a, b in zip(lead, bare, strict=True):
        lines.append(
            f"| {a.index} | {a.latency_ms['p50']:,.1f} / {b.latency_ms['p50']:,.1f} "
            f"| {a.latency_ms['p99']:,.1f} / {b.latency_ms['p99']:,.1f} "
            f"| {hop(a)} / {hop(b)} "
            f"| {a.rate_achieved:,.0f} / {b.rate_achieved:,.0f} "
            f"| {a.leads_per_s:,.0f} / {b.leads_per_s:,.0f} "
            f"| {a.first_hop_s:.1f} of {a.elapsed_s:.1f} "
            f"/ {b.first_hop_s:.1f} of {b.elapsed_s:.1f} "
            f"| {cores(a)} | {cores(b)} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    ll, bl = s["leadloop_latency_ms_median"], s["bare_latency_ms_median"]
    rl = s["latency_ratio_leadloop_over_bare_median"]
    lh, bh = s["leadloop_first_hop_latency_ms_median"], s["bare_first_hop_latency_ms_median"]
    lines += [
        f"| **median** | **{ll['p50']:,.1f} / {bl['p50']:,.1f}** "
        f"| **{ll['p99']:,.1f} / {bl['p99']:,.1f}** "
        f"| {lh['p50']:,.1f}, {lh['p99']:,.1f} / {bh['p50']:,.1f}, {bh['p99']:,.1f} | "
        f"| **{s['leadloop_leads_per_s_median']:,.0f} / {s['bare_leads_per_s_median']:,.0f}** "
        "| | | | |",
        f"| leadloop / bare | ×{rl['p50']:.2f} | ×{rl['p99']:.2f} | | "
        f"| {s['throughput_ratio_leadloop_over_bare_median']:.3f} | | | | |",
    ]
    if "scale_out" in result:
        so = result["scale_out"]
        lines += ["", scale_out_line("saturation leads/s", "per hop", w["workers"], so, s)]
    lines += ["", machine_line(m)]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    warm = round(args.rate * args.warmup)
    n = warm + round(args.rate * args.seconds) + args.saturation_leads
    print(f"building {n:,} new leads (seed {args.seed})", file=sys.stderr)
    workload = Workload.build(args.seed, n)
    rules = rule_set(f"bench-{args.seed}")
    runs: list[ChainRun] = []
    started = time.monotonic()
    extra_env = env_pairs(args.service_env, "--service-env")
    with bench_dir() as tmp:
        rules_file = tmp / "rules.yaml"
        rules_file.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        ctx = Context(
            stack=stack,
            workload=workload,
            tmp=tmp,
            rules_file=rules_file,
            workers=args.workers,
            rate=args.rate,
            warmup_s=args.warmup,
            seconds=args.seconds,
            saturation_leads=args.saturation_leads,
            run_timeout_s=args.timeout,
            service_env=extra_env,
        )
        async for i, run in alternating(
            args.runs, lambda i: run_leadloop(ctx, i), lambda i: run_bare(ctx, i)
        ):
            runs.append(run)
            q = run.latency_ms
            print(
                f"  {run.contender:8} run {i}: p50 {q['p50']:.1f} p99 {q['p99']:.1f} ms at "
                f"{run.rate_achieved:,.0f}/s; saturation {run.leads_per_s:,.0f} leads/s "
                f"(production done at {run.produced_s:.1f} of {run.elapsed_s:.1f} s)",
                file=sys.stderr,
            )
    summary = summarise(runs)
    result: dict[str, Any] = {
        **finish_result("chain_latency", machine, started),
        "workload": {
            "workers": args.workers,
            "rate": args.rate,
            "warmup_s": args.warmup,
            "seconds": args.seconds,
            "latency_leads": ctx.latency_leads - ctx.warmup_leads,
            "saturation_leads": args.saturation_leads,
            "seed": args.seed,
            "partitions": {t: by_name(t).partitions for t in (RAW, MID, OUT)},
            "rules": {
                "version": rules["version"],
                "teams": len(rules["teams"]),
                "reps": sum(len(t["reps"]) for t in rules["teams"]),
                "rules": len(rules["rules"]),
            },
            "bare_batch_size": RELAY_BATCH,
            "service_env": extra_env,
        },
        "summary": summary,
    }
    if args.workers > 1 and args.baseline.is_file():
        result["scale_out"] = scale_out(summary, json.loads(args.baseline.read_text()))
    result["runs"] = [asdict(r) for r in runs]
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="processes per hop, one group")
    parser.add_argument("--rate", type=float, default=1000, help="leads per second, steady")
    parser.add_argument("--warmup", type=float, default=5, help="seconds at the rate not measured")
    parser.add_argument("--seconds", type=float, default=20, help="seconds measured at the rate")
    parser.add_argument(
        "--saturation-leads", type=int, default=20_000, help="leads produced at once"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_RESULTS,
        help="the one-worker result the scale-out factor is computed against",
    )
    add_relay_benchmark_options(
        parser, output=DEFAULT_RESULTS, service="ingest and assignment", env_option="--service-env"
    )
    args = parser.parse_args(argv)
    if args.command != "bare-worker" and args.workers != 1 and args.output == DEFAULT_RESULTS:
        args.output = RESULTS / f"chain_latency-{args.workers}-workers.json"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    positive = (args.runs, args.workers, args.saturation_leads, args.rate, args.seconds)
    if args.command != "bare-worker" and min(positive) <= 0:
        raise SystemExit(
            "--runs, --workers, --saturation-leads, --rate and --seconds must be positive"
        )
    # Every topic is empty when a relay starts: polling until it has its partitions also
    # resolves its start offsets before the clock starts.
    run_relay_benchmark(args, benchmark=benchmark, markdown=markdown, fetch_until_assigned=True)


if __name__ == "__main__":
    main()
