"""SLA clocks at scale: a million open clocks in one sla-monitor worker, side by side with a
bare asyncpg + aiokafka loop over the same rows.

Each run gets a freshly migrated database holding ``--clocks`` open first-response
clocks (bulk-loaded with COPY, as many assignments would leave them) and fresh topics;
then ``--due`` of them are made due at the same instant a few seconds ahead. Contenders:

- **leadloop**: the real sla-monitor (``python -m leadloop_sla_monitor``), default
  settings apart from the policy file (one step per clock, 24/7 calendar).
- **bare**: a plain asyncpg + aiokafka loop, the floor for "fire a due row and publish
  it": every ``--tick`` it claims up to 2,000 due rows (``FOR UPDATE SKIP LOCKED``, the
  same partial index), produces one JSON record per step (acks=all), awaits every
  acknowledgement, then marks the clocks fired and stores one ``escalations`` row per
  step (so that the same query measures both) and commits.

For each fired step, *fire lateness* is ``breached_at - due_at`` (the instant the
contender claimed the clock and decided the step) and *publish lateness*
``published_at - due_at`` (the row is stamped with ``clock_timestamp()`` after the
broker acknowledged the step: when it was on ``sla.escalations`` for sure). p50, p99 and
max per run. Runs alternate leadloop, bare, leadloop, bare (``--runs`` pairs, default
3); the summary has medians and the median of per-pair ratios.

Only leadloop runs also measure:

- **memory per open clock**: PostgreSQL's size of ``sla_clocks`` with its indexes,
  divided by the clocks; the worker's resident memory (it keeps no clock in memory:
  the due-time index is a partial B-tree in PostgreSQL, so its memory does not grow
  with the clocks).
- **restart recovery**: ``kill -9`` of the worker, ``--due`` more clocks come due while
  it is down, restart; time to ``/readyz`` and until every overdue step was published.

    python -m bench.sla_clocks [--clocks 1000000] [--due 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from bench.common import (
    add_run_options,
    alternating,
    announce_ready,
    bench_dir,
    check_exit,
    finish_result,
    leadloop_and_bare,
    machine_info,
    median,
    ratio,
    running_stack,
    start_bare_worker,
    stop_on_signals,
    wait_ready_line,
    write_result,
)
from tests.support.children import ChildProcess, Service
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

DEFAULT_RESULTS = ROOT / "bench" / "results" / "sla_clocks.json"
LIMIT_S = 600
#: The service's default tick (settings.tick_seconds), also the bare loop's.
DEFAULT_TICK_S = 0.1
#: Rows the bare loop claims per transaction (sla-monitor's FIRE_BATCH).
BARE_BATCH = 2000
POLICY = f"""
policies:
  - policy_id: bench-fr
    kind: first_response
    limit_seconds: {LIMIT_S}
    ladder:
      - {{level: 1, after_seconds: 0, action: remind_owner}}
