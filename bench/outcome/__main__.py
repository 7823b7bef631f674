"""The loop's effect: the same seeded traffic and rep model, loop on and loop off.

    . .state/env && .venv/bin/python -m bench.outcome --seeds 5 --leads 300

For each seed, two runs on the real stack (fresh database and topics each): **off** —
ingest and assignment; **on** — the same and the sla-monitor on ``--policies``. The
simulator sends the seed's traffic, :mod:`bench.outcome.player` plays the reps of
:mod:`bench.outcome.model`, and after ``--horizon-h`` simulated hours the topics are read
and :mod:`bench.outcome.figures` computes the figures. Time is accelerated by running the
services on real time with every SLA duration divided by ``--scale`` (and a round-the-clock
calendar, so business time is elapsed time): one real second is ``--scale`` simulated
seconds. Writes ``bench/results/outcome.json``, the chart, and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench.outcome.figures import FIGURES, interval, run_figures
from bench.outcome.player import RepPlayer
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, running, stack_env
from tests.support.stack import unique_prefix as _unique_prefix

from leadloop.settings import KafkaSettings
from leadloop.simulate import SimulationConfig
from leadloop.simulate import run as simulate
from leadloop.topics import qualified

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Round the clock: business time is elapsed time, so it can be scaled.
CALENDARS = yaml.safe_dump(
    {
        "default": "always",
        "calendars": {
            "always": {"timezone": "UTC", "weekly": {key: ["00:00-24:00"] for key in _DAYS}}
        },
    }
)
TOPICS = ("leads.assigned", "crm.activities", "crm.stage-changes", "sla.escalations")


def scaled_policies(text: str, scale: float) -> str:
    """The policy file with every duration divided by ``scale`` (simulated → real)."""
    doc = yaml.safe_load(text)
    for policy in doc["policies"]:
        policy["limit_seconds"] /= scale
        for step in policy["ladder"]:
            for key in ("after_seconds", "warn_before_seconds"):
                if step.get(key) is not None:
                    step[key] /= scale
    return yaml.safe_dump(doc, sort_keys=False)


def write_configs(work: Path, policies: Path, scale: float) -> tuple[Path, Path]:
    """The scaled policy file and the round-the-clock calendar, in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    scaled = work / "sla.yaml"
    scaled.write_text(scaled_policies(policies.read_text(), scale))
    calendars = work / "calendars.yaml"
    calendars.write_text(CALENDARS)
    return scaled, calendars


