"""Notifier: 10,000 SLA escalations due at once, delivered to a WeCom fake that answers
in 50 ms, side by side with a bare httpx poster.

The contender is started and ready first (for the notifier: roster applied, partitions
assigned); then the driver produces N ``sla.escalations`` events (default 10,000; firing,
half ``remind_owner`` to the owner, half ``notify_manager`` to the manager), each with
``breached_at`` = ``due_at`` = the wall-clock moment it is handed to the producer, as
fast as it can. Recipients are R reps (default 1,000), N / R escalations each, in
round-robin order.

**Channel**: WeCom application messages (``wecom_app``), the vendor's per-member limit is
30 messages a minute (excess dropped silently); the fake also bounds the app's calls at
10,000 a minute (its default). With 1,000 reps, a poster at its ceiling (16 in flight at 50 ms:
320/s) reaches each member about once every 3 s (20 a minute), so even the bare poster
stays within both limits; with 400 reps it would not (48 a minute). The fake enforces both
limits (tests/fakes/wecom.py: per member 30/min silently dropped, 45009 past 10,000
calls/min) and the run reports drops and refusals.

**Vendor**: the WeCom fake of the test suite in its own process (so its CPU is not the
driver's or a contender's), answering every request after ``--vendor-delay-ms`` (50); it
notes the wall-clock time of acceptance per message, and the driver polls it.

- **notifier**: ``python -m leadloop_notifier`` on a fresh, migrated database, with the
  demo's round-the-clock calendar (``config/demo/calendars.yaml``: no quiet hours) and a
  coalescing window of ``--coalesce-seconds`` (default 0: delivery, not batching, is
  compared); default settings otherwise (tick 0.5 s, claims of 500, 16 sends in flight).
  ``--window-runs`` more notifier runs (default 1) use the shipped default window, 60 s.
- **bare**: an aiokafka consumer that per fetched batch POSTs one message per escalation
  with one httpx client, 16 in flight (the notifier's ``SEND_CONCURRENCY``), then commits:
  no database, no coalescing, no rate-limit scheduling, no retries.

Per run: escalations delivered/s and messages/s over (last acceptance − first record
produced); per escalation, acceptance of the first message that names it − its
``breached_at`` (one machine, one wall clock): p50/p90/p99/max; CPU ms per message and
per escalation of the contender process; average cores of contender, vendor, driver and
machine. Runs alternate notifier, bare (``--runs`` pairs, default 3); ratios are medians
of per-pair ratios.

    python -m bench.notifier_delivery [--escalations 10000] [--reps 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench.common import (
    CpuMeter,
    alternating,
    announce_ready,
    bench_dir,
    check_exit,
    finish_result,
    machine_info,
    machine_line,
    median,
    ratio,
    running_stack,
    start_bare_worker,
    stop_on_signals,
    wait_ready_line,
    write_result,
)
from tests.fakes.wecom import FakeWecom
from tests.support.children import ChildProcess, Service
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

OUTPUT = ROOT / "bench" / "results" / "notifier_delivery.json"
CALENDARS = ROOT / "config" / "demo" / "calendars.yaml"
SECRET = "bench-corp-secret"
CORP = "ww-test-corp"
AGENT = 1000002
#: Escalation lead ids look like E000123; a message names one or several.
LEAD = re.compile(r"\bE(\d{6,})\b")
#: The notifier's default SEND_CONCURRENCY: the bare poster keeps as many in flight.
CONCURRENCY = 16


def rep(r: int) -> str:
    return f"u{r:05d}"


def notify_yaml(base_url: str, coalesce_s: float) -> str:
    return json.dumps(
        {
            "channels": {
                "wecom_app": {
                    "kind": "wecom_app",
                    "corp_id": CORP,
                    "corp_secret_env": "BENCH_WECOM_SECRET",
                    "agent_id": AGENT,
                    "base_url": base_url,
                }
            },
            "default": {
                "templates": "en",
                "coalesce_seconds": coalesce_s,
                "crm_link": "https://crm.example.com/leads/{lead_id}",
                "person_channels": ["wecom_app"],
            },
            "digest": False,
        }
    )


# --------------------------------------------------------------------------- vendor


class BenchWecom(FakeWecom):
    """The test suite's WeCom fake, plus what the driver reads: per accepted message the
    address, the acceptance time and the escalations it names; refusals counted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refused = 0

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(), web.get("/bench/state", self._state)]

    async def _message_send(self, request: web.Request) -> web.Response:
        response = await super()._message_send(request)
        assert response.body is not None
        if json.loads(bytes(response.body))["errcode"] != 0:  # type: ignore[arg-type]
            self.refused += 1
        return response

    async def _state(self, request: web.Request) -> web.Response:
        start = int(request.query.get("from", "0"))
        received = [
            [r.address, r.at, [int(x) for x in set(LEAD.findall(r.text))]]
            for r in self.received[start:]
        ]
        return web.json_response(
            {
                "received": received,
                "dropped": len(self.dropped),
                "refused": self.refused,
                "requests": self.requests,
            }
        )


