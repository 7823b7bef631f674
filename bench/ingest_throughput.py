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

    python -m bench.ingest_throughput [--leads 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from bench.common import (
    ROOT,
    ChildProcess,
    CpuMeter,
    Stack,
    free_port,
    fresh_database,
    fresh_topics,
    machine_info,
    median,
    unique_prefix,
    wait_http_ok,
)

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import by_name, qualified

RAW = "leads.raw"
OUT = "ingest.outcomes"
#: The same batch size as the services' default (LEADLOOP_KAFKA__BATCH_SIZE).
BARE_BATCH = 500
READY_TIMEOUT_S = 120
DEFAULT_RESULTS = ROOT / "bench" / "results" / "ingest_throughput.json"


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


@dataclass
class Run:
    contender: str
    index: int
    leads: int
    elapsed_s: float
    leads_per_s: float
    #: When the driver had every record acknowledged, from the same start: if this is
    #: close to ``elapsed_s``, production (not the contender) set the pace.
    produced_s: float
    #: First output record observed: the contender's latency to its first batch.
    first_output_s: float
    #: Average cores used during the timed window by the contender, this driver and the
    #: whole machine (everything: Kafka, PostgreSQL, neighbours).
    cpu_cores: dict[str, float]
    #: CPU time the contender process spent per lead: its cost, which a busy neighbour
    #: disturbs much less than it disturbs wall-clock throughput.
    cpu_ms_per_lead: float
    #: The 1-minute load average when the run started: a busy neighbour shows up here.
    load_average_1m: float
    detail: dict[str, Any] = field(default_factory=dict)


class OutputCounter:
    """Counts records on every partition of one topic, without a consumer group (no
    rebalance to wait for), from offset 0 of a topic created empty for this run."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        name = qualified(topic, kafka.topic_prefix)
        self._partitions = [TopicPartition(name, p) for p in range(by_name(topic).partitions)]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.count = 0

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        # Resolve the start offsets now, so that nothing of it happens inside the clock.
        for tp in self._partitions:
            await self._consumer.position(tp)

    async def until(self, n: int) -> tuple[float, float]:
        """(first, last) ``perf_counter`` times: first record seen, n-th record seen.
        ``count`` tells how far it got when the caller's timeout cut it short."""
        first = 0.0
        while self.count < n:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            got = sum(len(records) for records in batch.values())
            if got and not first:
                first = time.perf_counter()
            self.count += got
        return first, time.perf_counter()

    async def stop(self) -> None:
        await self._consumer.stop()


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


async def timed_run(ctx: Context, kafka: KafkaSettings, contender: ChildProcess, index: int) -> Run:
    """Feed the workload to a contender that is ready and time it to the last output."""
    counter = OutputCounter(kafka, OUT)
    feeder = Feeder(kafka, ctx.workload)
    cpu = CpuMeter(contender=contender.pid, driver=os.getpid())
    load = os.getloadavg()[0]
    # Connections and metadata are set up before the clock starts.
    await counter.start()
    await feeder.start()
    try:
        cpu.start()
        t0 = time.perf_counter()
        producing = asyncio.create_task(feeder.send_all())
        async with asyncio.timeout(ctx.run_timeout_s):
            counting = asyncio.create_task(counter.until(ctx.workload.n))
            while not counting.done():
                # A contender that crashed would otherwise look like a slow one until
                # the timeout.
                if not contender.alive():
                    counting.cancel()
                    raise RuntimeError(f"{contender.name} died mid-run:\n{contender.log_tail()}")
                if producing.done():
                    producing.result()  # a failed feed raises here instead of timing out
                await asyncio.wait({counting}, timeout=0.5)
            first, last = counting.result()
            cores = cpu.cores()
            produced = await producing
    except TimeoutError:
        raise RuntimeError(
            f"{contender.name}: {counter.count} of {ctx.workload.n} output records after "
            f"{ctx.run_timeout_s:.0f} s:\n{contender.log_tail()}"
        ) from None
    finally:
        producing.cancel()
        await feeder.stop()
        await counter.stop()
    n = ctx.workload.n
    return Run(
        contender=contender.name,
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
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LEADLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "LEADLOOP_IDENTITY_PEPPER": secrets.token_hex(16),
            "LEADLOOP_HTTP__PORT": str(port := free_port()),
            "LEADLOOP_DATA_DIR": str(ctx.tmp / f"data-{index}"),
            **ctx.ingest_env,
        }
        ingest = await ChildProcess.start(
            "leadloop",
            [sys.executable, "-m", "leadloop_ingest"],
            env=env,
            log_path=ctx.tmp / f"ingest-{index}.log",
        )
        print(f"  leadloop run {index}: ingest pid {ingest.pid}", file=sys.stderr)
        try:
            # Ready = PostgreSQL reachable, partitions assigned, caught up on the empty
            # topic: from here on the service is in its steady state.
            try:
                async with asyncio.timeout(READY_TIMEOUT_S):
                    await wait_http_ok(f"http://127.0.0.1:{port}/readyz", child=ingest)
            except TimeoutError:
                raise RuntimeError(f"ingest not ready:\n{ingest.log_tail()}") from None
            run = await timed_run(ctx, kafka, ingest, index)
        finally:
            code = await ingest.stop()
        n = ctx.workload.n
        run.detail = {"exit_code": code, **await _persisted(db_url)}
        if code != 0:
            raise RuntimeError(f"ingest exited with {code}:\n{ingest.log_tail()}")
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
        argv = [
            sys.executable,
            "-m",
            "bench.ingest_throughput",
            "bare-worker",
            "--bootstrap",
            kafka.bootstrap_servers,
            "--source",
            qualified(RAW, kafka.topic_prefix),
            "--output",
            qualified(OUT, kafka.topic_prefix),
            "--group",
            f"{kafka.topic_prefix}bare",
        ]
        worker = await ChildProcess.start(
            "bare",
            argv,
            env=os.environ,
            log_path=ctx.tmp / f"bare-{index}.log",
            stdout_pipe=True,
        )
        print(f"  bare run {index}: worker pid {worker.pid}", file=sys.stderr)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                line = await worker.read_line()
            if line != "ready":
                raise RuntimeError(f"bare worker said {line!r}:\n{worker.log_tail()}")
            run = await timed_run(ctx, kafka, worker, index)
        finally:
            code = await worker.stop()
        run.detail = {"exit_code": code}
        if code != 0:
            raise RuntimeError(f"bare worker exited with {code}:\n{worker.log_tail()}")
        return run


async def bare_worker(bootstrap: str, source: str, output: str, group: str) -> None:
    """The baseline: the least a Kafka-to-Kafka step with acknowledged output can do.

    Per batch: getmany → json.loads each record → send each (acks=all) → await every
    delivery → commit. Offsets are committed only after the output is acknowledged, as in
    leadloop, so the baseline keeps the same at-least-once contract."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGTERM, SIGINT: finish the batch in flight, then leave.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=BARE_BATCH)
            futures = []
            for records in batch.values():
                for record in records:
                    # Malformed input is passed on, as a dead letter would be. (Not
                    # contextlib.suppress: an object per record in the baseline's hot loop.)
                    try:  # noqa: SIM105
                        json.loads(record.value or b"")
                    except ValueError:
                        pass
                    futures.append(await producer.send(output, record.value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    lead = [r for r in runs if r.contender == "leadloop"]
    bare = [r for r in runs if r.contender == "bare"]
    pairs = list(zip(lead, bare, strict=True))
    ratios = [_ratio(a.leads_per_s, b.leads_per_s) for a, b in pairs]
    cpu_ratios = [_ratio(a.cpu_ms_per_lead, b.cpu_ms_per_lead) for a, b in pairs]
    return {
        "leadloop_leads_per_s_median": round(median([r.leads_per_s for r in lead]), 1),
        "bare_leads_per_s_median": round(median([r.leads_per_s for r in bare]), 1),
        "per_pair_ratio": ratios,
        "ratio_leadloop_over_bare_median": round(median(ratios), 3),
        "leadloop_cpu_ms_per_lead_median": round(median([r.cpu_ms_per_lead for r in lead]), 4),
        "bare_cpu_ms_per_lead_median": round(median([r.cpu_ms_per_lead for r in bare]), 4),
        "per_pair_cpu_ratio": cpu_ratios,
        "cpu_per_lead_ratio_leadloop_over_bare_median": round(median(cpu_ratios), 2),
    }


def markdown(result: dict[str, Any]) -> str:
    runs = [Run(**r) for r in result["runs"]]
    lead = [r for r in runs if r.contender == "leadloop"]
    bare = [r for r in runs if r.contender == "bare"]
    s, m, w = result["summary"], result["machine"], result["workload"]
    lines = [
        f"Ingest throughput, {w['leads']:,} leads ({w['megabytes']} MB, seed {w['seed']}), "
        f"{len(lead)} alternating pairs",
        "",
        "| run | leadloop leads/s | bare aiokafka leads/s | leadloop / bare "
        "| CPU ms per lead: leadloop / bare | process cores: leadloop / bare "
        f"| machine busy cores (of {m['nproc']}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b, ratio in zip(lead, bare, s["per_pair_ratio"], strict=True):
        lines.append(
            f"| {a.index} | {a.leads_per_s:,.0f} | {b.leads_per_s:,.0f} | {ratio:.3f} "
            f"| {a.cpu_ms_per_lead:.3f} / {b.cpu_ms_per_lead:.3f} "
            f"| {a.cpu_cores.get('contender', 0):.2f} / {b.cpu_cores.get('contender', 0):.2f} "
            f"| {a.cpu_cores['machine']:.2f} / {b.cpu_cores['machine']:.2f} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    lines += [
        f"| **median** | **{s['leadloop_leads_per_s_median']:,.0f}** "
        f"| **{s['bare_leads_per_s_median']:,.0f}** "
        f"| **{s['ratio_leadloop_over_bare_median']:.3f}** "
        f"| **{s['leadloop_cpu_ms_per_lead_median']:.3f} / {s['bare_cpu_ms_per_lead_median']:.3f}"
        f"** (×{s['cpu_per_lead_ratio_leadloop_over_bare_median']:.1f}) | | | |",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Kafka {m['kafka']}, PostgreSQL {m['postgresql']}, "
        f"load average at start {m['load_average_at_start']}, revision {m['git_revision']}.",
    ]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.from_env()
    machine = await machine_info(stack)
    print(f"generating {args.leads:,} leads (seed {args.seed})", file=sys.stderr)
    workload = Workload.build(args.seed, args.leads)
    runs: list[Run] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="leadloop-bench-") as tmp_dir:
        ctx = Context(stack, workload, Path(tmp_dir), args.timeout, _env_pairs(args.ingest_env))
        for i in range(1, args.runs + 1):
            # Alternating pairs: a drift in machine load hits both contenders alike.
            for contender, go in (("leadloop", run_leadloop), ("bare", run_bare)):
                run = await go(ctx, i)
                runs.append(run)
                print(
                    f"  {contender:8} run {i}: {run.leads_per_s:9,.0f} leads/s "
                    f"({run.elapsed_s:.1f} s; production done at {run.produced_s:.1f} s)",
                    file=sys.stderr,
                )
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "ingest_throughput",
        # When the measurement finished (the machine's load is recorded at both ends).
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - started, 1),
        "workload": {
            "leads": workload.n,
            "seed": args.seed,
            "megabytes": round(workload.total_bytes / 1e6, 1),
            "partitions": by_name(RAW).partitions,
            "bare_batch_size": BARE_BATCH,
            "ingest_env": ctx.ingest_env,
        },
        "machine": machine,
        "summary": summarise(runs),
        "runs": [asdict(r) for r in runs],
    }


def _env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--ingest-env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=50_000, help="records per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each contender")
    parser.add_argument("--seed", type=int, default=20250303, help="generate_leads seed")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds one run may take before it fails"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS, help="results JSON")
    parser.add_argument(
        "--ingest-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the ingest service, e.g. LEADLOOP_KAFKA__BATCH_SIZE=2000",
    )
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("bare-worker", help="(internal) the bare aiokafka loop process")
    worker.add_argument("--bootstrap", required=True)
    worker.add_argument("--source", required=True)
    worker.add_argument("--output", required=True, dest="output_topic")
    worker.add_argument("--group", required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "bare-worker":
        asyncio.run(bare_worker(args.bootstrap, args.source, args.output_topic, args.group))
        return
    if args.leads < 1 or args.runs < 1:
        raise SystemExit("--leads and --runs must be at least 1")
    result = asyncio.run(benchmark(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
