"""``leadloop review`` over a month of ``--leads`` leads (default 1,000,000) and their
events: wall time and peak memory, side by side with a bare reader of the same facts.

A fresh migrated database gets the metrics service's fact log (``metric_applied_events``)
as the service stores it, for the reviewed month (November 2026) and, as many again, the
month before it (the report's baseline): per lead its acceptance (source, campaign,
product, industry, region…), the assignment to a team's rep, one or two touches, stage
changes through the funnel to won or lost (most leads stay open), and for some an SLA
step and a satisfaction score — about seven facts a lead, made with the service's own
fact types (``leadloop_metrics.domain.facts``) so the JSON is byte for byte what it stores.
Loaded with COPY; the load is not timed.

Contenders, each a process of its own, alternating (``--runs`` pairs, default 3):

- leadloop: ``leadloop review --period 2026-11 --format json --out …``;
- bare: the same two streaming queries the review sends (the period's and the previous
  period's leads, then the month's wins), every row's fact parsed with ``json.loads``
  and dropped — the floor for "read this month's facts into Python".

Per run: wall time from start to exit, peak resident memory (``ru_maxrss`` of that
process, from ``wait4``), CPU seconds. The summary has the medians and their ratios.

    python -m bench.review_month [--leads 1000000] [--runs 3] [--keep | --reuse URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from bench.common import (
    finish_result,
    machine_info,
    machine_line,
    median,
    ratio,
    running_stack,
    write_result,
)
from tests.support.processes import ROOT
from tests.support.stack import Stack, create_database, fresh_database

from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    Escalated,
    Fact,
    Rated,
    StageMoved,
    Touched,
    fact_to_json,
)

RESULT = ROOT / "bench" / "results" / "review_month.json"
MONTH = date(2026, 11, 1)
PREVIOUS = date(2026, 10, 1)
SOURCES = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
TEAMS = {"team-cn": 4, "team-enterprise": 2, "team-global": 3}
PRODUCTS = ("crm-basic", "crm-pro", "analytics", "support-plan")
INDUSTRIES = ("finance", "retail", "manufacturing", "education", "healthcare", "tech")
REGIONS = ("north", "south", "east", "west", "overseas")
REASONS = ("no_response", "price", "competitor", "no_budget", "timing", "other")
_TOPIC = {
    "Accepted": "leads.accepted",
    "Assigned": "leads.assigned",
    "Touched": "crm.activities",
    "StageMoved": "crm.stage-changes",
    "Escalated": "sla.escalations",
    "Rated": "crm.satisfaction",
}

# The bare reader: the review's two queries (adapters/postgres.py), every fact parsed.
BARE = """
import asyncio, json, sys
import asyncpg

FACTS_OF = '''
SELECT e.lead_id, e.fact::text FROM metric_applied_events e
WHERE e.fact IS NOT NULL AND e.lead_id IN (
    SELECT s.lead_id FROM metric_applied_events s WHERE s.lead_id IS NOT NULL AND {selector})
ORDER BY e.lead_id, e.seq'''
ACCEPTED = FACTS_OF.format(selector="s.fact->>'type' = 'Accepted' "
    "AND (s.fact->>'accepted_at')::timestamptz >= $1 "
    "AND (s.fact->>'accepted_at')::timestamptz < $2")
WON = FACTS_OF.format(selector="s.fact->>'type' = 'StageMoved' AND s.fact->>'stage' = 'won' "
    "AND (s.fact->>'occurred_at')::timestamptz >= $1 "
    "AND (s.fact->>'occurred_at')::timestamptz < $2")

async def main():
    from datetime import datetime
    conn = await asyncpg.connect(sys.argv[1])
    a, b, c = (datetime.fromisoformat(x) for x in sys.argv[2:5])
    rows = 0
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        for query, args in ((ACCEPTED, (a, c)), (WON, (b, c))):
            async for row in conn.cursor(query, *args, prefetch=5000):
                json.loads(row[1])
                rows += 1
    await conn.close()
    print(rows)

