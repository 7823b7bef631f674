"""Hand-off to a CRM that answers in 20 ms: deliveries per second from a backlog, and the
time from assignment to delivery at a steady rate, side by side with a bare poster.

Both contenders read the same ``LeadAssigned`` records from a fresh ``leads.assigned``
and POST one JSON body per lead to the same receiver, a small aiohttp server this module
runs in a process of its own (``receiver`` command): it reads the body, takes the lead id
out of it, notes the wall-clock time of receipt, sleeps ``--crm-delay-ms`` (default 20)
and answers 200. It checks no signature, so it costs both contenders the same.

- **handoff**: the real hand-off (``python -m leadloop_handoff``) on a freshly migrated
  database that holds the N ``leads`` rows (written by this driver, as the tables' owner,
  before the events exist), with one ``kind: webhook`` target (``config`` written per
  run: ``--max-in-flight`` 32, ``rate_per_s`` 1000, the most its config allows; secret
  in ``LEADLOOP_BENCH_CRM_SECRET``) and otherwise default settings: each batch of
  records becomes outbox rows in one transaction, a timer per target claims due rows
  (100 per pass), sends them ``max_in_flight`` at a time, signed, then stores the results.
- **bare**: an aiokafka consumer that POSTs, per fetched batch, one body per record, at
  most ``--max-in-flight`` at a time, awaits them and commits: no database, no signature.
  Its bodies are padded to the median size the hand-off sent in the run before it. Its
  client is aiohttp's (``--bare-client``, the least a Python poster costs; the hand-off
  sends with aiohttp too, one session per target); with ``--bare-client httpx`` it uses
  one httpx pool of 100 connections, the hand-off's client before it moved to aiohttp,
  which shows what that client costs.

Two measurements per contender and pair, each on its own topics (and database):

- **backlog**: N events (default 5,000) are produced before the contender starts;
  deliveries/s from the first to the last receipt at the receiver.
- **paced**: the contender is started and ready first; then events are produced at a
  steady rate (default 200/s for a 2 s warm-up and 20 s measured), each with
  ``assigned_at`` = the moment it is produced. Latency = the receiver's receipt time
  minus ``assigned_at`` (one machine, one wall clock); p50/p90/p99 over the measured
  window.

Runs alternate (handoff, bare, handoff, …); ratios are medians of per-pair ratios.

    python -m bench.handoff_delivery [--backlog 5000] [--rate 200] [--duration 20]
        [--warmup 2] [--runs 3] [--max-in-flight 32] [--crm-delay-ms 20]
        [--bare-client aiohttp|httpx] [--service-env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiohttp import ClientSession, TCPConnector, web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from bench.common import (
    ContenderRun,
    CpuMeter,
    add_env_option,
    add_run_options,
    announce_ready,
    bench_dir,
    env_pairs,
    finish_result,
    leadloop_and_bare,
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
from tests.support.children import ChildProcess, Service
from tests.support.ports import free_ports
from tests.support.processes import ROOT
from tests.support.stack import Stack, fresh_database, fresh_topics, unique_prefix

from leadloop.events import (
    AssignmentKind,
    LeadAssigned,
    Priority,
    Strategy,
    deterministic_id,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import by_name, qualified

ASSIGNED = "leads.assigned"
DEFAULT_RESULTS = ROOT / "bench" / "results" / "handoff_delivery.json"
SECRET_ENV = "LEADLOOP_BENCH_CRM_SECRET"
TARGET = "bench-crm"
#: The most ``rate_per_s`` the hand-off's config accepts: set so that pacing is not what
#: limits it (with 32 in flight and 20 ms replies the target could take 1,600/s).
RATE_PER_S = 1000
PERCENTILES = (50, 90, 99)
#: Records the bare poster takes per fetch (the services' default batch size).
BARE_BATCH = 500

# --------------------------------------------------------------------------- receiver


class Receiver:
    """The fake CRM: notes when each lead's first body arrived, then answers after
    ``delay_s``. Control endpoints (``/stats``, ``/receipts``, ``/reset``) are for the
    driver only."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.reset()

    def reset(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.sizes: list[int] = []
        self.duplicates = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def hook(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            lead_id = str(json.loads(body)["lead"]["lead_id"])
            if lead_id in self.first_seen:
                self.duplicates += 1
            else:
                self.first_seen[lead_id] = at
            self.sizes.append(len(body))
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"count": len(self.first_seen)})

    async def receipts(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "first_seen": self.first_seen,
                "median_bytes": median(self.sizes) if self.sizes else 0,
                "requests": len(self.sizes),
                "duplicates": self.duplicates,
                "max_in_flight": self.max_in_flight,
            }
        )

    async def do_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


