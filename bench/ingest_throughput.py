"""Ingest throughput with PostgreSQL persistence, side by side with a bare aiokafka loop.

Both contenders consume the same bytes (``generate_leads(seed, n)``, laid out on the same
partitions) from a fresh ``leads.raw`` and write to a fresh ``ingest.outcomes``; each is
a separate process, started and caught up on an empty topic before the clock starts:

- **leadloop**: the real ingest service (``python -m leadloop_ingest``) on a freshly
  migrated database: validation, normalisation, scoring, one PostgreSQL transaction per
  batch, ``leads.accepted``/``leads.rejected``/``ingest.outcomes`` with acks=all.
- **bare**: an aiokafka consumer that, per batch, ``json.loads`` every record, produces
  it to the output topic (acks=all), awaits the batch's deliveries and commits.

The clock runs from the first record produced to the n-th output record observed, so
both include the same production work done by this (driver) process. Runs alternate
(leadloop, bare, leadloop, …); the ratio reported is the median of the per-pair ratios.

With ``--workers N`` each contender is N processes in one consumer group (N ingest
services on the one database, N bare loops), and the result also holds the scale-out
factor against the one-worker result (``--baseline``): leads/s with N workers over one.

    python -m bench.ingest_throughput [--leads 50000] [--runs 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from bench.common import (
    RELAY_BATCH,
    ThroughputRun,
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

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import by_name, qualified

RAW = "leads.raw"
OUT = "ingest.outcomes"
RESULTS = ROOT / "bench" / "results"
DEFAULT_RESULTS = RESULTS / "ingest_throughput.json"


@dataclass(frozen=True)
class Workload:
    """The records and the partition each goes to, fixed once for every run.

    Records without a key would be spread at random by the producer; pinning them
    round-robin gives both contenders the same per-partition layout in every run."""

    records: list[tuple[bytes | None, bytes]]
    partitions: list[int]

    @classmethod
    def build(cls, seed: int, n: int) -> Workload:
        records = generate_leads(seed, n)
        count = by_name(RAW).partitions
        every = list(range(count))
        hash_key = DefaultPartitioner()
        partitions = [
            hash_key(key, every, every) if key is not None else i % count
            for i, (key, _) in enumerate(records)
        ]
        return cls(records=records, partitions=partitions)

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def total_bytes(self) -> int:
        return sum(len(v) for _, v in self.records)


@dataclass(kw_only=True)
class Run(ThroughputRun):
    """Timed from the first record produced; ``first_output_s`` (first output record
    observed, from the same start) is the contender's latency to its first batch."""

    #: When the driver had every record acknowledged, from the same start: if this is
    #: close to ``elapsed_s``, production (not the contender) set the pace.
    produced_s: float


class OutputCounter(TopicReader):
    """Counts the records on every partition of the run's output topic."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(kafka, topic)
        self.count = 0

    async def until(self, n: int) -> tuple[float, float]:
        """(first, last) ``perf_counter`` times: first record seen, n-th record seen.
        ``count`` tells how far it got when the caller's timeout cut it short."""
        first = 0.0
        while self.count < n:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(records) for records in batch.values())
            if got and not first:
                first = time.perf_counter()
            self.count += got
        return first, time.perf_counter()


class Feeder:
    """Produces the workload to the run's ``leads.raw`` as fast as the driver can."""

    def __init__(self, kafka: KafkaSettings, workload: Workload) -> None:
        self._topic = qualified(RAW, kafka.topic_prefix)
        self._workload = workload
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks="all",
            # Large batches keep the driver's CPU use low: it shares the machine with the
            # contender, and the less it takes the less it disturbs the measurement.
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=2 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def send_all(self) -> float:
        """Send every record; return the ``perf_counter`` time the last one was acked."""
        w = self._workload
        futures = []
        for (key, value), partition in zip(w.records, w.partitions, strict=True):
            futures.append(
                await self._producer.send(self._topic, value, key=key, partition=partition)
            )
        await asyncio.gather(*futures)
        return time.perf_counter()

    async def stop(self) -> None:
        await self._producer.stop()


