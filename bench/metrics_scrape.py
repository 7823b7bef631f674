"""``/metrics`` at full size: the metrics service holding every series ``series_bound``
allows for 5 sources, 10 teams and 200 reps, scraped over HTTP, side by side with a bare
prometheus_client HTTP server serving as many plain series.

Each leadloop run gets a fresh migrated database whose ``metric_values`` hold the whole
series set (every label combination the bound counts, each with a value) and fresh
topics; the real metrics service (``python -m leadloop_metrics``, default settings)
loads them at start, as after a restart, and serves them. The bare contender is
prometheus_client's own ``start_http_server`` in a process of its own, serving the same
series (same names, labels and values) as plain gauges from ``Gauge`` children: the
floor for "render this many series as Prometheus text from Python and send them".

Per run the driver scrapes ``--scrapes`` times back to back over one keep-alive HTTP
connection (after ``--warmup`` untimed scrapes), asking for the text format 0.0.4
without compression (the metrics service serves nothing else). A scrape's time is from
the request sent to the last byte of the body read, on the driver's monotonic clock.
p50, p90, p99 and max per run; CPU of the contender per scrape. Runs alternate
leadloop, bare, leadloop, bare… (``--runs`` pairs, default 3); the summary has the
medians and the median of per-pair ratios.

    python -m bench.metrics_scrape [--scrapes 200] [--runs 3] [--reps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from bench.common import (
    CpuMeter,
    add_env_option,
    add_run_options,
    alternating,
    announce_ready,
    bench_dir,
    check_exit,
    env_pairs,
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
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from tests.support.children import Service
from tests.support.ports import free_ports
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop_metrics.domain.labels import (
    LabelPolicy,
    SeriesKey,
    every_series,
    le_label,
    series_bound,
)
from leadloop_metrics.domain.metric_defs import METRICS

DEFAULT_RESULTS = ROOT / "bench" / "results" / "metrics_scrape.json"
#: The service's default sources (settings.sources).
SOURCES = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
#: The goal: a scrape (p50 and p99) within this.
GOAL_MS = 50.0
#: What the driver asks for: the text format the metrics service serves, uncompressed.
HEADERS = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"}


# --------------------------------------------------------------------------- workload


def full_series_set(teams: int, reps: int, seed: int) -> dict[SeriesKey, float]:
    """Every series ``series_bound(len(SOURCES), teams, reps)`` counts
    (``every_series``), each with a value in its stored unit. Reps are spread over the
    teams round-robin."""
    team_ids = [f"team-{i:02d}" for i in range(teams)]
    policy = LabelPolicy(
        sources=frozenset(SOURCES),
        teams=frozenset(team_ids),
        reps={f"rep-{i:03d}": team_ids[i % teams] for i in range(reps)},
    )
    rnd = random.Random(seed)
    out: dict[SeriesKey, float] = {}
    for name, sets in every_series(policy).items():
        d = METRICS[name]
        for labels in sets:
            if d.kind == "histogram":
                count = rnd.randint(0, 5_000)
                for le in (*d.buckets, math.inf):
                    key = (f"{d.name}_bucket", (*labels, ("le", le_label(le))))
                    out[key] = float(count if math.isinf(le) else rnd.randint(0, count))
                out[(f"{d.name}_sum", labels)] = float(rnd.randint(0, 10**10))
                out[(f"{d.name}_count", labels)] = float(count)
            else:
                out[(d.name, labels)] = float(rnd.randint(0, 10**7))
    bound = series_bound(len(SOURCES), teams, reps)
    counted: dict[str, int] = {}
    for name, _ in out:
        metric = name if name in METRICS else name.rsplit("_", 1)[0]
        counted[metric] = counted.get(metric, 0) + 1
    assert counted == bound, {
        n: (counted.get(n), b) for n, b in bound.items() if counted.get(n) != b
    }
    return out


async def store(url: str, series: dict[SeriesKey, float]) -> None:
    """The series set as ``metric_values`` rows, as the metrics service stores them."""
    keys = list(series)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO metric_values (metric, labels, value) "
            "SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(m, l, v)",
            [k[0] for k in keys],
            [json.dumps(dict(k[1])) for k in keys],
            [series[k] for k in keys],
        )
    finally:
        await conn.close()


# --------------------------------------------------------------------------- scraping


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def samples_in(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def scrape_times(port: int, scrapes: int, warmup: int) -> tuple[list[float], bytes]:
    """Seconds per scrape of ``http://127.0.0.1:port/metrics``, back to back over one
    keep-alive connection, and the last body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    body = b""
    try:
        for i in range(warmup + scrapes):
            started = time.perf_counter()
            conn.request("GET", "/metrics", headers=HEADERS)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"/metrics answered {response.status}: {body[:200]!r}")
            if i >= warmup:
                times.append(elapsed)
    finally:
        conn.close()
    return times, body