asyncio.run(main())
"""


def leads_of(month: date, count: int, seed: int) -> Iterator[list[Fact]]:
    """Each lead's facts, dated in ``month``."""
    rng = random.Random(seed)
    days = ((month + timedelta(days=32)).replace(day=1) - month).days
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    reps = [(team, f"{team}-rep-{i:02d}") for team, n in TEAMS.items() for i in range(n * 8)]
    for n in range(count):
        lead = f"{month:%Y%m}-{n:07d}"
        t = start + timedelta(seconds=rng.randrange(days * 86400 - 7200))
        team, rep = rng.choice(reps)
        facts: list[Fact] = [
            Accepted(
                f"acc-{lead}",
                lead,
                rng.choice(SOURCES),
                t,
                rng.choice(("hot", "warm", "cold")),
                rng.random() < 0.1,
                f"campaign-{rng.randrange(12)}",
                rng.choice(PRODUCTS),
                rng.choice(INDUSTRIES),
                rng.choice(REGIONS),
                "CN" if team == "team-cn" else "US",
                rng.choice((5, 20, 80, 300, 2000)),
                rng.randrange(101),
            ),
            Assigned(f"asg-{lead}", lead, team, True, "round_robin", "initial", t, "warm", rep),
        ]
        at = t + timedelta(seconds=rng.randrange(30, 7200))
        for k in range(rng.choice((0, 1, 1, 2))):
            facts.append(Touched(f"act-{lead}-{k}", lead, True, at + timedelta(hours=k), rep))
        stages = ["contacted", "qualified", "proposal", "negotiation"][: rng.randrange(5)]
        amount = float(rng.randrange(1_000, 200_000))
        for k, stage in enumerate(stages):
            facts.append(
                StageMoved(
                    f"stg-{lead}-{k}",
                    lead,
                    stage,
                    at + timedelta(hours=k + 1),
                    amount if stage in ("proposal", "negotiation") else None,
                    None,
                )
            )
        close = at + timedelta(hours=len(stages) + 2)
        outcome = rng.random()
        if outcome < 0.12:
            facts.append(StageMoved(f"won-{lead}", lead, "won", close, amount, None))
        elif outcome < 0.40:
            facts.append(StageMoved(f"lost-{lead}", lead, "lost", close, None, rng.choice(REASONS)))
        if rng.random() < 0.15:
            facts.append(
                Escalated(
                    f"esc-{lead}",
                    lead,
                    f"clk-{lead}",
                    team,
                    "first-response",
                    "first_response",
                    1,
                    True,
                    rep,
                    t + timedelta(minutes=10),
                )
            )
        if rng.random() < 0.2:
            facts.append(Rated(f"rat-{lead}", lead, rng.randint(1, 5), close, rep))
        yield facts


async def load(url: str, leads: int, seed: int) -> int:
    """COPY every fact of both months; returns how many rows were written."""
    conn = await asyncpg.connect(url)
    applied = datetime.now(UTC)
    written = 0
    try:
        for month, part in ((PREVIOUS, seed), (MONTH, seed + 1)):
            batch: list[tuple[str, datetime, str, str, str]] = []
            for facts in leads_of(month, leads, part):
                for f in facts:
                    batch.append(
                        (
                            f.event_id,
                            applied,
                            _TOPIC[type(f).__name__],
                            f.lead_id,
                            json.dumps(fact_to_json(f)),
                        )
                    )
                if len(batch) >= 50_000:
                    written += await _copy(conn, batch)
            written += await _copy(conn, batch)
        await conn.execute("ANALYZE metric_applied_events")
    finally:
        await conn.close()
    return written


async def _copy(conn: asyncpg.Connection, batch: list[tuple[str, datetime, str, str, str]]) -> int:
    if batch:
        await conn.copy_records_to_table(
            "metric_applied_events",
            records=batch,
            columns=["event_id", "applied_at", "topic", "lead_id", "fact"],
        )
    n = len(batch)
    batch.clear()
    return n


@dataclass
class Run:
    contender: str
    wall_s: float
    peak_rss_mib: float
    cpu_s: float
    output: str