"""
COLUMNS = ("lead_id", "kind", "cycle", "policy_id", "owner_id", "team_id", "started_at", "due_at")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def load_clocks(url: str, n: int) -> float:
    """``n`` open clocks due in 30 days; returns the seconds COPY took."""
    far = datetime.now(UTC) + timedelta(days=30)
    started = far - timedelta(seconds=LIMIT_S)
    rows = (
        (
            f"lead-{i:08d}",
            "first_response",
            f"a-{i:08d}",
            "bench-fr",
            f"rep-{i % 500:03d}",
            f"team-{i % 20:02d}",
            started,
            far,
        )
        for i in range(n)
    )
    conn = await asyncpg.connect(url)
    try:
        t = time.monotonic()
        await conn.copy_records_to_table("sla_clocks", records=rows, columns=COLUMNS)
        await conn.execute("ANALYZE sla_clocks")
        return time.monotonic() - t
    finally:
        await conn.close()


async def make_due(conn: asyncpg.Connection, first: int, count: int, at: datetime) -> None:
    """Move ``count`` clocks from ``first`` on to come due at ``at``."""
    await conn.execute(
        "UPDATE sla_clocks SET started_at = $3, due_at = $4 WHERE lead_id >= $1 AND lead_id < $2",
        f"lead-{first:08d}",
        f"lead-{first + count:08d}",
        at - timedelta(seconds=LIMIT_S),
        at,
    )


async def wait_published(conn: asyncpg.Connection, want: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (
            await conn.fetchval("SELECT count(*) FROM escalations WHERE published_at IS NOT NULL")
            >= want
        ):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"fewer than {want} steps published within {within}s")


async def lateness(conn: asyncpg.Connection, since: datetime | None = None) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT extract(epoch FROM breached_at - due_at) AS fire, "
        "extract(epoch FROM published_at - due_at) AS publish FROM escalations "
        "WHERE $1::timestamptz IS NULL OR due_at >= $1",
        since,
    )
    fire = [float(r["fire"]) for r in rows]
    publish = [float(r["publish"]) for r in rows]
    return {
        "steps": len(rows),
        "fire_lateness_s": {
            "p50": round(percentile(fire, 0.5), 3),
            "p99": round(percentile(fire, 0.99), 3),
            "max": round(max(fire), 3),
        },
        "publish_lateness_s": {
            "p50": round(percentile(publish, 0.5), 3),
            "p99": round(percentile(publish, 0.99), 3),
            "max": round(max(publish), 3),
        },
    }


async def start_worker(service: Service, log: Path, label: str) -> ChildProcess:
    child = await service.start(log, label=label)
    await service.ready(child, timeout_s=180)
    return child


@dataclass
class Context:
    stack: Stack
    tmp: Path
    policy: Path
    clocks: int
    due: int
    tick: float


@contextlib.asynccontextmanager
async def loaded(
    ctx: Context, contender: str, index: int
) -> AsyncIterator[tuple[str, KafkaSettings, float]]:
    """A fresh database holding ``ctx.clocks`` open clocks, and fresh topics: (database
    URL, topics, seconds the COPY took)."""
    prefix = "sla" if contender == "leadloop" else f"sla-{contender}"
    async with (
        fresh_database(ctx.stack, "sla") as url,
        fresh_topics(ctx.stack, unique_prefix(prefix)) as kafka,
    ):
        print(f"{contender} {index}: loading {ctx.clocks:,} open clocks", file=sys.stderr)
        yield url, kafka, await load_clocks(url, ctx.clocks)


async def leadloop_run(ctx: Context, index: int) -> dict[str, Any]:
    async with loaded(ctx, "leadloop", index) as (url, kafka, copy_s):
        service = Service.on(
            "sla-monitor",
            kafka,
            db_url=url,
            data_dir=ctx.tmp / f"data-{index}",
            extra={
                "LEADLOOP_POLICIES_FILE": str(ctx.policy),
                **({"LEADLOOP_TICK_SECONDS": str(ctx.tick)} if ctx.tick else {}),
            },
            name="sla-monitor",
        )
        conn = await asyncpg.connect(url)
        try:
            size = await conn.fetchval("SELECT pg_total_relation_size('sla_clocks')")
            worker = await start_worker(service, ctx.tmp / f"sla-{index}-1.log", f"run {index}")
            rss_idle = rss_bytes(worker.pid)
            load_1m = os.getloadavg()[0]
            due_at = datetime.now(UTC) + timedelta(seconds=5)
            await make_due(conn, 0, ctx.due, due_at)
            await wait_published(conn, ctx.due, within=300)
            first = await lateness(conn)
            rss_after = rss_bytes(worker.pid)

            # Restart recovery: kill -9, more clocks come due while it is down.
            worker.proc.send_signal(signal.SIGKILL)
            await worker.proc.wait()
            await make_due(conn, ctx.due, ctx.due, datetime.now(UTC))
            await asyncio.sleep(1)
            t0 = time.monotonic()
            worker = await start_worker(
                service, ctx.tmp / f"sla-{index}-2.log", f"run {index}, restarted"
            )
            ready_s = time.monotonic() - t0
            await wait_published(conn, 2 * ctx.due, within=300)
            recovered_s = time.monotonic() - t0
            check_exit(worker, await worker.stop())
        finally:
            await conn.close()
    return {
        "contender": "leadloop",
        "index": index,
        "load_average_1m": round(load_1m, 2),
        "copy_load_s": round(copy_s, 1),
        "lateness": first,
        "memory": {
            "postgres_bytes_per_open_clock": round(size / ctx.clocks, 1),
            "postgres_sla_clocks_total_mib": round(size / 2**20, 1),
            "worker_rss_mib_idle": round(rss_idle / 2**20, 1),
            "worker_rss_mib_after_firing": round(rss_after / 2**20, 1),
        },
        "restart": {
            "overdue_steps": ctx.due,
            "start_to_ready_s": round(ready_s, 2),
            "start_to_all_overdue_published_s": round(recovered_s, 2),
            # Issue 17's goal (≤ 2 s): from /readyz answering ready to the last step.
            "ready_to_all_overdue_published_s": round(recovered_s - ready_s, 2),
        },
    }


async def bare_run(ctx: Context, index: int) -> dict[str, Any]:
    async with loaded(ctx, "bare", index) as (url, kafka, copy_s):
        args = [
            "--db",
            url,
            "--bootstrap",
            kafka.bootstrap_servers,
            "--topic",
            qualified("sla.escalations", kafka.topic_prefix),
            "--tick",
            str(ctx.tick or DEFAULT_TICK_S),
        ]
        child = await start_bare_worker(
            "bench.sla_clocks", args, log_path=ctx.tmp / f"bare-{index}.log", label=f"run {index}"
        )
        conn = await asyncpg.connect(url)
        try:
            await wait_ready_line(child, timeout_s=60)
            load_1m = os.getloadavg()[0]
            await make_due(conn, 0, ctx.due, datetime.now(UTC) + timedelta(seconds=5))
            await wait_published(conn, ctx.due, within=300)
            first = await lateness(conn)
        finally:
            await conn.close()
            code = await child.stop()
        check_exit(child, code)
    return {
        "contender": "bare",
        "index": index,
        "load_average_1m": round(load_1m, 2),
        "copy_load_s": round(copy_s, 1),
        "lateness": first,
    }


_BARE_CLAIM = """
SELECT lead_id, kind, cycle, policy_id, team_id, due_at FROM sla_clocks
WHERE stopped_at IS NULL AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""
_BARE_STORE = """
INSERT INTO escalations (escalation_id, status, event_id, lead_id, team_id, policy_id, kind,
    level, action, due_at, breached_at, occurred_at, published_at)
SELECT u.lead_id || ':' || u.cycle, 'firing', u.lead_id || ':' || u.cycle, u.lead_id,
    u.team_id, u.policy_id, 'first_response', 1, 'remind_owner', u.due_at, $6, $6,
    clock_timestamp()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
    AS u(lead_id, cycle, team_id, policy_id, due_at)
ON CONFLICT DO NOTHING
"""