@dataclass
class Context:
    stack: Stack
    tmp: Path
    series: dict[SeriesKey, float]
    teams: int
    reps: int
    seed: int
    scrapes: int
    warmup: int
    #: Extra environment for the metrics service (configuration experiments).
    service_env: dict[str, str]


def measured(
    ctx: Context, contender: str, index: int, port: int, pid: int, extra: dict[str, Any]
) -> dict[str, Any]:
    load_1m = os.getloadavg()[0]
    meter = CpuMeter(contender=pid)
    meter.start()
    times, body = scrape_times(port, ctx.scrapes, ctx.warmup)
    cores = meter.cores()
    wall = sum(times)
    served = samples_in(body)
    if served != len(ctx.series):
        raise RuntimeError(f"{contender} served {served} samples, not {len(ctx.series)}")
    ms = [t * 1000 for t in times]
    run = {
        "contender": contender,
        "index": index,
        "load_average_1m": round(load_1m, 2),
        "scrapes": len(times),
        "samples": served,
        "body_bytes": len(body),
        "scrape_ms": {
            "p50": round(percentile(ms, 0.5), 1),
            "p90": round(percentile(ms, 0.9), 1),
            "p99": round(percentile(ms, 0.99), 1),
            "max": round(max(ms), 1),
            "mean": round(sum(ms) / len(ms), 1),
        },
        # Over the scrape loop: the contender's CPU per scrape (everything it did in
        # that time, the metrics service's periodic re-read of metric_values included).
        "cpu_ms_per_scrape": round(cores.get("contender", 0.0) * wall * 1000 / len(times), 1),
        "cpu_cores": cores,
        **extra,
    }
    print(
        f"  {contender} {index}: p50 {run['scrape_ms']['p50']} ms, "
        f"p99 {run['scrape_ms']['p99']} ms",
        file=sys.stderr,
    )
    return run


async def leadloop_run(ctx: Context, index: int) -> dict[str, Any]:
    async with (
        fresh_database(ctx.stack, "metrics") as url,
        fresh_topics(ctx.stack, unique_prefix("metrics")) as kafka,
    ):
        t = time.monotonic()
        await store(url, ctx.series)
        store_s = time.monotonic() - t
        service = Service.on(
            "metrics",
            kafka,
            db_url=url,
            data_dir=ctx.tmp / f"data-{index}",
            extra=ctx.service_env,
        )
        worker = await service.start(ctx.tmp / f"metrics-{index}.log", label=f"run {index}")
        try:
            t = time.monotonic()
            await service.ready(worker, timeout_s=180)
            ready_s = time.monotonic() - t
            run = await asyncio.to_thread(
                measured,
                ctx,
                "leadloop",
                index,
                service.port,
                worker.pid,
                {
                    "store_s": round(store_s, 2),
                    "start_to_ready_s": round(ready_s, 2),
                    "rss_mib": round(rss_bytes(worker.pid) / 2**20, 1),
                },
            )
        finally:
            code = await worker.stop()
        check_exit(worker, code)
    return run


