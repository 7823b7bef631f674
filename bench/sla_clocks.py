"""SLA clocks at scale: a million open clocks in one sla-monitor worker.

The real sla-monitor (``python -m leadloop_sla_monitor``) runs against a freshly migrated
database holding ``--clocks`` open first-response clocks (bulk-loaded with COPY, as
many assignments would leave them) and fresh topics. Then:

1. **lateness**: ``--due`` clocks are made due at the same instant a few seconds ahead;
   for each fired step, *fire lateness* is ``breached_at - due_at`` (when the worker
   wrote the step) and *publish lateness* ``published_at - due_at`` (when the broker
   had acknowledged it on sla.escalations). p50, p99 and max.
2. **memory per open clock**: PostgreSQL's size of ``sla_clocks`` with its indexes,
   divided by the clocks; the worker's resident memory (it keeps no clock in memory:
   the due-time index is a partial B-tree in PostgreSQL, so its memory does not grow
   with the clocks).
3. **restart recovery**: ``kill -9`` of the worker, ``--due`` more clocks come due
   while it is down, restart; time to ``/readyz`` and until every overdue step was
   published.

    python -m bench.sla_clocks [--clocks 1000000] [--due 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from bench.common import (
    ROOT,
    ChildProcess,
    Stack,
    free_port,
    fresh_database,
    fresh_topics,
    machine_info,
    unique_prefix,
    wait_http_ok,
)

DEFAULT_RESULTS = ROOT / "bench" / "results" / "sla_clocks.json"
LIMIT_S = 600
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


async def start_worker(env: dict[str, str], port: int, log: Path) -> ChildProcess:
    child = await ChildProcess.start(
        "sla-monitor",
        [sys.executable, "-m", "leadloop_sla_monitor"],
        env=env,
        log_path=log,
    )
    async with asyncio.timeout(180):
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", child=child)
    return child


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.from_env()
    machine = await machine_info(stack)
    result: dict[str, Any] = {"benchmark": "sla_clocks", "machine": machine}
    with tempfile.TemporaryDirectory(prefix="leadloop-bench-") as tmp:
        tmp_dir = Path(tmp)
        policy = tmp_dir / "sla.yaml"
        policy.write_text(POLICY)
        async with (
            fresh_database(stack, "sla") as url,
            fresh_topics(stack, unique_prefix("sla")) as kafka,
        ):
            print(f"loading {args.clocks:,} open clocks", file=sys.stderr)
            copy_s = await load_clocks(url, args.clocks)
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "LEADLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
                "LEADLOOP_HTTP__PORT": str(port),
                "LEADLOOP_POLICIES_FILE": str(policy),
                "LEADLOOP_TICK_SECONDS": str(args.tick),
                "LEADLOOP_DATA_DIR": str(tmp_dir / "data"),
                "BROKER_SESSION_TIMEOUT": "10",
            }
            conn = await asyncpg.connect(url)
            try:
                size = await conn.fetchval("SELECT pg_total_relation_size('sla_clocks')")
                worker = await start_worker(env, port, tmp_dir / "sla-1.log")
                rss_idle = rss_bytes(worker.pid)

                due_at = datetime.now(UTC) + timedelta(seconds=5)
                await make_due(conn, 0, args.due, due_at)
                print(f"{args.due:,} clocks due at once", file=sys.stderr)
                await wait_published(conn, args.due, within=300)
                first = await lateness(conn)
                rss_after = rss_bytes(worker.pid)

                # Restart recovery: kill -9, more clocks come due while it is down.
                worker.proc.send_signal(signal.SIGKILL)
                await worker.proc.wait()
                overdue_at = datetime.now(UTC)
                await make_due(conn, args.due, args.due, overdue_at)
                await asyncio.sleep(1)
                t0 = time.monotonic()
                worker = await start_worker(env, port, tmp_dir / "sla-2.log")
                ready_s = time.monotonic() - t0
                await wait_published(conn, 2 * args.due, within=300)
                recovered_s = time.monotonic() - t0
                code = await worker.stop()
                if code != 0:
                    raise RuntimeError(f"sla-monitor exited with {code}:\n{worker.log_tail()}")
            finally:
                await conn.close()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result.update(
        {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "workload": {
                "open_clocks": args.clocks,
                "due_at_once": args.due,
                "tick_s": args.tick,
                "copy_load_s": round(copy_s, 1),
            },
            "memory": {
                "postgres_bytes_per_open_clock": round(size / args.clocks, 1),
                "postgres_sla_clocks_total_mib": round(size / 2**20, 1),
                "worker_rss_mib_idle": round(rss_idle / 2**20, 1),
                "worker_rss_mib_after_firing": round(rss_after / 2**20, 1),
            },
            "lateness_due_at_once": first,
            "restart": {
                "overdue_steps": args.due,
                "start_to_ready_s": round(ready_s, 2),
                "start_to_all_overdue_published_s": round(recovered_s, 2),
            },
        }
    )
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clocks", type=int, default=1_000_000, help="open clocks")
    parser.add_argument("--due", type=int, default=10_000, help="clocks due at the same moment")
    parser.add_argument("--tick", type=float, default=0.5, help="the worker's tick_seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS, help="results JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.clocks < 2 * args.due or args.due < 1:
        raise SystemExit("--clocks must be at least twice --due, and --due at least 1")
    result = asyncio.run(benchmark(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("memory", "lateness_due_at_once", "restart")}))


if __name__ == "__main__":
    main()