async def run_receiver(args: argparse.Namespace) -> None:
    receiver = Receiver(args.delay_ms / 1000)
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/hook", receiver.hook)
    app.router.add_get("/stats", receiver.stats)
    app.router.add_get("/receipts", receiver.receipts)
    app.router.add_post("/reset", receiver.do_reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024).start()
    stop = stop_on_signals()
    announce_ready()
    await stop.wait()
    await runner.cleanup()


# --------------------------------------------------------------------------- bare poster


class _OnAssigned(ConsumerRebalanceListener):
    def __init__(self, assigned: asyncio.Event) -> None:
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: object) -> None:
        self._assigned.set()


async def bare_worker(args: argparse.Namespace) -> None:
    """The floor: fetch a batch, POST one body per record (at most ``max_in_flight`` at
    a time) with aiohttp or httpx, await them all, commit. No database, no signature, no
    retry."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    assigned = asyncio.Event()
    consumer.subscribe([args.source], listener=_OnAssigned(assigned))
    limit = asyncio.Semaphore(args.max_in_flight)
    pad_to: int = args.body_bytes
    headers = {"Content-Type": "application/json"}
    # aiohttp's (the hand-off's client) or httpx, one pool of 100 connections each.
    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=100))
    aio = ClientSession(connector=TCPConnector(limit=100))

    def body(value: bytes) -> bytes:
        event = json.loads(value)
        raw = json.dumps(
            {
                "type": "lead.assigned",
                "id": f"{event['lead_id']}:{event['assignment_id']}",
                "lead": event,
            },
            separators=(",", ":"),
        ).encode()
        pad = pad_to - len(raw) - len(',"pad":""')
        return raw[:-1] + b',"pad":"' + b"x" * pad + b'"}' if pad > 0 else raw

    async def post_httpx(value: bytes) -> None:
        async with limit:
            reply = await hx.post(args.url, content=body(value), headers=headers)
            reply.raise_for_status()

    async def post_aiohttp(value: bytes) -> None:
        async with limit, aio.post(args.url, data=body(value), headers=headers) as reply:
            await reply.read()
            reply.raise_for_status()

    post = post_httpx if args.client == "httpx" else post_aiohttp

    await consumer.start()
    stop = stop_on_signals()
    try:
        # No fetch before "ready": the backlog topic is preloaded.
        await assigned.wait()
        announce_ready()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=BARE_BATCH)
            values = [r.value or b"" for records in batch.values() for r in records]
            if values:
                await asyncio.gather(*(post(v) for v in values))
                await consumer.commit()
    finally:
        await hx.aclose()
        await aio.close()
        await consumer.stop()


# --------------------------------------------------------------------------- workload


def lead_id_of(i: int, run: str) -> str:
    return deterministic_id("bench-lead", run, i)


async def insert_leads(db_url: str, lead_ids: Sequence[str]) -> None:
    """The leads the hand-off will read, as ingest would have stored them (the cards
    carry their contact details)."""
    now = datetime.now(UTC)
    rows = [
        (
            lead_id, "web_form", f"bench-{i}", f"person{i}@example.com", f"+4915{i:09d}",
            f"Person {i}", f"Company {i % 97}", "Head of Operations", "DE", "BE", "Berlin",
            "software", "platform", 250, 25000.0, "spring-launch",
            "We would like a demo for our team of 40 next week.", 62, "warm", now, now,
            deterministic_id("leads.accepted", lead_id), 0, i,
        )
        for i, lead_id in enumerate(lead_ids)
    ]  # fmt: skip
    conn = await asyncpg.connect(db_url)
    try:
        await conn.copy_records_to_table(
            "leads",
            records=rows,
            columns=[
                "lead_id", "source", "source_lead_id", "email", "phone", "name", "company",
                "title", "country", "region", "city", "industry", "product", "company_size",
                "budget", "campaign", "message", "score", "priority", "occurred_at",
                "accepted_at", "accepted_event_id", "raw_partition", "raw_offset",
            ],
        )  # fmt: skip
    finally:
        await conn.close()


def assigned_event(lead_id: str, i: int, at: datetime) -> LeadAssigned:
    assignment_id = deterministic_id("bench-assignment", lead_id)
    return LeadAssigned(
        event_id=deterministic_id(ASSIGNED, assignment_id),
        occurred_at=at,
        assignment_id=assignment_id,
        lead_id=lead_id,
        owner_id=f"rep-{i % 20:02d}",
        team_id="team-bench",
        rule_id="default",
        rule_version="bench",
        strategy=Strategy.ROUND_ROBIN,
        kind=AssignmentKind.INITIAL,
        reason="round_robin: next in team-bench",
        lead_occurred_at=at,
        assigned_at=at,
        priority=Priority.WARM,
    )


class Producer:
    """Produces ``LeadAssigned`` records (acks=all), each stamped ``assigned_at`` = the
    moment it is handed to the producer; notes that moment (epoch seconds) per lead."""

    def __init__(self, kafka: KafkaSettings, lead_ids: Sequence[str], **extra: Any) -> None:
        self._topic = qualified(ASSIGNED, kafka.topic_prefix)
        self._ids = lead_ids
        self._producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", **extra)
        self.assigned_at: dict[str, float] = {}
        self.max_behind_s = 0.0

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def _send(self, i: int) -> asyncio.Future[Any]:
        lead_id = self._ids[i]
        at = datetime.now(UTC)
        self.assigned_at[lead_id] = at.timestamp()
        value = assigned_event(lead_id, i, at).model_dump_json().encode()
        future: asyncio.Future[Any] = await self._producer.send(
            self._topic, value, key=lead_id.encode()
        )
        return future

    async def all_now(self) -> float:
        """Every record as fast as possible; seconds it took."""
        t0 = time.perf_counter()
        await asyncio.gather(*[await self._send(i) for i in range(len(self._ids))])
        return time.perf_counter() - t0

    async def paced(self, rate: float, mark_at: int, on_mark: Callable[[], None]) -> float:
        """Record i at ``t0 + i / rate``; ``on_mark`` when record ``mark_at`` is due.
        Returns the ``perf_counter`` time the last one was acknowledged."""
        n = len(self._ids)
        futures = []
        t0 = time.perf_counter()
        i = 0
        while i < n:
            now = time.perf_counter()
            due = min(n, int((now - t0) * rate) + 1)
            if due > i:
                self.max_behind_s = max(self.max_behind_s, now - (t0 + i / rate))
            while i < due:
                if i == mark_at:
                    on_mark()
                futures.append(await self._send(i))
                i += 1
            await asyncio.sleep(max(0.001, t0 + i / rate - time.perf_counter()))
        await asyncio.gather(*futures)
        return time.perf_counter()


# --------------------------------------------------------------------------- measurement


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles, the maximum and the mean, in ms rounded to 0.1."""
    ordered = sorted(values)
    out = {f"p{p}": round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)
           for p in PERCENTILES}  # fmt: skip
    out["max"] = round(ordered[-1], 1)
    out["mean"] = round(sum(ordered) / len(ordered), 1)
    return out


