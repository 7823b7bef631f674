"""Notifier: new-lead notices from a backlog to WeCom, side by side with a bare poster.

N ``leads.assigned`` events (default 5,000) for R reps (default 200) are produced before
the contender starts; the clock runs from the contender's start until the last notice
is visible at the vendor. The vendor is the WeCom fake of the test suite (tests/fakes:
gettoken, application messages, its own checks) in this process, answering after
``--vendor-delay-ms`` (default 20); its per-member limit is lifted so that it never
drops a bare message (the notifier keeps below 30 a minute per member by itself).

- **notifier**: ``python -m leadloop_notifier`` on a fresh, migrated database, default
  settings except a coalescing window of 0 s; the roster (R records on ``crm.reps``) is
  in the backlog too. Per batch of events: applied ids, state and outbox rows in one
  transaction; per sender pass: claim ripe groups, one message per rep and pass
  (coalesced), mark.
- **bare**: an aiokafka consumer that, per fetched batch, POSTs one message per record
  (``touser`` = the owner) with httpx, 32 in flight, then commits: no database, no
  coalescing, no rate limits.

Reported per run: notices/s (N / elapsed), messages sent, and the average cores the
contender and the machine used. The notifier's clock starts when ``/readyz`` answers
200 (partitions assigned; the backlog still to be read), the bare one's when it says it
is ready. Runs alternate notifier, bare, notifier, bare (``--runs`` pairs, default 3).
The ratio says what the exactly-once outbox costs (or, with coalescing, saves) against
the cheapest possible way to get N notices to the vendor.

    python -m bench.notifier_delivery [--notices 5000] [--reps 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench.common import (
    ROOT,
    CpuMeter,
    Service,
    Stack,
    alternating,
    announce_ready,
    bench_dir,
    check_exit,
    finish_result,
    fresh_database,
    fresh_topics,
    machine_info,
    machine_line,
    median,
    ratio,
    start_bare_worker,
    stop_on_signals,
    unique_prefix,
    wait_ready_line,
    write_result,
)
from tests.fakes.wecom import FakeWecom

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

OUTPUT = ROOT / "bench" / "results" / "notifier_delivery.json"
SECRET = "bench-corp-secret"
LEAD = re.compile(r"(?<![/\w])(B\d+)\b")


def notify_yaml(base_url: str) -> str:
    return json.dumps(
        {
            "channels": {
                "wecom_app": {
                    "kind": "wecom_app",
                    "corp_id": "ww-test-corp",
                    "corp_secret_env": "BENCH_WECOM_SECRET",
                    "agent_id": 1000002,
                    "base_url": base_url,
                }
            },
            "default": {
                "templates": "en",
                "coalesce_seconds": 0,
                "crm_link": "https://crm.example.com/leads/{lead_id}",
                "person_channels": ["wecom_app"],
            },
            "digest": False,
        }
    )


async def produce(kafka: KafkaSettings, notices: int, reps: int, *, roster: bool) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    try:
        now = datetime.now(UTC).isoformat()
        if roster:
            for r in range(reps):
                body = {"rep_id": f"u{r}", "team_id": "t", "updated_at": now,
                        "contacts": {"wecom_app": f"u{r}"}}  # fmt: skip
                await producer.send(qualified("crm.reps", kafka.topic_prefix),
                                    json.dumps(body).encode(), key=f"u{r}".encode())  # fmt: skip
        futures = []
        for i in range(notices):
            body = {
                "event_id": str(uuid.uuid4()), "occurred_at": now, "assignment_id": f"a{i}",
                "lead_id": f"B{i}", "owner_id": f"u{i % reps}", "team_id": "t",
                "rule_id": "r", "rule_version": "1", "strategy": "round_robin",
                "kind": "initial", "reason": "bench", "lead_occurred_at": now,
                "assigned_at": now, "priority": "hot",
            }  # fmt: skip
            futures.append(
                await producer.send(
                    qualified("leads.assigned", kafka.topic_prefix),
                    json.dumps(body).encode(),
                    key=f"B{i}".encode(),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def delivered(fake: FakeWecom) -> int:
    return len({lead for r in fake.received for lead in LEAD.findall(r.text)})


async def run_one(
    contender: str, stack: Stack, args: argparse.Namespace, tmp: Path, i: int
) -> dict[str, Any]:
    users = {f"u{r}" for r in range(args.reps)}
    async with (
        FakeWecom(corp_secret=SECRET, users=users, member_per_minute=10**9) as fake,
        fresh_topics(stack, unique_prefix("notifier")) as kafka,
    ):
        fake.faults.delay_s = args.vendor_delay_ms / 1000
        await produce(kafka, args.notices, args.reps, roster=contender == "notifier")
        log = tmp / f"{contender}-{i}.log"
        async with fresh_database(stack, "notifier") as db_url:
            if contender == "notifier":
                cfg = tmp / f"notify-{i}.yaml"
                cfg.write_text(notify_yaml(fake.base_url))
                service = Service.on(
                    "leadloop_notifier",
                    kafka,
                    db_url=db_url,
                    data_dir=tmp / f"data-{i}",
                    extra={"LEADLOOP_NOTIFY_FILE": str(cfg), "BENCH_WECOM_SECRET": SECRET},
                )
                child = await service.start(log, label=f"run {i}")
            else:
                child = await start_bare_worker(
                    "bench.notifier_delivery",
                    [kafka.bootstrap_servers, kafka.topic_prefix, fake.base_url],
                    log_path=log,
                    label=f"run {i}",
                )
                await wait_ready_line(child)
            if contender == "notifier":
                await service.ready(child)
            started = time.monotonic()
            meter = CpuMeter(contender=child.pid)
            meter.start()
            while delivered(fake) < args.notices:
                if not child.alive():
                    raise RuntimeError(f"{contender} exited:\n{child.log_tail()}")
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError(f"{contender}: {delivered(fake)} of {args.notices}")
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            cpu = meter.cores()
            check_exit(child, await child.stop())
    return {
        "contender": contender,
        "run": i,
        "elapsed_s": round(elapsed, 3),
        "notices_per_s": round(args.notices / elapsed, 1),
        "messages": len(fake.received),
        "cores": cpu,
    }


async def bare_worker(bootstrap: str, prefix: str, base_url: str) -> None:
    stop = stop_on_signals()
    consumer = AIOKafkaConsumer(
        qualified("leads.assigned", prefix),
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        token = (
            await client.get(
                "/cgi-bin/gettoken", params={"corpid": "ww-test-corp", "corpsecret": SECRET}
            )
        ).json()["access_token"]
        await consumer.start()
        gate = asyncio.Semaphore(32)

        async def post(value: bytes) -> None:
            event = json.loads(value)
            async with gate:
                await client.post(
                    "/cgi-bin/message/send",
                    params={"access_token": token},
                    json={"touser": event["owner_id"], "msgtype": "text", "agentid": 1000002,
                          "text": {"content": f"New lead {event['lead_id']}"}},
                )  # fmt: skip

        try:
            announce_ready()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                records = [r for rs in batch.values() for r in rs]
                await asyncio.gather(*(post(r.value or b"{}") for r in records))
                if records:
                    await consumer.commit()
        finally:
            await consumer.stop()


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| run | notifier notices/s | bare notices/s | notifier / bare "
        "| messages: notifier / bare |",
        "| --- | --- | --- | --- | --- |",
    ]
    pairs = list(zip(runs[0::2], runs[1::2], strict=False))
    for n, b in pairs:
        lines.append(
            f"| {n['run']} | {n['notices_per_s']} | {b['notices_per_s']} | "
            f"{ratio(n['notices_per_s'], b['notices_per_s'])} | {n['messages']} / {b['messages']} |"
        )
    if pairs:
        lines.append(
            f"| median | {median([n['notices_per_s'] for n, _ in pairs])} | "
            f"{median([b['notices_per_s'] for _, b in pairs])} | "
            f"{median([ratio(n['notices_per_s'], b['notices_per_s']) for n, b in pairs])} | |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    stack = Stack.from_env()
    started = time.monotonic()
    machine = await machine_info(stack)
    runs: list[dict[str, Any]] = []
    with bench_dir() as tmp:
        async for _, result in alternating(
            args.runs,
            lambda i: run_one("notifier", stack, args, tmp, i),
            lambda i: run_one("bare", stack, args, tmp, i),
        ):
            print(f"  {result}", file=sys.stderr)
            runs.append(result)
    result = {
        **finish_result("notifier_delivery", machine, started),
        "notices": args.notices,
        "reps": args.reps,
        "vendor_delay_ms": args.vendor_delay_ms,
        "runs": runs,
    }
    write_result(args.output, result, f"{table(runs)}\n\n{machine_line(machine)}")


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "bare-worker":
        asyncio.run(bare_worker(*sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--notices", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vendor-delay-ms", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