async def vendor_main(delay_ms: float, reps: int) -> None:
    stop = stop_on_signals()
    async with BenchWecom(
        corp_id=CORP, corp_secret=SECRET, agent_id=AGENT, users={rep(r) for r in range(reps)}
    ) as fake:
        fake.faults.delay_s = delay_ms / 1000
        print(fake.base_url, flush=True)
        await stop.wait()


class Vendor:
    """The vendor process, and what it has accepted so far (polled)."""

    def __init__(self, child: ChildProcess, base_url: str) -> None:
        self.child, self.base_url = child, base_url
        self.messages: list[tuple[str, float, list[int]]] = []
        self.delivered: dict[int, float] = {}
        self.state: dict[str, Any] = {}

    @classmethod
    async def start(cls, args: argparse.Namespace, log: Path) -> Vendor:
        argv = [sys.executable, "-m", "bench.notifier_delivery", "vendor"]
        argv += [str(args.vendor_delay_ms), str(args.reps)]
        child = await ChildProcess.start(
            "vendor", argv, env=os.environ, log_path=log, stdout_pipe=True
        )
        async with asyncio.timeout(30):
            base_url = await child.read_line()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"vendor said {base_url!r}:\n{child.log_tail()}")
        return cls(child, base_url)

    async def poll(self) -> None:
        url = f"{self.base_url}/bench/state?from={len(self.messages)}"

        def get() -> dict[str, Any]:
            with urllib.request.urlopen(url, timeout=10) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body

        self.state = await asyncio.to_thread(get)
        for address, at, ids in self.state["received"]:
            self.messages.append((address, at, ids))
            for i in ids:
                self.delivered.setdefault(i, at)


# --------------------------------------------------------------------------- workload


def escalation(i: int, reps: int, at: str) -> dict[str, Any]:
    """Escalation i: to rep i % R; even i remind the owner, odd i tell the manager."""
    to = rep(i % reps)
    manager = i % 2 == 1
    return {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "occurred_at": at,
        "escalation_id": f"esc-{i}",
        "lead_id": f"E{i:06d}",
        "owner_id": rep((i + 1) % reps) if manager else to,
        "team_id": "t",
        "manager_id": to if manager else None,
        "policy_id": "bench",
        "kind": "first_response",
        "level": 2 if manager else 1,
        "action": "notify_manager" if manager else "remind_owner",
        "due_at": at,
        "breached_at": at,
        "status": "firing",
    }


def recipient(i: int, reps: int) -> str:
    return rep(i % reps)