@dataclass(kw_only=True)
class BacklogRun(ContenderRun):
    """N preloaded events; deliveries/s from the first receipt to the last."""

    deliveries: int
    elapsed_s: float
    deliveries_per_s: float
    #: Contender process start → first receipt (start-up, group join, first batch).
    first_receipt_s: float
    preload_s: float


@dataclass(kw_only=True)
class PacedRun(ContenderRun):
    """Steady traffic; assign→delivered latency over the measured window."""

    rate_target: float
    deliveries: int
    warmup: int
    rate_achieved: float
    #: Receiver's receipt time − the event's assigned_at, in ms.
    latency_ms: dict[str, float]
    producer_max_behind_ms: float


@dataclass
class Context:
    stack: Stack
    tmp: Path
    receiver_url: str
    backlog: int
    rate: float
    warmup_s: float
    duration_s: float
    max_in_flight: int
    timeout_s: float
    service_env: dict[str, str]
    bare_client: str
    secret: str = field(default_factory=lambda: "bench-" + uuid.uuid4().hex)
    #: Median body the hand-off sent in its last run: the bare poster's body size.
    body_bytes: int = 0

    @property
    def warmup(self) -> int:
        return round(self.rate * self.warmup_s)

    @property
    def paced_n(self) -> int:
        return self.warmup + round(self.rate * self.duration_s)