def timed(contender: str, argv: list[str], env: dict[str, str]) -> Run:
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{contender} failed ({proc.returncode}):\n{text[-3000:]}")
    return Run(contender, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, text)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads per month")
    parser.add_argument("--runs", type=int, default=3, help="alternating pairs")
    parser.add_argument("--seed", type=int, default=2611)
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the loaded database and print its URL (loading a million leads' facts "
        "takes minutes)",
    )
    parser.add_argument(
        "--reuse", metavar="URL", help="a database a --keep run loaded with the same --leads"
    )
    args = parser.parse_args(argv)
    stack = running_stack()
    machine = await machine_info(stack)
    started = time.monotonic()
    async with _database(stack, args.reuse, args.keep) as url:
        if args.reuse:
            rows = await _count(url)
        else:
            t0 = time.monotonic()
            rows = await load(url, args.leads, args.seed)
            elapsed = time.monotonic() - t0
            print(f"loaded {rows} facts of {2 * args.leads} leads in {elapsed:.0f} s", flush=True)
        env = {**os.environ, "DATABASE_URL": url}
        report = Path(tempfile.mkdtemp(prefix="leadloop-review-")) / "review.json"
        review = [str(Path(sys.executable).parent / "leadloop"), "review", "--period", "2026-11"]
        review += ["--format", "json", "--out", str(report), "--until", "2026-12-10T00:00+00:00"]
        bare = [sys.executable, "-c", BARE, url, "2026-10-01T00:00+00:00"]
        bare += ["2026-11-01T00:00+00:00", "2026-12-01T00:00+00:00"]
        runs: list[Run] = []
        for i in range(1, args.runs + 1):
            for name, cmd in (("leadloop", review), ("bare", bare)):
                run = await asyncio.to_thread(timed, name, cmd, env)
                runs.append(run)
                print(
                    f"run {i} {name}: {run.wall_s:.1f} s, peak {run.peak_rss_mib:.0f} MiB, "
                    f"cpu {run.cpu_s:.1f} s",
                    flush=True,
                )
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    if _leads_in(data) != args.leads:
        raise SystemExit(f"the report counted {_leads_in(data)} leads, {args.leads} were loaded")
    ours = [r for r in runs if r.contender == "leadloop"]
    floor = [r for r in runs if r.contender == "bare"]
    summary = {
        "leads_in_month": args.leads,
        "leads_in_previous_month": args.leads,
        "facts": rows,
        "bare_rows_read": int(floor[-1].output.strip().splitlines()[-1]),
        "report_leads": _leads_in(data),
        "leadloop_wall_s": round(median([r.wall_s for r in ours]), 1),
        "bare_wall_s": round(median([r.wall_s for r in floor]), 1),
        "wall_ratio": ratio(median([r.wall_s for r in ours]), median([r.wall_s for r in floor])),
        "leadloop_peak_rss_mib": round(median([r.peak_rss_mib for r in ours])),
        "bare_peak_rss_mib": round(median([r.peak_rss_mib for r in floor])),
        "leadloop_cpu_s": round(median([r.cpu_s for r in ours]), 1),
        "bare_cpu_s": round(median([r.cpu_s for r in floor]), 1),
    }
    result = {
        **finish_result("review_month", machine, started),
        "runs": [{k: v for k, v in vars(r).items() if k != "output"} for r in runs],
        "summary": summary,
    }
    s = summary
    markdown = "\n".join(
        [
            f"review_month ({machine_line(machine)})",
            "",
            "| contender | wall s | peak MiB | CPU s |",
            "| --- | ---: | ---: | ---: |",
            f"| leadloop review | {s['leadloop_wall_s']} | {s['leadloop_peak_rss_mib']} | "
            f"{s['leadloop_cpu_s']} |",
            f"| bare reader | {s['bare_wall_s']} | {s['bare_peak_rss_mib']} | {s['bare_cpu_s']} |",
            f"| ratio | {s['wall_ratio']} | | |",
        ]
    )
    write_result(args.out, result, markdown)


@contextlib.asynccontextmanager
async def _database(stack: Stack, reuse: str | None, keep: bool) -> AsyncIterator[str]:
    if reuse is not None:
        yield reuse
        return
    if not keep:
        async with fresh_database(stack, "review") as url:
            yield url
        return
    url = await create_database(stack.admin_url, f"bench_review_{args_token()}")
    print(f"database kept: {url}", flush=True)
    yield url


def args_token() -> str:
    return time.strftime("%Y%m%d%H%M%S")


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM metric_applied_events"))
    finally:
        await conn.close()


def _leads_in(report: dict[str, Any]) -> int:
    """The report's own count of the month's leads: the run must have reviewed what was
    loaded."""
    return int(report["leads"])


if __name__ == "__main__":
    asyncio.run(main())