async def produce_roster(kafka: KafkaSettings, reps: int) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    try:
        now = datetime.now(UTC).isoformat()
        futures = []
        for r in range(reps):
            body = {"rep_id": rep(r), "team_id": "t", "updated_at": now,
                    "contacts": {"wecom_app": rep(r)}}  # fmt: skip
            futures.append(
                await producer.send(
                    qualified("crm.reps", kafka.topic_prefix),
                    json.dumps(body).encode(),
                    key=rep(r).encode(),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_escalations(kafka: KafkaSettings, n: int, reps: int) -> list[float]:
    """The burst; returns each escalation's ``breached_at`` (epoch seconds)."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    breached: list[float] = []
    try:
        topic = qualified("sla.escalations", kafka.topic_prefix)
        futures = []
        for i in range(n):
            t = time.time()
            breached.append(t)
            body = escalation(i, reps, datetime.fromtimestamp(t, UTC).isoformat())
            futures.append(
                await producer.send(topic, json.dumps(body).encode(), key=body["lead_id"].encode())
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return breached


async def wait_roster(db_url: str, reps: int, child: ChildProcess) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        async with asyncio.timeout(120):
            while await conn.fetchval("SELECT count(*) FROM notifier_reps") < reps:
                if not child.alive():
                    raise RuntimeError(f"notifier exited:\n{child.log_tail()}")
                await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def outbox_states(db_url: str) -> dict[str, int]:
    """The notifier's outbox after the run: rows per status (and last vendor code)."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT status, coalesce(last_code, '') AS code, count(*) AS n "
            "FROM notifier_outbox GROUP BY 1, 2"
        )
    finally:
        await conn.close()
    return {f"{r['status']}{':' + r['code'] if r['code'] else ''}": r["n"] for r in rows}


# --------------------------------------------------------------------------- one run


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


async def run_one(
    contender: str,
    stack: Stack,
    args: argparse.Namespace,
    tmp: Path,
    i: int,
    *,
    coalesce_s: float = 0,
) -> dict[str, Any]:
    load_1m = os.getloadavg()[0]
    vendor = await Vendor.start(args, tmp / f"vendor-{contender}-{i}.log")
    try:
        async with fresh_topics(stack, unique_prefix("notifier")) as kafka:
            return await _run_on(contender, stack, args, tmp, i, kafka, vendor, coalesce_s, load_1m)
    finally:
        await vendor.child.stop()


async def _run_on(
    contender: str,
    stack: Stack,
    args: argparse.Namespace,
    tmp: Path,
    i: int,
    kafka: KafkaSettings,
    vendor: Vendor,
    coalesce_s: float,
    load_1m: float,
) -> dict[str, Any]:
    n = args.escalations
    log = tmp / f"{contender}-{i}.log"
    async with fresh_database(stack, "notifier") as db_url:
        if contender.startswith("notifier"):
            await produce_roster(kafka, args.reps)
            cfg = tmp / f"notify-{contender}-{i}.yaml"
            cfg.write_text(notify_yaml(vendor.base_url, coalesce_s))
            service = Service.on(
                "notifier",
                kafka,
                db_url=db_url,
                data_dir=tmp / f"data-{contender}-{i}",
                extra={
                    "LEADLOOP_NOTIFY_FILE": str(cfg),
                    "LEADLOOP_CALENDARS_FILE": str(CALENDARS),
                    "BENCH_WECOM_SECRET": SECRET,
                },
            )
            child = await service.start(log, label=f"{contender} run {i}")
            await service.ready(child)
            await wait_roster(db_url, args.reps, child)
        else:
            child = await start_bare_worker(
                "bench.notifier_delivery",
                [kafka.bootstrap_servers, kafka.topic_prefix, vendor.base_url],
                log_path=log,
                label=f"run {i}",
            )
            await wait_ready_line(child)
        meter = CpuMeter(contender=child.pid, vendor=vendor.child.pid, driver=os.getpid())
        cpu0 = _cpu_s(child.pid)
        meter.start()
        t0 = time.time()
        breached = await produce_escalations(kafka, n, args.reps)
        produced_s = time.time() - t0
        timed_out = False
        while len(vendor.delivered) < n:
            if not child.alive():
                raise RuntimeError(f"{contender} exited:\n{child.log_tail()}")
            if time.time() - t0 > args.timeout:
                # Kept, not fatal: the outbox (below) says where the rest are.
                timed_out = True
                print(f"  {contender}: {len(vendor.delivered)} of {n} delivered", file=sys.stderr)
                break
            await asyncio.sleep(0.25)
            await vendor.poll()
        cpu_s = _cpu_s(child.pid) - cpu0
        cores = meter.cores()
        check_exit(child, await child.stop())
        outbox = await outbox_states(db_url) if contender.startswith("notifier") else None
        if timed_out:
            kept = Path(tmp).parent / f"notifier-bench-{contender}-{i}-{int(t0)}.log"
            kept.write_bytes(log.read_bytes())
            print(f"  log kept in {kept}; outbox {outbox}", file=sys.stderr)
    last = max(at for _, at, _ in vendor.messages)
    elapsed = last - t0
    latency = [vendor.delivered.get(k, math.inf) - breached[k] for k in range(n)]
    messages = len(vendor.messages)
    wrong = sum(1 for k in range(n) if not _to_right_person(vendor, k, args.reps))
    result = {
        "contender": contender,
        "run": i,
        "coalesce_seconds": coalesce_s if contender.startswith("notifier") else None,
        "escalations": n,
        "delivered": len(vendor.delivered),
        "timed_out": timed_out,
        "outbox": outbox,
        "messages": messages,
        "notices_per_message": round(n / messages, 2),
        "produced_s": round(produced_s, 3),
        "elapsed_s": round(elapsed, 3),
        "escalations_per_s": round(n / elapsed, 1),
        "messages_per_s": round(messages / elapsed, 1),
        "latency_s": {
            "p50": round(nearest_rank(latency, 0.50), 3),
            "p90": round(nearest_rank(latency, 0.90), 3),
            "p99": round(nearest_rank(latency, 0.99), 3),
            # inf (Infinity in the JSON) when a run was cut short before all arrived
            "max": round(max(latency), 3),
        },
        "cpu_ms_per_message": round(cpu_s * 1000 / messages, 3),
        "cpu_ms_per_escalation": round(cpu_s * 1000 / n, 3),
        "cpu_cores": cores,
        "load_average_1m": round(load_1m, 2),
        "vendor": {
            "requests": vendor.state.get("requests"),
            "dropped_over_member_limit": vendor.state.get("dropped"),
            "refused": vendor.state.get("refused"),
        },
        "wrong_recipient": wrong,
    }
    print(f"  {json.dumps(result)}", file=sys.stderr)
    return result


_recipients: dict[int, str] = {}


def _to_right_person(vendor: Vendor, k: int, reps: int) -> bool:
    if not _recipients:
        for address, _, ids in vendor.messages:
            for x in ids:
                _recipients.setdefault(x, address)
    return _recipients.get(k) == recipient(k, reps)


def _cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- bare


async def bare_worker(bootstrap: str, prefix: str, base_url: str) -> None:
    stop = stop_on_signals()
    consumer = AIOKafkaConsumer(
        qualified("sla.escalations", prefix),
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        reply = await client.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET})
        token = reply.json()["access_token"]
        await consumer.start()
        gate = asyncio.Semaphore(CONCURRENCY)
        errors = 0

        async def post(value: bytes) -> None:
            nonlocal errors
            e = json.loads(value)
            to = e["manager_id"] if e["action"] == "notify_manager" else e["owner_id"]
            text = f"{e['action']}: lead {e['lead_id']} breached {e['breached_at']}"
            async with gate:
                r = await client.post(
                    "/cgi-bin/message/send",
                    params={"access_token": token},
                    json={"touser": to, "msgtype": "text", "agentid": AGENT,
                          "text": {"content": text}},
                )  # fmt: skip
            if r.status_code != 200 or r.json().get("errcode") != 0:
                errors += 1

        try:
            # The topic is empty: poll until the group assigned the partitions, so the
            # clock does not include the group join.
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
            announce_ready()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                records = [r for rs in batch.values() for r in rs]
                await asyncio.gather(*(post(r.value or b"{}") for r in records))
                if records:
                    await consumer.commit()
        finally:
            print(f"bare: {errors} errors", file=sys.stderr)
            await consumer.stop()