async def bare_run(ctx: Context, index: int) -> dict[str, Any]:
    [port] = free_ports(1)
    args = ["--port", str(port), "--teams", str(ctx.teams), "--reps", str(ctx.reps)]
    args += ["--seed", str(ctx.seed)]
    child = await start_bare_worker(
        "bench.metrics_scrape", args, log_path=ctx.tmp / f"bare-{index}.log", label=f"run {index}"
    )
    try:
        await wait_ready_line(child, timeout_s=120)
        run = await asyncio.to_thread(
            measured,
            ctx,
            "bare",
            index,
            port,
            child.pid,
            {"rss_mib": round(rss_bytes(child.pid) / 2**20, 1)},
        )
    finally:
        code = await child.stop()
    check_exit(child, code)
    return run


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def bare_registry(series: dict[SeriesKey, float]) -> CollectorRegistry:
    """The series as plain prometheus_client gauges: one ``Gauge`` per series name, one
    child per label set, each set once."""
    registry = CollectorRegistry(auto_describe=False)
    gauges: dict[str, Gauge] = {}
    for (name, labels), value in series.items():
        gauge = gauges.get(name)
        if gauge is None:
            gauge = Gauge(name, name, [k for k, _ in labels], registry=registry)
            gauges[name] = gauge
        child = gauge.labels(*(v for _, v in labels)) if labels else gauge
        child.set(value)
    return registry


async def bare_worker(port: int, teams: int, reps: int, seed: int) -> None:
    registry = bare_registry(full_series_set(teams, reps, seed))
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = stop_on_signals()
    announce_ready()
    try:
        await stop.wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- report


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    lead, bare = leadloop_and_bare(runs)
    keys = ("p50", "p90", "p99", "max")
    out: dict[str, Any] = {}
    for who, rs in (("leadloop", lead), ("bare", bare)):
        out[f"{who}_scrape_ms_median"] = {
            k: round(median([r["scrape_ms"][k] for r in rs]), 1) for k in keys
        }
        out[f"{who}_cpu_ms_per_scrape_median"] = round(
            median([r["cpu_ms_per_scrape"] for r in rs]), 1
        )
    pairs = list(zip(lead, bare, strict=True))
    out["per_pair_ratio"] = {
        k: [ratio(a["scrape_ms"][k], b["scrape_ms"][k], 2) for a, b in pairs]
        for k in ("p50", "p99")
    }
    out["ratio_leadloop_over_bare_median"] = {
        k: round(median(v), 2) for k, v in out["per_pair_ratio"].items()
    }
    lm = out["leadloop_scrape_ms_median"]
    out["goal_ms"] = GOAL_MS
    out["goal_met"] = lm["p50"] <= GOAL_MS and lm["p99"] <= GOAL_MS
    return out


