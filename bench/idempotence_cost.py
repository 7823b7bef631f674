"""What idempotent producers cost: the bare aiokafka relay of ``bench.ingest_throughput``
with ``enable_idempotence`` on (as every leadloop producer has it) and off, side by side.

Both contenders are the same relay process (getmany → json.loads → send with acks=all →
await the deliveries → commit) over the same bytes, on fresh topics each run; the only
difference is the producer's idempotence (a producer id and per-partition sequence
numbers in every batch, at most five requests in flight per broker). Runs alternate
(idempotent, plain, idempotent, …); the ratio is the median of the per-pair ratios.

    python -m bench.idempotence_cost [--leads 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from bench.common import (
    add_relay_worker_command,
    add_run_options,
    alternating,
    bench_dir,
    check_exit,
    finish_result,
    machine_info,
    machine_line,
    median,
    ratio,
    run_relay_benchmark,
    running_stack,
    start_relay_worker,
    wait_ready_line,
)
from bench.ingest_throughput import OUT, RAW, Context, Run, Workload, timed_run
from tests.support.processes import ROOT
from tests.support.stack import fresh_topics, unique_prefix

DEFAULT_RESULTS = ROOT / "bench" / "results" / "idempotence_cost.json"


async def run_relay(ctx: Context, index: int, *, idempotent: bool) -> Run:
    name = "idempotent" if idempotent else "plain"
    async with fresh_topics(ctx.stack, unique_prefix(f"idempotence-{name}")) as kafka:
        worker = await start_relay_worker(
            "bench.idempotence_cost",
            kafka,
            RAW,
            OUT,
            log_path=ctx.tmp / f"{name}-{index}.log",
            label=f"{name} run {index}",
            idempotent=idempotent,
        )
        try:
            await wait_ready_line(worker)
            run = await timed_run(ctx, kafka, name, {name: worker}, index)
        finally:
            code = await worker.stop()
        check_exit(worker, code)
        return replace(run, detail={"exit_code": code})


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    on = [r for r in runs if r.contender == "idempotent"]
    off = [r for r in runs if r.contender == "plain"]
    pairs = list(zip(on, off, strict=True))
    rate = [ratio(a.leads_per_s, b.leads_per_s) for a, b in pairs]
    cpu = [ratio(a.cpu_ms_per_lead, b.cpu_ms_per_lead) for a, b in pairs]
    return {
        "idempotent_leads_per_s_median": round(median([r.leads_per_s for r in on]), 1),
        "plain_leads_per_s_median": round(median([r.leads_per_s for r in off]), 1),
        "per_pair_ratio": rate,
        "ratio_idempotent_over_plain_median": round(median(rate), 3),
        "idempotent_cpu_ms_per_lead_median": round(median([r.cpu_ms_per_lead for r in on]), 4),
        "plain_cpu_ms_per_lead_median": round(median([r.cpu_ms_per_lead for r in off]), 4),
        "per_pair_cpu_ratio": cpu,
        "cpu_ratio_idempotent_over_plain_median": round(median(cpu), 3),
    }


def markdown(result: dict[str, Any]) -> str:
    runs = [Run(**r) for r in result["runs"]]
    on = [r for r in runs if r.contender == "idempotent"]
    off = [r for r in runs if r.contender == "plain"]
    s, w = result["summary"], result["workload"]
    lines = [
        f"Idempotent producer against plain (both acks=all), bare relay, {w['leads']:,} "
        f"records, {len(on)} alternating pairs",
        "",
        "| run | idempotent records/s | plain records/s | idempotent / plain "
        "| CPU ms per record: idempotent / plain | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b, r in zip(on, off, s["per_pair_ratio"], strict=True):
        lines.append(
            f"| {a.index} | {a.leads_per_s:,.0f} | {b.leads_per_s:,.0f} | {r:.3f} "
            f"| {a.cpu_ms_per_lead:.4f} / {b.cpu_ms_per_lead:.4f} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    lines += [
        f"| **median** | **{s['idempotent_leads_per_s_median']:,.0f}** "
        f"| **{s['plain_leads_per_s_median']:,.0f}** "
        f"| **{s['ratio_idempotent_over_plain_median']:.3f}** "
        f"| **{s['idempotent_cpu_ms_per_lead_median']:.4f} / "
        f"{s['plain_cpu_ms_per_lead_median']:.4f}** "
        f"(×{s['cpu_ratio_idempotent_over_plain_median']:.2f}) | |",
        "",
        machine_line(result["machine"]),
    ]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    workload = Workload.build(args.seed, args.leads)
    runs: list[Run] = []
    started = time.monotonic()
    with bench_dir() as tmp:
        ctx = Context(stack, workload, tmp, args.timeout)
        async for i, run in alternating(
            args.runs,
            lambda i: run_relay(ctx, i, idempotent=True),
            lambda i: run_relay(ctx, i, idempotent=False),
        ):
            runs.append(run)
            print(
                f"  {run.contender:10} run {i}: {run.leads_per_s:9,.0f} records/s "
                f"({run.elapsed_s:.1f} s)",
                file=sys.stderr,
            )
    return {
        **finish_result("idempotence_cost", machine, started),
        "workload": {"leads": workload.n, "seed": args.seed},
        "summary": summarise(runs),
        "runs": [asdict(r) for r in runs],
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=50_000, help="records per run")
    add_run_options(
        parser,
        output=DEFAULT_RESULTS,
        seed_help="seed of the simulated traffic (leadloop.simulate)",
        timeout_help="seconds one timed run may take before it fails",
    )
    add_relay_worker_command(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.leads < 1 or args.runs < 1:
        raise SystemExit("--leads and --runs must be at least 1")
    run_relay_benchmark(args, benchmark=benchmark, markdown=markdown, fetch_until_assigned=True)


if __name__ == "__main__":
    main()