# --------------------------------------------------------------------------- summary


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    lead = [r for r in runs if r["contender"] == "notifier"]
    bare = [r for r in runs if r["contender"] == "bare"]
    pairs = list(zip(lead, bare, strict=True))

    def med(rs: list[dict[str, Any]], key: str) -> float:
        return round(median([r[key] for r in rs]), 3)

    def med_lat(rs: list[dict[str, Any]], q: str) -> float:
        return round(median([r["latency_s"][q] for r in rs]), 3)

    out: dict[str, Any] = {}
    for name, rs in (("notifier", lead), ("bare", bare)):
        out[name] = {
            "escalations_per_s": med(rs, "escalations_per_s"),
            "messages_per_s": med(rs, "messages_per_s"),
            "messages": med(rs, "messages"),
            "elapsed_s": med(rs, "elapsed_s"),
            "cpu_ms_per_message": med(rs, "cpu_ms_per_message"),
            "cpu_ms_per_escalation": med(rs, "cpu_ms_per_escalation"),
            **{f"latency_{q}_s": med_lat(rs, q) for q in ("p50", "p90", "p99", "max")},
        }
    out["ratios_notifier_over_bare_median"] = {
        key: round(median([ratio(a[key], b[key]) for a, b in pairs]), 3)
        for key in (
            "escalations_per_s",
            "messages_per_s",
            "cpu_ms_per_message",
            "cpu_ms_per_escalation",
        )
    } | {
        f"latency_{q}": round(
            median([ratio(a["latency_s"][q], b["latency_s"][q]) for a, b in pairs]), 3
        )
        for q in ("p50", "p99")
    }
    return out