def markdown(result: dict[str, Any]) -> str:
    w, s, m = result["workload"], result["summary"], result["machine"]
    lead, bare = leadloop_and_bare(result["runs"])
    lines = [
        f"{w['series']:,} series ({w['sources']} sources, {w['teams']} teams, {w['reps']} "
        f"reps; {w['body_bytes']:,} bytes of text), {w['scrapes']} scrapes per run after "
        f"{w['warmup']} untimed, {len(lead)} alternating pairs; ms per scrape, "
        "leadloop / bare",
        "",
        "| run | p50 | p90 | p99 | max | CPU ms per scrape | process cores "
        f"| machine busy cores (of {m['nproc']}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(a: dict[str, Any], b: dict[str, Any], k: str) -> str:
        return f"{a['scrape_ms'][k]:.1f} / {b['scrape_ms'][k]:.1f}"

    for a, b in zip(lead, bare, strict=True):
        lines.append(
            f"| {a['index']} | {cell(a, b, 'p50')} | {cell(a, b, 'p90')} | {cell(a, b, 'p99')} "
            f"| {cell(a, b, 'max')} | {a['cpu_ms_per_scrape']:.1f} / {b['cpu_ms_per_scrape']:.1f} "
            f"| {a['cpu_cores'].get('contender', 0):.2f} / "
            f"{b['cpu_cores'].get('contender', 0):.2f} "
            f"| {a['cpu_cores']['machine']:.2f} / {b['cpu_cores']['machine']:.2f} "
            f"| {a['load_average_1m']:.2f} / {b['load_average_1m']:.2f} |"
        )
    lm, bm = s["leadloop_scrape_ms_median"], s["bare_scrape_ms_median"]
    r = s["ratio_leadloop_over_bare_median"]
    lines += [
        f"| **median** | **{lm['p50']:.1f} / {bm['p50']:.1f}** "
        f"| {lm['p90']:.1f} / {bm['p90']:.1f} | **{lm['p99']:.1f} / {bm['p99']:.1f}** "
        f"| {lm['max']:.1f} / {bm['max']:.1f} "
        f"| **{s['leadloop_cpu_ms_per_scrape_median']:.1f} / "
        f"{s['bare_cpu_ms_per_scrape_median']:.1f}** | | | |",
        f"| leadloop / bare | ×{r['p50']:.2f} | | ×{r['p99']:.2f} | | | | | |",
        "",
        f"Goal p50 and p99 ≤ {s['goal_ms']:.0f} ms: {'met' if s['goal_met'] else 'not met'}. "
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python "
        f"{m['python']}, PostgreSQL {m['postgresql']}, load average "
        f"{m['load_average_at_start'][0]:.2f} at start, {m['load_average_at_end'][0]:.2f} at "
        f"end, revision {m['git_revision']}.",
    ]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    series = full_series_set(args.teams, args.reps, args.seed)
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    with bench_dir() as tmp:
        ctx = Context(
            stack,
            tmp,
            series,
            args.teams,
            args.reps,
            args.seed,
            args.scrapes,
            args.warmup,
            env_pairs(args.metrics_env, "--metrics-env"),
        )
        async for _, run in alternating(
            args.runs, lambda i: leadloop_run(ctx, i), lambda i: bare_run(ctx, i)
        ):
            runs.append(run)
    return {
        **finish_result("metrics_scrape", machine, started),
        "workload": {
            "sources": len(SOURCES),
            "teams": args.teams,
            "reps": args.reps,
            "series": len(series),
            "body_bytes": runs[0]["body_bytes"],
            "scrapes": args.scrapes,
            "warmup": args.warmup,
            "seed": args.seed,
            "metrics_env": env_pairs(args.metrics_env, "--metrics-env"),
        },
        "summary": summarise(runs),
        "runs": runs,
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200, help="timed scrapes per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed scrapes first")
    parser.add_argument("--teams", type=int, default=10, help="configured teams")
    parser.add_argument("--reps", type=int, default=200, help="reps on the roster")
    parser.add_argument("--seed", type=int, default=20250303, help="seed of the values")
    add_run_options(parser, output=DEFAULT_RESULTS, runs_help="alternating pairs")
    add_env_option(parser, "--metrics-env", "metrics")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bare-worker"]:
        bare = argparse.ArgumentParser()
        for name in ("--port", "--teams", "--reps", "--seed"):
            bare.add_argument(name, type=int, required=True)
        a = bare.parse_args(argv[1:])
        asyncio.run(bare_worker(a.port, a.teams, a.reps, a.seed))
        return
    args = parse_args(argv)
    if args.scrapes < 1 or args.runs < 1 or args.teams < 1:
        raise SystemExit("--scrapes, --runs and --teams must be at least 1")
    result = asyncio.run(benchmark(args))
    write_result(args.output, result, markdown(result))


if __name__ == "__main__":
    main()
