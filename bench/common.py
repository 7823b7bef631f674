"""What every benchmark under ``bench/`` shares beyond the harness: the bare contenders'
processes and handshake, the aiokafka relay, timed runs and their statistics, and the
description of the machine a figure was measured on.

Benchmarks run against the real Kafka broker and PostgreSQL server that ``make stack-up``
starts (``make bench`` does that and exports ``.state/env``), through the harness the
tests use (``tests.support``: ``stack`` for the stack, fresh databases and topics,
``children`` for service processes). Each run gets its own topic prefix and, when it
needs one, its own freshly migrated database, so runs never see each other's data and a
leftover from an aborted run cannot flatter the next one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition
from tests.support.children import READY_TIMEOUT_S, ChildProcess
from tests.support.processes import ROOT
from tests.support.stack import Stack

from leadloop.settings import KafkaSettings
from leadloop.topics import by_name, qualified

__all__ = [
    "RELAY_BATCH",
    "ContenderRun",
    "CpuMeter",
    "ThroughputRun",
    "TopicReader",
    "add_env_option",
    "add_relay_benchmark_options",
    "add_relay_worker_command",
    "add_run_options",
    "alternating",
    "announce_ready",
    "bench_dir",
    "check_exit",
    "env_pairs",
    "finish_result",
    "leadloop_and_bare",
    "machine_info",
    "machine_line",
    "median",
    "ratio",
    "relay_worker",
    "run_relay_benchmark",
    "running_stack",
    "start_bare_worker",
    "start_relay_worker",
    "stop_on_signals",
    "throughput_summary",
    "throughput_table",
    "wait_ready_line",
    "watch",
    "write_result",
]

STATE = Path(os.environ.get("LEADLOOP_STATE_DIR", ROOT / ".state"))


def running_stack() -> Stack:
    """The running broker and database server (``.state/env``)."""
    stack = Stack.from_env()
    if stack is None:
        # Fail with the fix, not with a connection error three layers down.
        raise SystemExit(
            "DATABASE_URL is not set: run benchmarks with `make bench`, or start the "
            "stack with `make stack-up` and `. .state/env` first"
        )
    return stack


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process, all its threads (``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _machine_busy_s() -> float:
    """CPU seconds all CPUs spent on anything but idle and I/O wait (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    # user..steal; guest time is already counted in user.
    return (sum(values[:8]) - idle - iowait) / _TICKS_PER_S


class CpuMeter:
    """Average CPU use, in cores, of some processes and of the whole machine over a window.

    On a shared 2-core machine this is what makes a figure interpretable: a contender at
    1.0 core is bound by its one Python thread; a machine near ``nproc`` busy cores was
    saturated (by the run or by a neighbour) and its figures are less trustworthy."""

    def __init__(self, **pids: int) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {"machine": _machine_busy_s()}
        for name, pid in self._pids.items():
            with contextlib.suppress(OSError):
                sample[name] = _process_cpu_s(pid)
        return sample

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._start = self._sample()

    def cores(self) -> dict[str, float]:
        """Average cores used since ``start``, per process name and ``machine``."""
        wall = time.perf_counter() - self._t0
        end = self._sample()
        return {
            name: round((end[name] - self._start[name]) / wall, 2)
            for name in self._start
            if name in end
        }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _kafka_version(stack: Stack) -> str:
    """The broker jar's version when the broker is the one ``make stack-up`` started;
    Kafka's protocol does not report a release version to clients."""
    ours = f"127.0.0.1:{os.environ.get('LEADLOOP_KAFKA_PORT', '19092')}"
    if stack.bootstrap != ours:
        return f"unknown (external broker {stack.bootstrap})"
    libs = Path(os.environ.get("LEADLOOP_KAFKA_LIBS", STATE / "kafka" / "libs"))
    for jar in sorted(libs.glob("kafka_2.13-*.jar")):
        match = re.fullmatch(r"kafka_2\.13-([0-9][0-9A-Za-z.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown"


def _git_revision() -> str:
    """HEAD, and for a dirty tree a hash of its diff, so two runs of the same uncommitted
    code can be told apart from runs of different uncommitted code. ``bench/`` itself is
    left out: the revision names the code under test, not the benchmarks or their results."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout

    try:
        rev = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD", "--", ".", ":(exclude)bench")
        untracked = git(
            "ls-files", "--others", "--exclude-standard", "-z", "--", ".", ":(exclude)bench"
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not diff and not untracked:
        return rev
    digest = hashlib.sha256(diff)
    for name in sorted(untracked.split(b"\0")):
        path = ROOT / name.decode()
        if name and path.is_file():
            digest.update(name + b"\0" + path.read_bytes())
    return f"{rev}+dirty:{digest.hexdigest()[:10]}"


async def machine_info(stack: Stack) -> dict[str, Any]:
    """What a reader needs to judge a figure: the hardware, the software, and how busy
    the machine was (it is shared, so the load average is part of the result)."""
    conn = await asyncpg.connect(stack.admin_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": _kafka_version(stack),
        "postgresql": pg_version,
        "git_revision": _git_revision(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------- contenders

#: The bare relay's batch: the same as the services' default (LEADLOOP_KAFKA__BATCH_SIZE).
RELAY_BATCH = 500
#: What a bare worker prints on stdout once it can take records.
_READY_LINE = "ready"

T = TypeVar("T")


async def start_bare_worker(
    module: str, args: Sequence[str], *, log_path: Path, label: str
) -> ChildProcess:
    """``python -m module bare-worker ARGS``: a benchmark's bare contender, in its own
    process like the service it is compared with; it says "ready" on stdout. ``label``
    names it on stderr with its pid."""
    child = await ChildProcess.start(
        "bare",
        [sys.executable, "-m", module, "bare-worker", *args],
        env=os.environ,
        log_path=log_path,
        stdout_pipe=True,
    )
    print(f"  {label}: bare worker pid {child.pid}", file=sys.stderr)
    return child


async def wait_ready_line(child: ChildProcess, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until a bare worker started with ``start_bare_worker`` says it is ready."""
    async with asyncio.timeout(timeout_s):
        line = await child.read_line()
    if line != _READY_LINE:
        raise RuntimeError(f"bare worker said {line!r}:\n{child.log_tail()}")


def announce_ready() -> None:
    """The bare worker's side of ``wait_ready_line``."""
    print(_READY_LINE, flush=True)


def check_exit(child: ChildProcess, code: int) -> None:
    """A contender that did not exit cleanly after SIGTERM fails the run, with its log."""
    if code != 0:
        raise RuntimeError(f"{child.name} exited with {code}:\n{child.log_tail()}")


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set: a bare worker finishes what it has in flight,
    then leaves (``ChildProcess.stop`` sends SIGTERM, as to a service)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def watch(
    contenders: ChildProcess | Mapping[str, ChildProcess],
    work: asyncio.Task[T],
    *,
    timeout_s: float,
    progress: Callable[[], str],
    feeding: asyncio.Task[Any] | None = None,
) -> T:
    """Await ``work`` while the contender (or every worker of it) lives: a crashed one
    would otherwise look like a slow one until the timeout. A ``feeding`` task that
    failed (the driver's producer) raises here instead of timing out. ``progress`` says
    how far it got."""
    children = [contenders] if isinstance(contenders, ChildProcess) else list(contenders.values())
    try:
        async with asyncio.timeout(timeout_s):
            while not work.done():
                for child in children:
                    if not child.alive():
                        work.cancel()
                        raise RuntimeError(f"{child.name} died mid-run:\n{child.log_tail()}")
                if feeding is not None and feeding.done():
                    feeding.result()
                await asyncio.wait({work}, timeout=0.5)
            return work.result()
    except TimeoutError:
        work.cancel()
        tails = "\n".join(f"{c.name}:\n{c.log_tail()}" for c in children)
        raise RuntimeError(f"{progress()} after {timeout_s:.0f} s:\n{tails}") from None


async def stop_all(workers: Mapping[str, ChildProcess]) -> dict[str, int]:
    """Stop every worker of a contender at once; each one's exit code."""
    codes = await asyncio.gather(*(c.stop() for c in workers.values()))
    return dict(zip(workers, codes, strict=True))


def server_pids() -> dict[str, int]:
    """The broker and PostgreSQL's processes, to meter what a contender costs them: the
    services' connections are open before a window starts, so their backends are here."""
    pids: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()
            if comm == "java" and b"kafka.Kafka" in (entry / "cmdline").read_bytes():
                pids[f"kafka:{entry.name}"] = int(entry.name)
            elif comm == "postgres":
                pids[f"postgresql:{entry.name}"] = int(entry.name)
    return pids


def worker_meter(workers: Mapping[str, ChildProcess]) -> CpuMeter:
    """A meter of every worker, this driver, the broker and PostgreSQL."""
    return CpuMeter(
        **{name: c.pid for name, c in workers.items()}, driver=os.getpid(), **server_pids()
    )


def grouped_cores(cores: Mapping[str, float], workers: Sequence[str]) -> dict[str, float]:
    """A ``worker_meter``'s reading: per worker, then the contender's total, the broker,
    PostgreSQL, the driver and the machine."""
    out = {name: cores.get(name, 0.0) for name in workers}
    out["contender"] = round(sum(out.values()), 2)
    for group in ("kafka", "postgresql"):
        out[group] = round(sum(v for k, v in cores.items() if k.startswith(f"{group}:")), 2)
    out["driver"] = cores.get("driver", 0.0)
    out["machine"] = cores["machine"]
    return out


class TopicReader:
    """Reads every partition of one of the run's topics without a consumer group (no
    rebalance to wait for), from offset 0 of a topic created empty for the run."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        name = qualified(topic, kafka.topic_prefix)
        self._partitions = [TopicPartition(name, p) for p in range(by_name(topic).partitions)]
        self.consumer = AIOKafkaConsumer(
            **kafka.client_kwargs(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self._partitions)
        # Resolve the start offsets now, so that none of it happens inside the clock.
        for tp in self._partitions:
            await self.consumer.position(tp)

    async def stop(self) -> None:
        await self.consumer.stop()


# --------------------------------------------------------------------------- bare relay


async def start_relay_worker(
    module: str,
    kafka: KafkaSettings,
    source: str,
    output: str,
    *,
    log_path: Path,
    label: str,
    idempotent: bool = False,
    group: str = "bare",
) -> ChildProcess:
    """``module``'s ``bare-worker`` (``relay_worker``) relaying ``source`` to ``output``
    (registry names) on the run's topics, in the consumer group ``group`` of the run;
    with ``idempotent`` its producer has idempotence on, as leadloop's have."""
    args = [
        *(["--idempotent"] if idempotent else []),
        "--bootstrap",
        kafka.bootstrap_servers,
        "--source",
        qualified(source, kafka.topic_prefix),
        "--output",
        qualified(output, kafka.topic_prefix),
        "--group",
        f"{kafka.topic_prefix}{group}",
    ]
    return await start_bare_worker(module, args, log_path=log_path, label=label)


def add_relay_worker_command(parser: argparse.ArgumentParser) -> None:
    """The ``bare-worker`` subcommand that ``start_relay_worker`` fills in."""
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("bare-worker", help="(internal) the bare aiokafka loop process")
    worker.add_argument("--bootstrap", required=True)
    worker.add_argument("--source", required=True)
    worker.add_argument("--output", required=True, dest="output_topic")
    worker.add_argument("--group", required=True)
    worker.add_argument("--idempotent", action="store_true", help="enable_idempotence")


class _OnAssigned(ConsumerRebalanceListener):
    def __init__(self, assigned: asyncio.Event) -> None:
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: object) -> None:
        self._assigned.set()


async def relay_worker(args: argparse.Namespace, *, fetch_until_assigned: bool) -> None:
    """The baseline: the least a Kafka-to-Kafka step with acknowledged output can do.

    Per batch of up to ``RELAY_BATCH``: getmany → json.loads each record → send each
    (acks=all) → await every delivery → commit. Offsets are committed only after the
    output is acknowledged, as in leadloop, so the baseline keeps the same at-least-once
    contract.

    ``fetch_until_assigned``: poll (fetch) until the group gave it partitions, which also
    resolves the start offsets before it says "ready"; only for a topic that is empty at
    start. Otherwise it waits for its partitions without fetching: on a preloaded topic a
    fetch before "ready" would drop records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    assigned = asyncio.Event()
    consumer.subscribe([args.source], listener=_OnAssigned(assigned))
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=args.idempotent
    )
    output = args.output_topic
    await consumer.start()
    await producer.start()
    stop = stop_on_signals()
    try:
        if fetch_until_assigned:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        else:
            await assigned.wait()
        announce_ready()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=RELAY_BATCH)
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


# --------------------------------------------------------------------------- runs


async def alternating(
    runs: int, *steps: Callable[[int], Awaitable[T]]
) -> AsyncIterator[tuple[int, T]]:
    """Run 1 of every step in order, then run 2 of every step, …: leadloop, bare,
    leadloop, bare, so that a drift in the machine's load hits both contenders alike."""
    for i in range(1, runs + 1):
        for step in steps:
            yield i, await step(i)


@contextlib.contextmanager
def bench_dir() -> Iterator[Path]:
    """A temporary directory for the run's logs, data and configuration files."""
    with tempfile.TemporaryDirectory(prefix="leadloop-bench-") as tmp:
        yield Path(tmp)


def finish_result(benchmark: str, machine: dict[str, Any], started: float) -> dict[str, Any]:
    """The head of a result: its name, when the measurement finished and how long it took
    (``started`` from ``time.monotonic()``); the machine's load is recorded at both ends."""
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": benchmark,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine,
    }