async def bare_worker(db: str, bootstrap: str, topic: str, tick: float) -> None:
    """The floor for "fire a due row and publish it": claim, produce, await, store, commit."""
    conn = await asyncpg.connect(db)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    stop = stop_on_signals()
    try:
        announce_ready()
        while not stop.is_set():
            now = datetime.now(UTC)
            async with conn.transaction():
                rows = await conn.fetch(_BARE_CLAIM, now, BARE_BATCH)
                futures = [
                    await producer.send(
                        topic,
                        json.dumps(
                            {
                                "lead_id": r["lead_id"],
                                "cycle": r["cycle"],
                                "level": 1,
                                "due_at": r["due_at"].isoformat(),
                                "breached_at": now.isoformat(),
                            }
                        ).encode(),
                        key=r["lead_id"].encode(),
                    )
                    for r in rows
                ]
                if futures:
                    await asyncio.gather(*futures)
                    await conn.execute(
                        "UPDATE sla_clocks c SET next_level = 2, due_at = 'infinity' "
                        "FROM unnest($1::text[], $2::text[]) AS u(lead_id, cycle) "
                        "WHERE c.lead_id = u.lead_id AND c.kind = 'first_response' "
                        "AND c.cycle = u.cycle",
                        [r["lead_id"] for r in rows],
                        [r["cycle"] for r in rows],
                    )
                    await conn.execute(
                        _BARE_STORE,
                        [r["lead_id"] for r in rows],
                        [r["cycle"] for r in rows],
                        [r["team_id"] for r in rows],
                        [r["policy_id"] for r in rows],
                        [r["due_at"] for r in rows],
                        now,
                    )
            if len(rows) < BARE_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
    finally:
        await producer.stop()
        await conn.close()


# --------------------------------------------------------------------------- report


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    lead, bare = leadloop_and_bare(runs)
    out: dict[str, Any] = {}
    for who, rs in (("leadloop", lead), ("bare", bare)):
        out[f"{who}_median"] = {
            metric: {
                k: round(median([r["lateness"][metric][k] for r in rs]), 3)
                for k in ("p50", "p99", "max")
            }
            for metric in ("fire_lateness_s", "publish_lateness_s")
        }
    pairs = list(zip(lead, bare, strict=True))
    out["per_pair_ratio_publish"] = {
        k: [
            ratio(a["lateness"]["publish_lateness_s"][k], b["lateness"]["publish_lateness_s"][k], 2)
            for a, b in pairs
        ]
        for k in ("p50", "p99")
    }
    out["ratio_leadloop_over_bare_publish_median"] = {
        k: round(median(v), 2) for k, v in out["per_pair_ratio_publish"].items()
    }
    out["memory_median"] = {
        k: round(median([r["memory"][k] for r in lead]), 1) for k in lead[0]["memory"]
    }
    out["restart_median"] = {
        k: round(median([r["restart"][k] for r in lead]), 2)
        for k in (
            "start_to_ready_s",
            "start_to_all_overdue_published_s",
            "ready_to_all_overdue_published_s",
        )
    }
    return out