async def read_all(kafka: KafkaSettings, name: str) -> list[dict[str, Any]]:
    """Every record of the topic, up to its end offsets now."""
    topic = qualified(name, kafka.topic_prefix)
    # The producer's lookup waits for the topic's metadata; the consumer's does not.
    producer = AIOKafkaProducer(**kafka.client_kwargs())
    await producer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: list[dict[str, Any]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got += [json.loads(r.value or b"{}") for r in records]
        return got
    finally:
        await consumer.stop()


async def one_run(
    stack: Stack, args: argparse.Namespace, seed: int, loop_on: bool, work: Path
) -> dict[str, Any]:
    arm = "on" if loop_on else "off"
    policies, calendars = write_configs(work, Path(args.policies), args.scale)
    started = time.monotonic()
    async with (
        fresh_database(stack, "outcome") as db,
        fresh_topics(stack, _unique_prefix(f"outcome-{seed}-{arm}")) as kafka,
    ):
        env = stack_env(
            db,
            kafka,
            work,
            LEADLOOP_POLICIES_FILE=str(policies),
            LEADLOOP_CALENDARS_FILE=str(calendars),
            LEADLOOP_TICK_SECONDS=str(args.tick),
        )
        names = ("ingest", "assignment", *(("sla-monitor",) if loop_on else ()))
        with running(env, work, *names, clean_exit=False):
            player = await RepPlayer.start(kafka, seed, args.scale)
            try:
                began = time.monotonic()
                arrivals_s = args.arrivals_h * 3600 / args.scale
                cfg = SimulationConfig(
                    leads=args.leads,
                    rate=args.leads / arrivals_s,
                    seed=seed,
                    reps=False,
                    roster_file=ROOT / "config/rules.yaml",
                )
                await simulate(kafka, cfg)
                horizon_s = args.horizon_h * 3600 / args.scale
                await asyncio.sleep(max(0.0, began + horizon_s - time.monotonic()))
                horizon = datetime.now(UTC)
            finally:
                await player.stop()
            records = {name: await read_all(kafka, name) for name in TOPICS}
    figures = run_figures(
        records["leads.assigned"],
        records["crm.activities"],
        records["crm.stage-changes"],
        records["sla.escalations"],
        horizon=horizon,
        scale=args.scale,
        silent_after_s=args.silent_days * 86400,
    )
    figures.update(seed=seed, arm=arm, elapsed_s=round(time.monotonic() - started, 1))
    figures["player"] = dict(player.counts)
    print(json.dumps(figures), flush=True)
    return figures


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["seed"], r["arm"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out: dict[str, Any] = {}
    for key in FIGURES:
        off = [by[s, "off"][key] for s in seeds]
        on = [by[s, "on"][key] for s in seeds]
        out[key] = {
            "off": interval(off),
            "on": interval(on),
            "difference": interval([b - a for a, b in zip(off, on, strict=True)]),
        }
    return out


def _fmt(key: str, x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x * 100:.1f} %" if FIGURES[key][1] == "share" else f"{x:.0f} min"


def _fmt_diff(key: str, x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x * 100:+.1f} pp" if FIGURES[key][1] == "share" else f"{x:+.0f} min"


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| figure | loop off | loop on | on − off (paired by seed) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, (label, _) in FIGURES.items():
        cells = []
        for arm in ("off", "on", "difference"):
            s = summary[key][arm]
            f = _fmt_diff if arm == "difference" else _fmt
            cells.append(f"{f(key, s['mean'])} [{f(key, s['low'])}, {f(key, s['high'])}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(summary: dict[str, Any], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FIGURES), figsize=(14, 3.6))
    for ax, (key, (label, unit)) in zip(axes, FIGURES.items(), strict=True):
        factor = 100 if unit == "share" else 1
        means: list[float] = []
        errors: list[list[float]] = [[], []]
        for arm in ("off", "on"):
            s = summary[key][arm]
            means.append(s["mean"] * factor)
            errors[0].append((s["mean"] - s["low"]) * factor if not math.isnan(s["low"]) else 0)
            errors[1].append((s["high"] - s["mean"]) * factor if not math.isnan(s["high"]) else 0)
        ax.bar(["loop off", "loop on"], means, yerr=errors, capsize=6, color=["#999", "#2a7"])
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("%" if unit == "share" else "simulated minutes", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"The loop's effect under the rep model's assumptions — {subtitle}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def experiment(args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack.from_env()
    if stack is None:
        raise SystemExit("DATABASE_URL is not set: `. .state/env` (or `make stack-up`) first")
    started = time.monotonic()
    runs = []
    for i in range(args.seeds):
        seed = args.first_seed + i
        for loop_on in (False, True):
            work = Path(args.work) / f"seed-{seed}-{'on' if loop_on else 'off'}"
            runs.append(await one_run(stack, args, seed, loop_on, work))
    summary = summarise(runs) if args.seeds >= 1 else {}
    return {
        "benchmark": "outcome",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - started, 1),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("out", "chart", "work")},
        "runs": runs,
        "summary": summary,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.outcome", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds (each run twice: off, on)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--leads", type=int, default=300, help="leads sent per run")
    p.add_argument("--scale", type=float, default=1200, help="simulated s per real s")
    p.add_argument("--arrivals-h", type=float, default=6, help="simulated h the leads arrive over")
    p.add_argument("--horizon-h", type=float, default=30, help="simulated h observed")
    p.add_argument("--silent-days", type=float, default=1, help="silent this long: lost")
    p.add_argument("--tick", type=float, default=0.05, help="sla-monitor tick, real s")
    p.add_argument("--policies", default=str(ROOT / "bench/outcome/sla.yaml"))
    p.add_argument("--out", default=str(ROOT / "bench/results/outcome.json"))
    p.add_argument("--chart", default=str(ROOT / "docs/outcome.png"))
    p.add_argument("--work", default=str(ROOT / ".state/outcome"), help="logs and configs")
    return p


def main() -> None:
    args = parser().parse_args()
    result = asyncio.run(experiment(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    subtitle = f"{args.seeds} seeds × {args.leads} leads, mean and 95 % t-interval"
    if args.chart:
        chart(result["summary"], Path(args.chart), subtitle)
    print(table(result["summary"]))


if __name__ == "__main__":
    main()
