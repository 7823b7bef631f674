"""``whatif_replay``: a month of 1,000,000 leads replayed by ``leadloop whatif``.

The history is written straight into a fresh, migrated database (COPY; not timed): the
leads as ingest stores them, their first decisions as assignment stores them (so the
range has its leads), and the CRM's touches and stage changes over November 2026 — about
1.5 touches and 0.5 stage changes per lead, a quarter of the leads won or lost within
days, some promises. Then ``leadloop whatif`` runs as its own process with a rule set of
200 reps in the three teams of ``config/calendars.yaml`` (business hours, CN and US
holidays) and a realistic SLA ladder (first response in 5 or 60 business minutes,
follow-up within a business day, return to the pool, stage stalls), and the benchmark
records its wall time (read and total, from the command's JSON), its peak RSS
(``ru_maxrss`` of the child) and the machine.

    . .state/env && .venv/bin/python -m bench.whatif_replay [--leads 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from bench.common import bench_dir, finish_result, machine_info, running_stack, write_result
from tests.support.processes import ROOT
from tests.support.stack import create_database, drop_database

DEFAULT_RESULTS = ROOT / "bench/results/whatif_replay.json"
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
SECONDS = int((END - MONTH).total_seconds())


def rules_yaml() -> str:
    def reps(prefix: str, n: int, extra: str = "") -> str:
        return "\n".join(
            f"      - {{rep_id: {prefix}-{i:03d}, capacity: 20000{extra}}}" for i in range(n)
        )

    return f"""
version: "bench"
teams:
  - team_id: team-cn
    manager_id: mgr-cn
    timezone: Asia/Shanghai
    reps:
{reps("cn", 60, ", weight: 2")}
  - team_id: team-enterprise
    manager_id: mgr-ent
    timezone: America/New_York
    reps:
{reps("ent", 20, ", daily_cap: 400")}
  - team_id: team-global
    manager_id: mgr-global
    reps:
{reps("gl", 120)}
rules:
  - rule_id: returning-customer
    when: {{is_returning: {{equals: true}}}}
    strategy: sticky
  - rule_id: hot-enterprise
    when: {{priority: {{equals: hot}}, company_size: {{gte: 1000}}}}
    team: team-enterprise
    strategy: least_loaded
  - rule_id: greater-china
    when: {{country: {{in: [CN, HK, TW, MO]}}}}
    team: team-cn
    strategy: weighted
  - rule_id: default
    team: team-global
    strategy: round_robin
"""


SLA = """
policies:
  - policy_id: first-response-hot
    kind: first_response
    when: {priority: [hot]}
    limit_seconds: 300
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 600, action: notify_manager}
      - {level: 3, after_seconds: 1800, action: reassign}
  - policy_id: first-response
    kind: first_response
    limit_seconds: 3600
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 3600, action: notify_manager}
  - policy_id: follow-up
    kind: follow_up
    limit_seconds: 28800
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 28800, action: return_to_pool, warn_before_seconds: 3600}
  - policy_id: proposal-stall
    kind: stage_stall
    when: {stage: [proposal, negotiation]}
    limit_seconds: 86400
    ladder:
      - {level: 1, after_seconds: 0, action: notify_manager}