def table(runs: list[dict[str, Any]], s: dict[str, Any], nproc: int) -> str:
    lines = [
        "| run | escalations/s | messages/s | messages | p50 s | p99 s | max s "
        "| CPU ms per message | process cores | vendor cores "
        f"| machine busy cores (of {nproc}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lead = [r for r in runs if r["contender"] == "notifier"]
    bare = [r for r in runs if r["contender"] == "bare"]
    for a, b in zip(lead, bare, strict=True):
        c, d = a["cpu_cores"], b["cpu_cores"]
        lines.append(
            f"| {a['run']} | {a['escalations_per_s']:,.0f} / {b['escalations_per_s']:,.0f} "
            f"| {a['messages_per_s']:,.0f} / {b['messages_per_s']:,.0f} "
            f"| {a['messages']:,} / {b['messages']:,} "
            f"| {a['latency_s']['p50']:.2f} / {b['latency_s']['p50']:.2f} "
            f"| {a['latency_s']['p99']:.2f} / {b['latency_s']['p99']:.2f} "
            f"| {a['latency_s']['max']:.2f} / {b['latency_s']['max']:.2f} "
            f"| {a['cpu_ms_per_message']:.2f} / {b['cpu_ms_per_message']:.2f} "
            f"| {c.get('contender', 0):.2f} / {d.get('contender', 0):.2f} "
            f"| {c.get('vendor', 0):.2f} / {d.get('vendor', 0):.2f} "
            f"| {c['machine']:.2f} / {d['machine']:.2f} "
            f"| {a['load_average_1m']:.2f} / {b['load_average_1m']:.2f} |"
        )
    n, b, r = s["notifier"], s["bare"], s["ratios_notifier_over_bare_median"]
    lines.append(
        f"| **median** | **{n['escalations_per_s']:,.0f} / {b['escalations_per_s']:,.0f}** "
        f"| **{n['messages_per_s']:,.0f} / {b['messages_per_s']:,.0f}** "
        f"| {n['messages']:,.0f} / {b['messages']:,.0f} "
        f"| **{n['latency_p50_s']:.2f} / {b['latency_p50_s']:.2f}** "
        f"| **{n['latency_p99_s']:.2f} / {b['latency_p99_s']:.2f}** "
        f"| {n['latency_max_s']:.2f} / {b['latency_max_s']:.2f} "
        f"| **{n['cpu_ms_per_message']:.2f} / {b['cpu_ms_per_message']:.2f}** | | | | |"
    )
    lines.append(
        f"| notifier / bare | ×{r['escalations_per_s']:.3f} | ×{r['messages_per_s']:.3f} | "
        f"| ×{r['latency_p50']:.1f} | ×{r['latency_p99']:.1f} | "
        f"| ×{r['cpu_ms_per_message']:.1f} | | | | |"
    )
    for w in (x for x in runs if x["contender"] == "notifier-window"):
        lines.append("")
        lines.append(
            f"Notifier with the default {w['coalesce_seconds']:.0f} s coalescing window "
            f"(run {w['run']}): {w['messages']:,} messages for {w['escalations']:,} "
            f"escalations ({w['notices_per_message']} per message), last accepted "
            f"{w['elapsed_s']:.1f} s after the first was produced; p50 "
            f"{w['latency_s']['p50']:.2f} s, p99 {w['latency_s']['p99']:.2f} s; "
            f"{w['cpu_ms_per_escalation']:.3f} CPU ms per escalation."
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    stack = running_stack()
    started = time.monotonic()
    machine = await machine_info(stack)
    runs: list[dict[str, Any]] = []
    with bench_dir() as tmp:
        async for _, result in alternating(
            args.runs,
            lambda i: run_one("notifier", stack, args, tmp, i, coalesce_s=args.coalesce_seconds),
            lambda i: run_one("bare", stack, args, tmp, i),
        ):
            runs.append(result)
            _recipients.clear()
        for i in range(1, args.window_runs + 1):
            runs.append(
                await run_one("notifier-window", stack, args, tmp, i, coalesce_s=args.window)
            )
            _recipients.clear()
    s = summary(runs)
    result = {
        **finish_result("notifier_delivery", machine, started),
        "escalations": args.escalations,
        "reps": args.reps,
        "channel": "wecom_app (30 messages a minute per member, 10,000 calls a minute)",
        "vendor_delay_ms": args.vendor_delay_ms,
        "concurrency": CONCURRENCY,
        "summary": s,
        "runs": runs,
    }
    write_result(
        args.output, result, f"{table(runs, s, machine['nproc'])}\n\n{machine_line(machine)}"
    )


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "bare-worker":
        asyncio.run(bare_worker(*sys.argv[2:5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "vendor":
        asyncio.run(vendor_main(float(sys.argv[2]), int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--escalations", type=int, default=10_000, help="due at once")
    parser.add_argument("--reps", type=int, default=1000, help="recipients (WeCom members)")
    parser.add_argument("--runs", type=int, default=3, help="alternating pairs")
    parser.add_argument("--vendor-delay-ms", type=float, default=50)
    parser.add_argument(
        "--coalesce-seconds", type=float, default=0, help="the notifier's window in the pairs"
    )
    parser.add_argument(
        "--window-runs", type=int, default=1, help="extra notifier runs with --window"
    )
    parser.add_argument("--window", type=float, default=60, help="coalescing window, s")
    parser.add_argument(
        "--timeout", type=float, default=180, help="s per run before it is cut short"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