class ReceiverClient:
    def __init__(self, base: str) -> None:
        self._base = base
        self._session = ClientSession()

    async def reset(self) -> None:
        async with self._session.post(f"{self._base}/reset") as r:
            r.raise_for_status()

    async def count(self) -> int:
        async with self._session.get(f"{self._base}/stats") as r:
            return int((await r.json())["count"])

    async def receipts(self) -> dict[str, Any]:
        async with self._session.get(f"{self._base}/receipts") as r:
            data: dict[str, Any] = await r.json()
            return data

    async def close(self) -> None:
        await self._session.close()


async def until_received(
    rx: ReceiverClient,
    n: int,
    contender: ChildProcess,
    timeout_s: float,
    on_first: Callable[[int], None] | None = None,
) -> float:
    """Poll the receiver until ``n`` leads arrived; the contender must stay alive."""
    seen = 0
    try:
        async with asyncio.timeout(timeout_s):
            while seen < n:
                if not contender.alive():
                    raise RuntimeError(f"{contender.name} died mid-run:\n{contender.log_tail()}")
                count = await rx.count()
                if seen == 0 and count and on_first is not None:
                    on_first(count)
                seen = count
                if seen < n:
                    await asyncio.sleep(0.05)
    except TimeoutError:
        raise RuntimeError(
            f"{contender.name}: {seen} of {n} delivered after {timeout_s:.0f} s:\n"
            f"{contender.log_tail()}"
        ) from None
    return time.perf_counter()


def crm_yaml(ctx: Context) -> str:
    return (
        "targets:\n"
        f"  - name: {TARGET}\n"
        "    kind: webhook\n"
        f"    url: {ctx.receiver_url}/hook\n"
        f"    secret_env: {SECRET_ENV}\n"
        "    timeout_s: 10\n"
        f"    rate_per_s: {RATE_PER_S}\n"
        f"    max_in_flight: {ctx.max_in_flight}\n"
    )


async def start_handoff(ctx: Context, kafka: KafkaSettings, db_url: str, name: str) -> Service:
    crm = ctx.tmp / f"crm-{name}.yaml"
    crm.write_text(crm_yaml(ctx), encoding="utf-8")
    return Service.on(
        "handoff",
        kafka,
        db_url=db_url,
        data_dir=ctx.tmp / f"data-{name}",
        extra={"LEADLOOP_CRM_FILE": str(crm), SECRET_ENV: ctx.secret, **ctx.service_env},
    )


async def start_bare(ctx: Context, kafka: KafkaSettings, name: str) -> ChildProcess:
    args = [
        "--bootstrap", kafka.bootstrap_servers,
        "--source", qualified(ASSIGNED, kafka.topic_prefix),
        "--group", f"{kafka.topic_prefix}bare",
        "--url", f"{ctx.receiver_url}/hook",
        "--max-in-flight", str(ctx.max_in_flight),
        "--body-bytes", str(ctx.body_bytes),
        "--client", ctx.bare_client,
    ]  # fmt: skip
    child = await start_bare_worker(
        "bench.handoff_delivery", args, log_path=ctx.tmp / f"bare-{name}.log", label=name
    )
    await wait_ready_line(child)
    return child