"""


def _iso(t: datetime) -> str:
    return t.isoformat()


def generate(n: int, seed: int) -> tuple[list[tuple[Any, ...]], ...]:
    """Rows of leads, assignment_leads, assignments, lead_activities, lead_stage_changes."""
    rnd = random.Random(seed)
    leads, held, decided, acts, stages = [], [], [], [], []
    kinds = ["call", "email", "message", "meeting", "note"]
    step = SECONDS / n
    for i in range(n):
        at = MONTH + timedelta(seconds=int(i * step + rnd.random() * step))
        lead_id = f"L{i:07d}"
        priority = rnd.choices(["hot", "warm", "cold"], (1, 3, 6))[0]
        returning = rnd.random() < 0.03
        lead = {
            "event_id": f"acc-{i}",
            "schema_version": 1,
            "occurred_at": _iso(at),
            "lead_id": lead_id,
            "source": rnd.choice(["web_form", "lead_ads", "wechat", "referral"]),
            "source_lead_id": str(i),
            "accepted_at": _iso(at),
            "country": rnd.choices(["US", "CN", "DE", "GB", "HK"], (5, 3, 1, 1, 1))[0],
            "company_size": rnd.choice([10, 50, 200, 1500, 5000]),
            "is_returning": returning,
            "previous_owner_id": f"gl-{rnd.randrange(120):03d}" if returning else None,
            "score": rnd.randrange(100),
            "priority": priority,
        }
        leads.append(
            (lead_id, lead["source"], str(i), lead["score"], priority, at, at, f"acc-{i}", 0, i)
        )
        held.append((lead_id, json.dumps(lead), at))
        decided.append(
            (
                f"a-{i}",
                lead_id,
                "initial",
                f"gl-{i % 120:03d}",
                "team-global",
                "default",
                "live",
                "round_robin",
                "{}",
                priority,
                at,
                at,
                f"ev-{i}",
                f"acc-{i}",
            )
        )
        t = at
        touches = rnd.choices([0, 1, 2, 3, 4], (0.3, 3, 3, 2, 1))[0]
        for k in range(touches):
            # The first touch mostly within the hour, later ones hours apart.
            mean = 20 * 60 if k == 0 else 6 * 3600
            t += timedelta(seconds=int(rnd.expovariate(1 / mean)) + 30)
            promise = t + timedelta(hours=rnd.choice([4, 24, 48])) if rnd.random() < 0.2 else None
            acts.append((f"act-{i}-{k}", lead_id, "rep", rnd.choice(kinds), t, promise, t))
        if rnd.random() < 0.3:
            t += timedelta(seconds=rnd.randrange(600, 86400))
            stages.append(
                (f"st-{i}-p", lead_id, rnd.choice(["contacted", "proposal"]), t, "rep", None, t)
            )
        if rnd.random() < 0.85:
            # Most leads end won or lost within days of their last touch.
            t += timedelta(seconds=rnd.randrange(600, 5 * 86400))
            won = rnd.random() < 0.25
            stages.append(
                (
                    f"st-{i}",
                    lead_id,
                    "won" if won else "lost",
                    t,
                    "rep",
                    None if won else "timing",
                    t,
                )
            )
    return leads, held, decided, acts, stages


async def load(url: str, rows: Sequence[list[tuple[Any, ...]]]) -> None:
    leads, held, decided, acts, stages = rows
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "leads",
            records=leads,
            columns=[
                "lead_id",
                "source",
                "source_lead_id",
                "score",
                "priority",
                "occurred_at",
                "accepted_at",
                "accepted_event_id",
                "raw_partition",
                "raw_offset",
            ],
        )
        await conn.copy_records_to_table(
            "assignment_leads",
            records=[(lid, lead, at, at) for lid, lead, at in held],
            columns=["lead_id", "lead", "accepted_at", "updated_at"],
        )
        await conn.copy_records_to_table(
            "assignments",
            records=decided,
            columns=[
                "assignment_id",
                "lead_id",
                "kind",
                "owner_id",
                "team_id",
                "rule_id",
                "rule_version",
                "strategy",
                "reason",
                "priority",
                "lead_occurred_at",
                "assigned_at",
                "event_id",
                "cause_event_id",
            ],
        )
        await conn.copy_records_to_table(
            "lead_activities",
            records=acts,
            columns=[
                "event_id",
                "lead_id",
                "rep_id",
                "kind",
                "occurred_at",
                "next_followup_at",
                "recorded_at",
            ],
        )
        await conn.copy_records_to_table(
            "lead_stage_changes",
            records=stages,
            columns=[
                "event_id",
                "lead_id",
                "stage",
                "occurred_at",
                "rep_id",
                "loss_reason",
                "recorded_at",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def run_whatif(url: str, tmp: Path) -> dict[str, Any]:
    rules, sla = tmp / "rules.yaml", tmp / "sla.yaml"
    rules.write_text(rules_yaml())
    sla.write_text(SLA)
    out = tmp / "whatif.json"
    began = time.perf_counter()
    child = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/leadloop"),
            "whatif",
            "--rules",
            str(rules),
            "--sla",
            str(sla),
            "--calendars",
            str(ROOT / "config/calendars.yaml"),
            "--from",
            MONTH.isoformat(),
            "--to",
            END.isoformat(),
            "--format",
            "json",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"leadloop whatif failed with {status}")
    report = json.loads(out.read_text())
    return {
        "wall_s": round(wall, 1),
        "read_s": report["seconds"]["read"],
        "replay_and_compare_s": round(report["seconds"]["total"] - report["seconds"]["read"], 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "decisions": sum(report["whatif"]["reps"].values()) + report["whatif"]["pooled_first"],
        "leads": report["whatif"]["leads"],
        "steps_fired": sum(sum(v.values()) for v in report["whatif"]["breaches"].values()),
        "reassigned": report["whatif"]["reassigned"],
        "reclaimed": report["whatif"]["reclaimed"],
        "pool_peak": report["whatif"]["pool_peak"],
    }


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    started = time.monotonic()
    began = time.perf_counter()
    rows = generate(args.leads, args.seed)
    generated_s = time.perf_counter() - began
    url = await create_database(stack.admin_url, f"bench_whatif_{os.getpid()}")
    try:
        began = time.perf_counter()
        await load(url, rows)
        loaded_s = time.perf_counter() - began
        counts = {"touches": len(rows[3]), "stage_changes": len(rows[4])}
        del rows
        with bench_dir() as tmp:
            run = run_whatif(url, tmp)
    finally:
        await drop_database(stack.admin_url, url)
    return {
        **finish_result("whatif_replay", machine, started),
        "workload": {
            "leads": args.leads,
            "seed": args.seed,
            "range": [MONTH.isoformat(), END.isoformat()],
            **counts,
            "generate_s": round(generated_s, 1),
            "load_s": round(loaded_s, 1),
        },
        "run": run,
        "goal": "≤ 120 s for 1,000,000 leads",
    }


def markdown(result: dict[str, Any]) -> str:
    w, r, m = result["workload"], result["run"], result["machine"]
    return "\n".join(
        [
            "| leads | touches | stage changes | wall s | read s | replay s | peak RSS MiB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {w['leads']:,} | {w['touches']:,} | {w['stage_changes']:,} | {r['wall_s']} "
            f"| {r['read_s']} | {r['replay_and_compare_s']} | {r['peak_rss_mib']:,} |",
            "",
            f"Machine: {m['nproc']} cores ({m['cpu_model']}), load average "
            f"{m['load_average_at_start'][0]:.2f} at start, "
            f"{m['load_average_at_end'][0]:.2f} at end.",
        ]
    )


def main(argv: Sequence[str] = sys.argv[1:]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--output", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(benchmark(args))
    write_result(args.output, result, markdown(result))


if __name__ == "__main__":
    main()