@dataclass(frozen=True)
class Context:
    """What every run of this benchmark shares."""

    stack: Stack
    workload: Workload
    tmp: Path
    run_timeout_s: float
    #: Extra environment for the ingest service (configuration experiments).
    ingest_env: dict[str, str] = field(default_factory=dict)
    #: Processes of each contender, in one consumer group.
    workers: int = 1


async def timed_run(
    ctx: Context,
    kafka: KafkaSettings,
    contender: str,
    workers: dict[str, ChildProcess],
    index: int,
) -> Run:
    """Feed the workload to a contender whose workers are ready and time it to the last
    output."""
    counter = OutputCounter(kafka, OUT)
    feeder = Feeder(kafka, ctx.workload)
    cpu = worker_meter(workers)
    load = os.getloadavg()[0]
    # Connections and metadata are set up before the clock starts.
    await counter.start()
    await feeder.start()
    try:
        cpu.start()
        t0 = time.perf_counter()
        producing = asyncio.create_task(feeder.send_all())
        first, last = await watch(
            workers,
            asyncio.create_task(counter.until(ctx.workload.n)),
            timeout_s=ctx.run_timeout_s,
            progress=lambda: f"{counter.count} of {ctx.workload.n} output records",
            feeding=producing,
        )
        cores = grouped_cores(cpu.cores(), list(workers))
        produced = await producing
    finally:
        producing.cancel()
        await feeder.stop()
        await counter.stop()
    n = ctx.workload.n
    return Run(
        contender=contender,
        index=index,
        leads=n,
        elapsed_s=round(last - t0, 3),
        leads_per_s=round(n / (last - t0), 1),
        produced_s=round(produced - t0, 3),
        first_output_s=round(first - t0, 3),
        cpu_cores=cores,
        cpu_ms_per_lead=round(cores.get("contender", 0.0) * (last - t0) / n * 1000, 4),
        load_average_1m=round(load, 2),
    )


async def run_leadloop(ctx: Context, index: int) -> Run:
    async with (
        fresh_topics(ctx.stack, unique_prefix("ingest")) as kafka,
        fresh_database(ctx.stack, "ingest") as db_url,
    ):
        # One pepper for every worker: they must derive the same identities.
        pepper = secrets.token_hex(16)
        services = {
            f"ingest{k}": Service.on(
                "ingest",
                kafka,
                db_url=db_url,
                data_dir=ctx.tmp / f"data-{index}-{k}",
                extra={"LEADLOOP_IDENTITY_PEPPER": pepper, **ctx.ingest_env},
                name=f"leadloop ingest{k}",
            )
            for k in range(1, ctx.workers + 1)
        }
        workers: dict[str, ChildProcess] = {}
        try:
            for name, service in services.items():
                workers[name] = await service.start(
                    ctx.tmp / f"{name}-{index}.log", label=f"run {index} {name}"
                )
            # Caught up on the empty topic: from here on the service is in its steady
            # state. With several workers, ready twice: a late joiner's rebalance can
            # take an early one's partitions away for a moment after it said ready.
            for _ in range(min(ctx.workers, 2)):
                await asyncio.gather(*(services[n].ready(c) for n, c in workers.items()))
                if ctx.workers > 1:
                    await asyncio.sleep(1)
            run = await timed_run(ctx, kafka, "leadloop", workers, index)
        finally:
            codes = await stop_all(workers)
        n = ctx.workload.n
        run.detail = {"exit_codes": codes, **await _persisted(db_url)}
        for name, code in codes.items():
            check_exit(workers[name], code)
        if run.detail["outcome_rows"] != n:
            raise RuntimeError(f"expected {n} outcome rows: {run.detail}")
        return run