def markdown(result: dict[str, Any]) -> str:
    w, s, m = result["workload"], result["summary"], result["machine"]
    lines = [
        f"{w['open_clocks']:,} open clocks, {w['due_at_once']:,} due at the same instant, "
        f"{len(result['runs']) // 2} alternating pairs; seconds after the due time, "
        "leadloop / bare",
        "",
        "| run | fire p50 | fire p99 | publish p50 | publish p99 | publish max | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lead, bare = leadloop_and_bare(result["runs"])

    def cell(a: dict[str, Any], b: dict[str, Any], metric: str, k: str) -> str:
        return f"{a[metric][k]:.2f} / {b[metric][k]:.2f}"

    for a, b in zip(lead, bare, strict=True):
        la, lb = a["lateness"], b["lateness"]
        lines.append(
            f"| {a['index']} | {cell(la, lb, 'fire_lateness_s', 'p50')} "
            f"| {cell(la, lb, 'fire_lateness_s', 'p99')} "
            f"| {cell(la, lb, 'publish_lateness_s', 'p50')} "
            f"| {cell(la, lb, 'publish_lateness_s', 'p99')} "
            f"| {cell(la, lb, 'publish_lateness_s', 'max')} "
            f"| {a['load_average_1m']:.2f} / {b['load_average_1m']:.2f} |"
        )
    lm, bm = s["leadloop_median"], s["bare_median"]
    r = s["ratio_leadloop_over_bare_publish_median"]
    lines += [
        f"| **median** | **{cell(lm, bm, 'fire_lateness_s', 'p50')}** "
        f"| **{cell(lm, bm, 'fire_lateness_s', 'p99')}** "
        f"| **{cell(lm, bm, 'publish_lateness_s', 'p50')}** "
        f"| **{cell(lm, bm, 'publish_lateness_s', 'p99')}** "
        f"| **{cell(lm, bm, 'publish_lateness_s', 'max')}** | |",
        f"| leadloop / bare | | | ×{r['p50']:.2f} | ×{r['p99']:.2f} | | |",
        "",
        f"Memory (leadloop, median): {s['memory_median']['postgres_bytes_per_open_clock']:.0f} "
        f"bytes of PostgreSQL per open clock "
        f"({s['memory_median']['postgres_sla_clocks_total_mib']:.0f} MiB with indexes); worker "
        f"RSS {s['memory_median']['worker_rss_mib_idle']:.0f} MiB idle, "
        f"{s['memory_median']['worker_rss_mib_after_firing']:.0f} MiB after firing. "
        f"Restart after kill -9 with {w['due_at_once']:,} steps overdue: ready in "
        f"{s['restart_median']['start_to_ready_s']:.2f} s, all published "
        f"{s['restart_median']['start_to_all_overdue_published_s']:.2f} s after the start, "
        f"{s['restart_median']['ready_to_all_overdue_published_s']:.2f} s after it was ready. "
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), load average "
        f"{m['load_average_at_start'][0]:.2f} at start, "
        f"{m['load_average_at_end'][0]:.2f} at end.",
    ]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with bench_dir() as tmp:
        policy = tmp / "sla.yaml"
        policy.write_text(POLICY)
        ctx = Context(stack, tmp, policy, args.clocks, args.due, args.tick)
        async for _, run in alternating(
            args.runs, lambda i: leadloop_run(ctx, i), lambda i: bare_run(ctx, i)
        ):
            runs.append(run)
            print(json.dumps(run["lateness"]), file=sys.stderr)
    return {
        **finish_result("sla_clocks", machine, started),
        "workload": {
            "open_clocks": args.clocks,
            "due_at_once": args.due,
            "tick_s": args.tick or "service default",
            "bare_tick_s": args.tick or DEFAULT_TICK_S,
            "bare_batch": BARE_BATCH,
        },
        "summary": summarise(runs),
        "runs": runs,
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clocks", type=int, default=1_000_000, help="open clocks")
    parser.add_argument("--due", type=int, default=10_000, help="clocks due at the same moment")
    parser.add_argument(
        "--tick", type=float, default=0.0, help="tick_seconds (0: the service default)"
    )
    add_run_options(parser, output=DEFAULT_RESULTS, runs_help="alternating pairs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bare-worker"]:
        bare = argparse.ArgumentParser()
        for name in ("--db", "--bootstrap", "--topic"):
            bare.add_argument(name, required=True)
        bare.add_argument("--tick", type=float, default=DEFAULT_TICK_S)
        a = bare.parse_args(argv[1:])
        asyncio.run(bare_worker(a.db, a.bootstrap, a.topic, a.tick))
        return
    args = parse_args(argv)
    if args.clocks < 2 * args.due or args.due < 1 or args.runs < 1:
        raise SystemExit("--clocks must be at least twice --due, --due and --runs at least 1")
    result = asyncio.run(benchmark(args))
    write_result(args.output, result, markdown(result))


if __name__ == "__main__":
    main()
