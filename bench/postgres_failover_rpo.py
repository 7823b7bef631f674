"""The RPO of a PostgreSQL failover: commits the primary acknowledged that the promoted
standby does not hold, after ``kill -9`` of the primary under write load.

Each run starts a private primary and a streaming standby on loopback
(``deploy/postgres/pg.sh standby start async|sync``, through ``tests.support.replicated``),
lets ``--writers`` connections commit single-row inserts (each row ``--row-bytes`` of
payload, so the WAL carries about what ingest's outcome rows do) for ``--seconds``, kills
the primary's postmaster with SIGKILL while they write, promotes the standby and
compares: every id whose commit was acknowledged must be on the promoted server. Each
commit is a round trip of its own, which is ingest's worst case (one transaction per
record); ingest's batches put many records behind one commit.

    . .state/env && .venv/bin/python -m bench.postgres_failover_rpo --runs 5

Writes ``bench/results/postgres_failover_rpo.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any, Literal

import asyncpg
from bench.common import bench_dir, finish_result, machine_info, running_stack, write_result
from tests.support.replicated import Replicated, replicated

from leadloop.db import TRANSIENT_ERRORS

RESULT = Path(__file__).parent / "results" / "postgres_failover_rpo.json"


async def writer(url: str, n: int, payload: str, acked: list[int], stop: asyncio.Event) -> None:
    """Commit rows ``n * 1e9 + seq`` until the server goes away; each id is added to
    ``acked`` once its commit returned."""
    conn = await asyncpg.connect(url)
    seq = 0
    try:
        while not stop.is_set():
            seq += 1
            row = n * 1_000_000_000 + seq
            await conn.execute("INSERT INTO rpo (id, payload) VALUES ($1, $2)", row, payload)
            acked.append(row)
    except (*TRANSIENT_ERRORS, asyncpg.exceptions.PostgresError):
        pass  # the primary was killed: this commit's fate is unknown, not acknowledged
    finally:
        conn.terminate()


async def one_run(pg: Replicated, args: argparse.Namespace) -> dict[str, Any]:
    conn = await asyncpg.connect(pg.primary_url)
    try:
        await conn.execute("CREATE TABLE rpo (id bigint PRIMARY KEY, payload text NOT NULL)")
    finally:
        await conn.close()
    acked: list[int] = []
    stop = asyncio.Event()
    payload = "x" * args.row_bytes
    tasks = [
        asyncio.create_task(writer(pg.primary_url, n + 1, payload, acked, stop))
        for n in range(args.writers)
    ]
    await asyncio.sleep(args.seconds)
    before = len(acked)
    started = time.monotonic()
    await asyncio.to_thread(pg.kill_primary)
    stop.set()
    await asyncio.gather(*tasks)
    rate = before / args.seconds
    pg.run("standby", "promote")
    conn = await asyncpg.connect(pg.url_of(pg.standby_port))
    try:
        present = {r["id"] for r in await conn.fetch("SELECT id FROM rpo")}
    finally:
        await conn.close()
    lost = [i for i in acked if i not in present]
    return {
        "acknowledged": len(acked),
        "lost": len(lost),
        "present_unacknowledged": len(present - set(acked)),
        "commits_per_s": round(rate, 1),
        "kill_s": round(time.monotonic() - started, 2),
    }


async def measure(mode: Literal["sync", "async"], args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for i in range(args.runs):
        with bench_dir() as tmp, replicated(tmp / "pg", mode) as pg:
            result = await one_run(pg, args)
        print(f"{mode} run {i + 1}: {result}")
        runs.append(result)
    return runs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--row-bytes", type=int, default=300)
    args = parser.parse_args()
    started = time.monotonic()
    machine = await machine_info(running_stack())
    modes: dict[str, list[dict[str, Any]]] = {}
    for mode in ("async", "sync"):
        modes[mode] = await measure(mode, args)
    result = finish_result("postgres_failover_rpo", machine, started)
    result |= {"parameters": vars(args), "modes": modes}
    lines = [
        "| replication | runs | commits/s | acknowledged | lost (per run) | max lost |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for mode, runs in modes.items():
        lost = [r["lost"] for r in runs]
        lines.append(
            f"| {mode} | {len(runs)} | {sum(r['commits_per_s'] for r in runs) / len(runs):,.0f}"
            f" | {sum(r['acknowledged'] for r in runs):,} | {', '.join(map(str, lost))}"
            f" | {max(lost)} |"
        )
    write_result(RESULT, result, "\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