def write_result(path: Path, result: Mapping[str, Any], markdown: str) -> None:
    """The result as JSON at ``path``, and its markdown table on stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown)


def env_pairs(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` command-line pairs as an environment."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"{option} wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def add_run_options(
    parser: argparse.ArgumentParser,
    *,
    output: Path,
    runs_help: str = "runs of each contender",
    seed_help: str | None = None,
    timeout_help: str | None = None,
) -> None:
    """``--runs`` and ``--output``; ``--seed`` and ``--timeout`` when they have a help."""
    parser.add_argument("--runs", type=int, default=3, help=runs_help)
    if seed_help is not None:
        parser.add_argument("--seed", type=int, default=20250303, help=seed_help)
    if timeout_help is not None:
        parser.add_argument("--timeout", type=float, default=600, help=timeout_help)
    parser.add_argument("--output", type=Path, default=output, help="results JSON")


def add_relay_benchmark_options(
    parser: argparse.ArgumentParser, *, output: Path, service: str, env_option: str
) -> None:
    """The options every benchmark against ``relay_worker`` has, after its own: runs,
    seed, timeout, output, extra environment for the service, and ``bare-worker``."""
    add_run_options(
        parser,
        output=output,
        seed_help="seed of the simulated traffic (leadloop.simulate)",
        timeout_help="seconds one timed run may take before it fails",
    )
    add_env_option(parser, env_option, service)
    add_relay_worker_command(parser)


def run_relay_benchmark(
    args: argparse.Namespace,
    *,
    benchmark: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    markdown: Callable[[dict[str, Any]], str],
    fetch_until_assigned: bool,
) -> None:
    """``main`` of a benchmark against ``relay_worker``: as ``bare-worker``, be the bare
    contender; otherwise run the benchmark and write its result."""
    if args.command == "bare-worker":
        asyncio.run(relay_worker(args, fetch_until_assigned=fetch_until_assigned))
        return
    result = asyncio.run(benchmark(args))
    write_result(args.output, result, markdown(result))


def add_env_option(parser: argparse.ArgumentParser, option: str, service: str) -> None:
    """A repeatable ``NAME=VALUE`` option: extra environment for the service under test
    (configuration experiments); read it back with ``env_pairs``."""
    parser.add_argument(
        option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"extra environment for the {service} service, e.g. LEADLOOP_KAFKA__BATCH_SIZE=2000",
    )


# --------------------------------------------------------------------------- statistics


def ratio(a: float, b: float, digits: int = 3) -> float:
    """``a / b`` rounded; infinite when ``b`` is 0 (a contender too fast to time)."""
    return round(a / b, digits) if b else math.inf


def leadloop_and_bare(runs: Sequence[T]) -> tuple[list[T], list[T]]:
    """The leadloop runs and the bare runs, each in run order; runs are objects or
    mappings with a ``contender``."""

    def who(run: Any) -> str:
        return str(run["contender"] if isinstance(run, Mapping) else run.contender)

    return [r for r in runs if who(r) == "leadloop"], [r for r in runs if who(r) == "bare"]


@dataclass(kw_only=True)
class ContenderRun:
    """What every timed run of a contender records."""

    contender: str
    index: int
    #: Average cores used during the timed window by the contender, this driver and the
    #: whole machine (everything: Kafka, PostgreSQL, neighbours).
    cpu_cores: dict[str, float]
    #: CPU time the contender process spent per lead: its cost, which a busy neighbour
    #: disturbs much less than it disturbs wall-clock throughput.
    cpu_ms_per_lead: float
    #: The 1-minute load average when the run started: a busy neighbour shows up here.
    load_average_1m: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class ThroughputRun(ContenderRun):
    """A run timed from a start to the N-th output record (each benchmark says which
    start); leads/s over ``elapsed_s``."""

    leads: int
    elapsed_s: float
    leads_per_s: float
    first_output_s: float


def throughput_summary(
    lead: Sequence[ThroughputRun], bare: Sequence[ThroughputRun]
) -> dict[str, Any]:
    """Medians of each contender's leads/s and CPU per lead, and the median of the
    per-pair ratios (pair i: leadloop's run i and the bare run right after it)."""
    pairs = list(zip(lead, bare, strict=True))
    ratios = [ratio(a.leads_per_s, b.leads_per_s) for a, b in pairs]
    cpu_ratios = [ratio(a.cpu_ms_per_lead, b.cpu_ms_per_lead) for a, b in pairs]
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


def scale_out(summary: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """leads/s with this run's workers over the baseline's (one worker), for leadloop
    and for the bare contender, from two results' ``throughput_summary``-shaped
    medians."""
    b = baseline["summary"]
    return {
        # A result from before a benchmark took ``--workers`` ran one.
        "baseline_workers": baseline["workload"].get("workers", 1),
        "baseline_measured_at": baseline["measured_at"],
        "leadloop": ratio(
            summary["leadloop_leads_per_s_median"], b["leadloop_leads_per_s_median"], 2
        ),
        "bare": ratio(summary["bare_leads_per_s_median"], b["bare_leads_per_s_median"], 2),
        "baseline_leadloop_leads_per_s": b["leadloop_leads_per_s_median"],
        "baseline_bare_leads_per_s": b["bare_leads_per_s_median"],
    }


def scale_out_line(
    figure: str,
    where: str,
    workers: int,
    so: Mapping[str, Any],
    summary: Mapping[str, Any],
) -> str:
    """A ``scale_out`` as one sentence under a benchmark's table."""
    return (
        f"Scale-out, {figure} with {workers} workers {where} over "
        f"{so['baseline_workers']} (baseline measured {so['baseline_measured_at']}): "
        f"leadloop ×{so['leadloop']:.2f} ({so['baseline_leadloop_leads_per_s']:,.0f} → "
        f"{summary['leadloop_leads_per_s_median']:,.0f}), bare ×{so['bare']:.2f} "
        f"({so['baseline_bare_leads_per_s']:,.0f} → {summary['bare_leads_per_s_median']:,.0f})."
    )


def throughput_table(
    lead: Sequence[ThroughputRun],
    bare: Sequence[ThroughputRun],
    summary: Mapping[str, Any],
    nproc: int,
) -> list[str]:
    """The markdown table of a ``throughput_summary``: one row per pair, then medians."""
    s = summary
    lines = [
        "| run | leadloop leads/s | bare aiokafka leads/s | leadloop / bare "
        "| CPU ms per lead: leadloop / bare | process cores: leadloop / bare "
        f"| machine busy cores (of {nproc}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b, pair_ratio in zip(lead, bare, s["per_pair_ratio"], strict=True):
        lines.append(
            f"| {a.index} | {a.leads_per_s:,.0f} | {b.leads_per_s:,.0f} | {pair_ratio:.3f} "
            f"| {a.cpu_ms_per_lead:.3f} / {b.cpu_ms_per_lead:.3f} "
            f"| {a.cpu_cores.get('contender', 0):.2f} / {b.cpu_cores.get('contender', 0):.2f} "
            f"| {a.cpu_cores['machine']:.2f} / {b.cpu_cores['machine']:.2f} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    lines.append(
        f"| **median** | **{s['leadloop_leads_per_s_median']:,.0f}** "
        f"| **{s['bare_leads_per_s_median']:,.0f}** "
        f"| **{s['ratio_leadloop_over_bare_median']:.3f}** "
        f"| **{s['leadloop_cpu_ms_per_lead_median']:.3f} / {s['bare_cpu_ms_per_lead_median']:.3f}"
        f"** (×{s['cpu_per_lead_ratio_leadloop_over_bare_median']:.1f}) | | | |"
    )
    return lines


def machine_line(m: Mapping[str, Any]) -> str:
    """The machine a result was measured on, as one sentence under its table."""
    return (
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Kafka {m['kafka']}, PostgreSQL {m['postgresql']}, "
        f"load average at start {m['load_average_at_start']}, revision {m['git_revision']}."
    )