async def delivered_rows(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM handoff_deliveries GROUP BY 1")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


async def stopped(child: ChildProcess) -> int:
    code = await child.stop()
    if code != 0:
        print(f"  warning: {child.name} exited with {code} after SIGTERM", file=sys.stderr)
    return code


async def measure_backlog(
    ctx: Context,
    kafka: KafkaSettings,
    rx: ReceiverClient,
    lead_ids: Sequence[str],
    start: Callable[[], Awaitable[ChildProcess]],
    index: int,
    who: str,
) -> tuple[BacklogRun, ChildProcess]:
    n = len(lead_ids)
    async with Producer(kafka, lead_ids, linger_ms=5, max_batch_size=1024 * 1024) as producer:
        preload_s = await producer.all_now()
    await rx.reset()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    contender = await start()
    cpu = CpuMeter(contender=contender.pid, driver=os.getpid())
    first: list[tuple[float, int]] = []

    def on_first(count: int) -> None:
        first.append((time.perf_counter(), count))
        cpu.start()

    try:
        await until_received(rx, n, contender, ctx.timeout_s, on_first)
    except BaseException:
        await contender.stop()
        raise
    cores = cpu.cores()
    window = time.perf_counter() - first[0][0]
    got = await rx.receipts()
    times = sorted(got["first_seen"].values())
    elapsed = times[-1] - times[0]
    counted = n - first[0][1]
    if who == "leadloop":
        ctx.body_bytes = int(got["median_bytes"])
    return BacklogRun(
        contender=who,
        index=index,
        deliveries=n,
        elapsed_s=round(elapsed, 3),
        deliveries_per_s=round((n - 1) / elapsed, 1) if elapsed > 0 else math.inf,
        first_receipt_s=round(first[0][0] - started, 3),
        preload_s=round(preload_s, 3),
        cpu_cores=cores,
        cpu_ms_per_lead=round(cores.get("contender", 0.0) * window / max(1, counted) * 1000, 4),
        load_average_1m=round(load, 2),
        detail={
            "median_body_bytes": got["median_bytes"],
            "requests": got["requests"],
            "duplicates": got["duplicates"],
            "receiver_max_in_flight": got["max_in_flight"],
        },
    ), contender


async def measure_paced(
    ctx: Context,
    kafka: KafkaSettings,
    rx: ReceiverClient,
    lead_ids: Sequence[str],
    contender: ChildProcess,
    index: int,
    who: str,
) -> PacedRun:
    n, warm = len(lead_ids), ctx.warmup
    await rx.reset()
    load = os.getloadavg()[0]
    cpu = CpuMeter(contender=contender.pid, driver=os.getpid())
    marks: list[float] = []

    def window_starts() -> None:
        marks.append(time.perf_counter())
        cpu.start()

    async with Producer(kafka, lead_ids) as producer:
        sending = asyncio.create_task(producer.paced(ctx.rate, warm, window_starts))
        try:
            while not sending.done():
                if not contender.alive():
                    raise RuntimeError(f"{contender.name} died:\n{contender.log_tail()}")
                await asyncio.wait({sending}, timeout=0.5)
            last_sent = sending.result()
        finally:
            sending.cancel()
        sent_wall = last_sent - marks[0]
        # CPU until the last delivery: a contender that fell behind the rate is still
        # working off what was produced in the window.
        done = await until_received(rx, n, contender, ctx.timeout_s)
        cores = cpu.cores()
        wall = done - marks[0]
    got = await rx.receipts()
    seen: dict[str, float] = got["first_seen"]
    measured = lead_ids[warm:]
    latency = [(seen[lid] - producer.assigned_at[lid]) * 1000 for lid in measured]
    if who == "leadloop":
        ctx.body_bytes = int(got["median_bytes"])
    return PacedRun(
        contender=who,
        index=index,
        rate_target=ctx.rate,
        deliveries=len(measured),
        warmup=warm,
        rate_achieved=round(len(measured) / sent_wall, 1),
        latency_ms=percentiles(latency),
        producer_max_behind_ms=round(producer.max_behind_s * 1000, 1),
        cpu_cores=cores,
        cpu_ms_per_lead=round(cores.get("contender", 0.0) * wall / len(measured) * 1000, 4),
        load_average_1m=round(load, 2),
        detail={
            "median_body_bytes": got["median_bytes"],
            "duplicates": got["duplicates"],
            "receiver_max_in_flight": got["max_in_flight"],
        },
    )


# --------------------------------------------------------------------------- runs


async def handoff_backlog(ctx: Context, rx: ReceiverClient, index: int) -> BacklogRun:
    run_tag = uuid.uuid4().hex
    lead_ids = [lead_id_of(i, run_tag) for i in range(ctx.backlog)]
    async with (
        fresh_topics(ctx.stack, unique_prefix("handoff")) as kafka,
        fresh_database(ctx.stack, "handoff") as db_url,
    ):
        await insert_leads(db_url, lead_ids)
        service = await start_handoff(ctx, kafka, db_url, f"backlog-{index}")

        async def start() -> ChildProcess:
            return await service.start(ctx.tmp / f"handoff-backlog-{index}.log", label="handoff")

        run, child = await measure_backlog(ctx, kafka, rx, lead_ids, start, index, "leadloop")
        run.detail["exit_code"] = await stopped(child)
        run.detail["outbox"] = await delivered_rows(db_url)
        return run


async def bare_backlog(ctx: Context, rx: ReceiverClient, index: int) -> BacklogRun:
    lead_ids = [lead_id_of(i, uuid.uuid4().hex) for i in range(ctx.backlog)]
    async with fresh_topics(ctx.stack, unique_prefix("handoff-bare")) as kafka:

        async def start() -> ChildProcess:
            return await start_bare(ctx, kafka, f"backlog-{index}")

        run, child = await measure_backlog(ctx, kafka, rx, lead_ids, start, index, "bare")
        run.detail["exit_code"] = await stopped(child)
        return run


async def handoff_paced(ctx: Context, rx: ReceiverClient, index: int) -> PacedRun:
    lead_ids = [lead_id_of(i, uuid.uuid4().hex) for i in range(ctx.paced_n)]
    async with (
        fresh_topics(ctx.stack, unique_prefix("handoff")) as kafka,
        fresh_database(ctx.stack, "handoff") as db_url,
    ):
        await insert_leads(db_url, lead_ids)
        service = await start_handoff(ctx, kafka, db_url, f"paced-{index}")
        child = await service.start(ctx.tmp / f"handoff-paced-{index}.log", label="handoff")
        try:
            await service.ready(child)
            run = await measure_paced(ctx, kafka, rx, lead_ids, child, index, "leadloop")
        finally:
            code = await stopped(child)
        run.detail["exit_code"] = code
        run.detail["outbox"] = await delivered_rows(db_url)
        return run


async def bare_paced(ctx: Context, rx: ReceiverClient, index: int) -> PacedRun:
    lead_ids = [lead_id_of(i, uuid.uuid4().hex) for i in range(ctx.paced_n)]
    async with fresh_topics(ctx.stack, unique_prefix("handoff-bare")) as kafka:
        child = await start_bare(ctx, kafka, f"paced-{index}")
        try:
            run = await measure_paced(ctx, kafka, rx, lead_ids, child, index, "bare")
        finally:
            code = await stopped(child)
        run.detail["exit_code"] = code
        return run


# --------------------------------------------------------------------------- report


def summarise(backlog: Sequence[BacklogRun], paced: Sequence[PacedRun]) -> dict[str, Any]:
    bl, bb = leadloop_and_bare(backlog)
    pairs = list(zip(bl, bb, strict=True))
    tput = [ratio(a.deliveries_per_s, b.deliveries_per_s) for a, b in pairs]
    cpu = [ratio(a.cpu_ms_per_lead, b.cpu_ms_per_lead) for a, b in pairs]
    out: dict[str, Any] = {
        "backlog": {
            "handoff_deliveries_per_s_median": median([r.deliveries_per_s for r in bl]),
            "bare_deliveries_per_s_median": median([r.deliveries_per_s for r in bb]),
            "per_pair_ratio": tput,
            "ratio_handoff_over_bare_median": round(median(tput), 3),
            "handoff_cpu_ms_per_delivery_median": median([r.cpu_ms_per_lead for r in bl]),
            "bare_cpu_ms_per_delivery_median": median([r.cpu_ms_per_lead for r in bb]),
            "per_pair_cpu_ratio": cpu,
            "cpu_ratio_handoff_over_bare_median": round(median(cpu), 2),
        }
    }
    pl, pb = leadloop_and_bare(paced)
    keys = [*(f"p{p}" for p in PERCENTILES), "max"]
    lat: dict[str, Any] = {}
    for who, runs in (("handoff", pl), ("bare", pb)):
        lat[f"{who}_ms_median"] = {k: round(median([r.latency_ms[k] for r in runs]), 1)
                                   for k in keys}  # fmt: skip
        lat[f"{who}_cpu_ms_per_delivery_median"] = median([r.cpu_ms_per_lead for r in runs])
        lat[f"{who}_cores_median"] = median([r.cpu_cores.get("contender", 0) for r in runs])
    ppairs = list(zip(pl, pb, strict=True))
    lat["per_pair_ratio"] = {k: [ratio(a.latency_ms[k], b.latency_ms[k]) for a, b in ppairs]
                             for k in keys}  # fmt: skip
    lat["ratio_handoff_over_bare_median"] = {
        k: round(median(v), 2) for k, v in lat["per_pair_ratio"].items()
    }
    lat["cpu_ratio_handoff_over_bare_median"] = round(
        median([ratio(a.cpu_ms_per_lead, b.cpu_ms_per_lead) for a, b in ppairs]), 2
    )
    out["paced"] = lat
    return out


def markdown(result: dict[str, Any]) -> str:
    backlog = [BacklogRun(**r) for r in result["backlog_runs"]]
    paced = [PacedRun(**r) for r in result["paced_runs"]]
    s, m, w = result["summary"], result["machine"], result["workload"]
    sb, sp = s["backlog"], s["paced"]
    nproc = m["nproc"]
    lines = [
        f"Backlog: {w['backlog']:,} LeadAssigned events preloaded, a CRM answering in "
        f"{w['crm_delay_ms']:.0f} ms, {w['max_in_flight']} in flight; deliveries/s from the "
        "first receipt to the last, handoff / bare",
        "",
        "| run | handoff/s | bare/s | handoff / bare | CPU ms per delivery: handoff / bare "
        f"| process cores: handoff / bare | machine busy cores (of {nproc}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (a, b), r in zip(zip(*leadloop_and_bare(backlog), strict=True), sb["per_pair_ratio"],
                         strict=True):  # fmt: skip
        lines.append(
            f"| {a.index} | {a.deliveries_per_s:,.0f} | {b.deliveries_per_s:,.0f} | {r:.3f} "
            f"| {a.cpu_ms_per_lead:.3f} / {b.cpu_ms_per_lead:.3f} "
            f"| {a.cpu_cores.get('contender', 0):.2f} / {b.cpu_cores.get('contender', 0):.2f} "
            f"| {a.cpu_cores['machine']:.2f} / {b.cpu_cores['machine']:.2f} "
            f"| {a.load_average_1m:.2f} / {b.load_average_1m:.2f} |"
        )
    lines += [
        f"| **median** | **{sb['handoff_deliveries_per_s_median']:,.0f}** "
        f"| **{sb['bare_deliveries_per_s_median']:,.0f}** "
        f"| **{sb['ratio_handoff_over_bare_median']:.3f}** "
        f"| **{sb['handoff_cpu_ms_per_delivery_median']:.3f} / "
        f"{sb['bare_cpu_ms_per_delivery_median']:.3f}** "
        f"(×{sb['cpu_ratio_handoff_over_bare_median']:.1f}) | | | |",
        "",
        f"Paced: {w['rate']:,.0f} events/s for {w['duration_s']:.0f} s after a "
        f"{w['warmup_s']:.0f} s warm-up; ms from assigned_at to receipt at the CRM, "
        "handoff / bare",
        "",
        "| run | p50 | p90 | p99 | max | achieved/s | CPU ms per delivery "
        f"| process cores | machine busy cores (of {nproc}) | load 1m |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    q = ("p50", "p90", "p99", "max")
    for x, y in zip(*leadloop_and_bare(paced), strict=True):
        cells = " | ".join(f"{x.latency_ms[k]:,.1f} / {y.latency_ms[k]:,.1f}" for k in q)
        lines.append(
            f"| {x.index} | {cells} | {x.rate_achieved:,.0f} / {y.rate_achieved:,.0f} "
            f"| {x.cpu_ms_per_lead:.3f} / {y.cpu_ms_per_lead:.3f} "
            f"| {x.cpu_cores.get('contender', 0):.2f} / {y.cpu_cores.get('contender', 0):.2f} "
            f"| {x.cpu_cores['machine']:.2f} / {y.cpu_cores['machine']:.2f} "
            f"| {x.load_average_1m:.2f} / {y.load_average_1m:.2f} |"
        )
    hm, bm, rm = sp["handoff_ms_median"], sp["bare_ms_median"], sp["ratio_handoff_over_bare_median"]
    cells = " | ".join(f"**{hm[k]:,.1f} / {bm[k]:,.1f}**" for k in q)
    lines += [
        f"| **median** | {cells} | | **{sp['handoff_cpu_ms_per_delivery_median']:.3f} / "
        f"{sp['bare_cpu_ms_per_delivery_median']:.3f}** "
        f"(×{sp['cpu_ratio_handoff_over_bare_median']:.1f}) | | | |",
        "| handoff / bare | " + " | ".join(f"×{rm[k]:.1f}" for k in q) + " | | | | | |",
        "",
        machine_line(m),
    ]
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    stack = running_stack()
    machine = await machine_info(stack)
    started = time.monotonic()
    backlog: list[BacklogRun] = []
    paced: list[PacedRun] = []
    with bench_dir() as tmp:
        [port] = free_ports(1)
        # Its own process: the 2 CPUs are shared, but not one event loop with a contender.
        receiver = await ChildProcess.start(
            "receiver",
            [sys.executable, "-m", "bench.handoff_delivery", "receiver", "--port", str(port),
             "--delay-ms", str(args.crm_delay_ms)],
            env=os.environ,
            log_path=tmp / "receiver.log",
            stdout_pipe=True,
        )  # fmt: skip
        print(f"  crm receiver pid {receiver.pid}", file=sys.stderr)
        rx = ReceiverClient(f"http://127.0.0.1:{port}")
        try:
            await wait_ready_line(receiver)
            ctx = Context(
                stack=stack,
                tmp=tmp,
                receiver_url=f"http://127.0.0.1:{port}",
                backlog=args.backlog,
                rate=args.rate,
                warmup_s=args.warmup,
                duration_s=args.duration,
                max_in_flight=args.max_in_flight,
                timeout_s=args.timeout,
                service_env=env_pairs(args.service_env, "--service-env"),
                bare_client=args.bare_client,
            )
            for i in range(1, args.runs + 1):
                for go_b in (handoff_backlog, bare_backlog):
                    b = await go_b(ctx, rx, i)
                    backlog.append(b)
                    print(
                        f"  {b.contender:8} backlog {i}: {b.deliveries_per_s:7,.0f}/s "
                        f"({b.elapsed_s:.1f} s, first after {b.first_receipt_s:.1f} s, "
                        f"{b.cpu_ms_per_lead:.3f} CPU ms each)",
                        file=sys.stderr,
                    )
                for go_p in (handoff_paced, bare_paced):
                    p = await go_p(ctx, rx, i)
                    paced.append(p)
                    q = p.latency_ms
                    print(
                        f"  {p.contender:8} paced {i}: p50 {q['p50']:.1f} p99 {q['p99']:.1f} "
                        f"max {q['max']:.1f} ms at {p.rate_achieved:,.0f}/s",
                        file=sys.stderr,
                    )
        finally:
            await rx.close()
            await receiver.stop()
    return {
        **finish_result("handoff_delivery", machine, started),
        "workload": {
            "backlog": args.backlog,
            "rate": args.rate,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "crm_delay_ms": args.crm_delay_ms,
            "max_in_flight": args.max_in_flight,
            "rate_per_s": RATE_PER_S,
            "partitions": by_name(ASSIGNED).partitions,
            "bare_batch": BARE_BATCH,
            "bare_client": args.bare_client,
            "receiver": "aiohttp, own process, sleeps crm_delay_ms per request, no checks",
            "service_env": env_pairs(args.service_env, "--service-env"),
        },
        "summary": summarise(backlog, paced),
        "backlog_runs": [asdict(r) for r in backlog],
        "paced_runs": [asdict(r) for r in paced],
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=5000, help="events preloaded")
    parser.add_argument("--rate", type=float, default=200, help="paced events per second")
    parser.add_argument("--warmup", type=float, default=2, help="paced seconds not measured")
    parser.add_argument("--duration", type=float, default=20, help="paced seconds measured")
    parser.add_argument("--max-in-flight", type=int, default=32, help="requests at once")
    parser.add_argument("--crm-delay-ms", type=float, default=20, help="CRM reply delay")
    parser.add_argument(
        "--bare-client",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the bare poster's HTTP client (the hand-off uses aiohttp)",
    )
    add_run_options(
        parser,
        output=DEFAULT_RESULTS,
        runs_help="alternating pairs",
        timeout_help="seconds a run may wait for its deliveries",
    )
    add_env_option(parser, "--service-env", "handoff")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["receiver"]:
        rx = argparse.ArgumentParser()
        rx.add_argument("--port", type=int, required=True)
        rx.add_argument("--delay-ms", type=float, required=True)
        asyncio.run(run_receiver(rx.parse_args(argv[1:])))
        return
    if argv[:1] == ["bare-worker"]:
        worker = argparse.ArgumentParser()
        for name in ("--bootstrap", "--source", "--group", "--url"):
            worker.add_argument(name, required=True)
        worker.add_argument("--max-in-flight", type=int, required=True)
        worker.add_argument("--body-bytes", type=int, required=True)
        worker.add_argument("--client", choices=("aiohttp", "httpx"), required=True)
        asyncio.run(bare_worker(worker.parse_args(argv[1:])))
        return
    args = parse_args(argv)
    if args.runs < 1 or args.backlog < 2 or args.rate <= 0 or args.duration <= 0:
        raise SystemExit("--runs, --backlog, --rate and --duration must be positive")
    result = asyncio.run(benchmark(args))
    write_result(args.output, result, markdown(result))


if __name__ == "__main__":
    main()
