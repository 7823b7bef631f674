"""Before and after a change: one benchmark run from two checkouts, alternating.

    python -m bench.compare --before ../before --after . --rounds 3 \\
        sla_clocks -- --clocks 50000 --due 5000

Each round runs the benchmark once (``--runs 1``: one leadloop run beside one bare run)
from the ``--before`` checkout, then from ``--after``, each with its own virtual
environment (``<checkout>/.venv``, made by ``make venv`` there) against the stack of
this shell's environment (``. .state/env``). The rounds alternate, so a drift in the
machine's load hits both sides. The headline figures of each run are read from its
results JSON; the table shows their medians over the rounds and after / before. The
ratios to the bare loop are the figures to compare first: the bare loop ran beside each
side in the same minute, so they carry less of the machine's noise than the absolute
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import machine_line

__all__ = ["HEADLINES", "main"]

#: The figures compared for each benchmark: (label, path in the results' summary).
HEADLINES: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest_throughput": (
        ("leads/s, leadloop / bare", "ratio_leadloop_over_bare_median"),
        ("CPU ms per lead", "leadloop_cpu_ms_per_lead_median"),
        ("CPU per lead, leadloop / bare", "cpu_per_lead_ratio_leadloop_over_bare_median"),
    ),
    "assignment_latency": (
        ("p50 latency, leadloop / bare", "latency.ratio_leadloop_over_bare_median.p50"),
        ("p99 latency, leadloop / bare", "latency.ratio_leadloop_over_bare_median.p99"),
        ("CPU ms per lead (steady)", "latency.leadloop_cpu_ms_per_lead_median"),
        ("saturation leads/s, leadloop / bare", "saturation.ratio_leadloop_over_bare_median"),
        ("CPU ms per lead (saturation)", "saturation.leadloop_cpu_ms_per_lead_median"),
    ),
    "sla_clocks": (
        ("p50 publish lateness, leadloop / bare", "ratio_leadloop_over_bare_publish_median.p50"),
        ("p99 publish lateness, leadloop / bare", "ratio_leadloop_over_bare_publish_median.p99"),
        ("p50 publish lateness s", "leadloop_median.publish_lateness_s.p50"),
    ),
    "handoff_delivery": (
        ("backlog deliveries/s, hand-off / bare", "backlog.ratio_handoff_over_bare_median"),
        ("CPU ms per delivery (backlog)", "backlog.handoff_cpu_ms_per_delivery_median"),
        ("p50 latency paced, hand-off / bare", "paced.ratio_handoff_over_bare_median.p50"),
    ),
    "notifier_delivery": (
        ("escalations/s, notifier / bare", "ratios_notifier_over_bare_median.escalations_per_s"),
        ("CPU ms per message", "notifier.cpu_ms_per_message"),
        ("p99 latency, notifier / bare", "ratios_notifier_over_bare_median.latency_p99"),
    ),
}


def figure(summary: dict[str, Any], path: str) -> float:
    value: Any = summary
    for part in path.split("."):
        value = value[part]
    return float(value)


def run_once(checkout: Path, benchmark: str, extra: Sequence[str], output: Path) -> dict[str, Any]:
    """One run from ``checkout``: its results JSON (summary, machine, ...)."""
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), "-m", f"bench.{benchmark}", "--runs", "1", "--output", str(output)]
    subprocess.run([*command, *extra], cwd=checkout, env=os.environ.copy(), check=True)
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def table(benchmark: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    lines = ["| figure | before | after | after / before |", "| --- | ---: | ---: | ---: |"]
    for label, path in HEADLINES[benchmark]:
        b = statistics.median(figure(r["summary"], path) for r in before)
        a = statistics.median(figure(r["summary"], path) for r in after)
        change = f"{a / b:.2f}" if b else "–"
        lines.append(f"| {label} | {b:.3g} | {a:.3g} | {change} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout before")
    parser.add_argument("--after", type=Path, required=True, help="checkout after")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("benchmark", choices=sorted(HEADLINES))
    parser.add_argument("extra", nargs="*", help="the benchmark's own options, after --")
    args = parser.parse_args(argv)
    sides: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(args.rounds):
            for side in ("before", "after"):
                checkout = getattr(args, side).resolve()
                output = Path(scratch) / f"{side}-{n}.json"
                sides[side].append(run_once(checkout, args.benchmark, args.extra, output))
    loads = [r["machine"]["load_average_at_start"] for r in sides["before"] + sides["after"]]
    print(f"\n{args.benchmark}, {args.rounds} alternating rounds, {' '.join(args.extra)}")
    print(table(args.benchmark, sides["before"], sides["after"]))
    print(machine_line(sides["after"][0]["machine"]))
    print(f"Load averages at the start of each run: {loads}.")
    revisions = {side: runs[0]["machine"]["git_revision"] for side, runs in sides.items()}
    print(f"Before: {revisions['before']}; after: {revisions['after']}.")


if __name__ == "__main__":
    main()