async def _persisted(db_url: str) -> dict[str, Any]:
    """What reached PostgreSQL: proof that the figure includes persistence."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT outcome, count(*) AS n FROM ingest_outcomes GROUP BY 1")
        leads = await conn.fetchval("SELECT count(*) FROM leads")
    finally:
        await conn.close()
    by_outcome = {r["outcome"]: r["n"] for r in rows}
    return {"outcome_rows": sum(by_outcome.values()), "outcomes": by_outcome, "lead_rows": leads}


async def run_bare(ctx: Context, index: int) -> Run:
    async with fresh_topics(ctx.stack, unique_prefix("ingest-bare")) as kafka:
        workers: dict[str, ChildProcess] = {}
        try:
            for k in range(1, ctx.workers + 1):
                workers[f"bare{k}"] = await start_relay_worker(
                    "bench.ingest_throughput",
                    kafka,
                    RAW,
                    OUT,
                    log_path=ctx.tmp / f"bare-{index}-{k}.log",
                    label=f"run {index} bare{k}",
                )
            await asyncio.gather(*(wait_ready_line(c) for c in workers.values()))
            if ctx.workers > 1:
                await asyncio.sleep(1)
            run = await timed_run(ctx, kafka, "bare", workers, index)
        finally:
            codes = await stop_all(workers)
        run.detail = {"exit_codes": codes}
        for name, code in codes.items():
            check_exit(workers[name], code)
        return run


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    return throughput_summary(*leadloop_and_bare(runs))


def markdown(result: dict[str, Any]) -> str:
    lead, bare = leadloop_and_bare([Run(**r) for r in result["runs"]])
    m, w = result["machine"], result["workload"]
    workers = w.get("workers", 1)
    lines = [
        f"Ingest throughput, {w['leads']:,} leads ({w['megabytes']} MB, seed {w['seed']}), "
        f"{len(lead)} alternating pairs"
        + (f", {workers} workers per contender in one group" if workers > 1 else ""),
        "",
        *throughput_table(lead, bare, result["summary"], m["nproc"]),
    ]
    if "scale_out" in result:
        lines += [
            "",
            scale_out_line(
                "leads/s", "per contender", workers, result["scale_out"], result["summary"]
            ),
        ]
    return "\n".join([*lines, "", machine_line(m)])


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    print(f"generating {args.leads:,} leads (seed {args.seed})", file=sys.stderr)
    workload = Workload.build(args.seed, args.leads)
    runs: list[Run] = []
    started = time.monotonic()
    ingest_env = env_pairs(args.ingest_env, "--ingest-env")
    with bench_dir() as tmp:
        ctx = Context(stack, workload, tmp, args.timeout, ingest_env, args.workers)
        async for i, run in alternating(
            args.runs, lambda i: run_leadloop(ctx, i), lambda i: run_bare(ctx, i)
        ):
            runs.append(run)
            print(
                f"  {run.contender:8} run {i}: {run.leads_per_s:9,.0f} leads/s "
                f"({run.elapsed_s:.1f} s; production done at {run.produced_s:.1f} s)",
                file=sys.stderr,
            )
    summary = summarise(runs)
    result: dict[str, Any] = {
        **finish_result("ingest_throughput", machine, started),
        "workload": {
            "workers": args.workers,
            "leads": workload.n,
            "seed": args.seed,
            "megabytes": round(workload.total_bytes / 1e6, 1),
            "partitions": by_name(RAW).partitions,
            "bare_batch_size": RELAY_BATCH,
            "ingest_env": ingest_env,
        },
        "summary": summary,
    }
    if args.workers > 1 and args.baseline.is_file():
        result["scale_out"] = scale_out(summary, json.loads(args.baseline.read_text()))
    result["runs"] = [asdict(r) for r in runs]
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=50_000, help="records per run")
    parser.add_argument("--workers", type=int, default=1, help="processes per contender")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_RESULTS,
        help="the one-worker result the scale-out factor is computed against",
    )
    add_relay_benchmark_options(
        parser, output=DEFAULT_RESULTS, service="ingest", env_option="--ingest-env"
    )
    args = parser.parse_args(argv)
    if args.command != "bare-worker" and args.workers != 1 and args.output == DEFAULT_RESULTS:
        args.output = RESULTS / f"ingest_throughput-{args.workers}-workers.json"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command != "bare-worker" and min(args.leads, args.runs, args.workers) < 1:
        raise SystemExit("--leads, --runs and --workers must be at least 1")
    # The topic is empty when the bare worker starts: polling until it has its partitions
    # also resolves its start offsets before the clock starts.
    run_relay_benchmark(args, benchmark=benchmark, markdown=markdown, fetch_until_assigned=True)


if __name__ == "__main__":
    main()
