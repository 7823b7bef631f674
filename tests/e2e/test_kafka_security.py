"""Kafka locked down: SASL/SCRAM-SHA-512 over TLS, ACLs per service principal derived
from the topic registry, ``allow.everyone.if.no.acl.found=false``.

The test starts a broker of its own (``kafka.sh start-secure``: its own CA, ports and
folder; the shared PLAINTEXT broker is not touched), shows that a plain-text client, a
TLS client without SASL and a wrong password are all refused, that a service principal
can neither write a topic that is not its own nor read one it does not consume, and
then runs the four services as processes with their own principals: a lead a channel
writes to ``leads.raw`` and one posted to ingest's webhook end accepted, assigned and
counted, with no ACL denial on the way (so the ACLs are enough) and no password in any
service output. A service started without its Kafka password exits naming the setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from tests.support.kafka import free_port_base
from tests.support.processes import CORE as SERVICES
from tests.support.processes import ServiceGroup, service_env
from tests.support.secure_kafka import SecureBroker, collect_as

from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

BOOT_TIMEOUT_S = 20
WEBHOOK_SECRET = "wf-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    b = SecureBroker(dir=tmp_path_factory.mktemp("secure-kafka"), prefix="sec.")
    try:
        b.start()
        yield b
    finally:
        b.stop()


def auth_failures(broker: SecureBroker) -> list[str]:
    return [line for line in broker.log_text().splitlines() if "Failed authentication" in line]


def denials(broker: SecureBroker, principal: str, since: int = 0) -> list[str]:
    """The authorizer's denials of ``principal`` after character ``since`` of the log."""
    return [
        line
        for line in broker.log_text()[since:].splitlines()
        if f"Principal = User:{principal} is Denied" in line
    ]


async def refused(**kwargs: Any) -> Exception:
    """Start a producer that must not get in; returns why it did not."""
    producer = AIOKafkaProducer(request_timeout_ms=5000, **kwargs)
    try:
        await asyncio.wait_for(producer.start(), BOOT_TIMEOUT_S)
    except Exception as exc:
        return exc
    finally:
        await producer.stop()
    raise AssertionError("the broker let the client in")


async def test_plaintext_and_tls_without_sasl_are_refused(broker: SecureBroker) -> None:
    before = len(auth_failures(broker))
    exc = await refused(bootstrap_servers=broker.bootstrap)
    assert isinstance(exc, KafkaConnectionError)
    # TLS with the right CA but no SASL login: the broker still closes the connection.
    ssl_context = broker.settings("channels").ssl_context()
    exc = await refused(
        bootstrap_servers=broker.bootstrap, security_protocol="SSL", ssl_context=ssl_context
    )
    assert isinstance(exc, KafkaConnectionError)
    assert len(auth_failures(broker)) > before, "the broker recorded no refused connection"


async def test_a_wrong_password_fails_and_the_right_one_works(broker: SecureBroker) -> None:
    before = len(auth_failures(broker))
    wrong = broker.settings("channels", password="not-the-channels-password")
    exc = await refused(**wrong.client_kwargs())
    assert isinstance(exc, KafkaConnectionError)
    failures = auth_failures(broker)[before:]
    assert any("invalid credentials with SASL mechanism SCRAM-SHA-512" in f for f in failures)
    # Same principal, same everything, the real password: in.
    producer = AIOKafkaProducer(**broker.settings("channels").client_kwargs())
    await producer.start()
    await producer.stop()


async def test_a_service_cannot_write_or_read_topics_that_are_not_its_own(
    broker: SecureBroker,
) -> None:
    assignment = broker.settings("assignment")
    producer = AIOKafkaProducer(**assignment.producer_kwargs())
    await producer.start()
    try:
        # Its own topic: allowed.
        await producer.send_and_wait(qualified("leads.assigned", broker.prefix), b"{}")
        # ingest's topic (which assignment may read, not write): denied.
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(qualified("leads.accepted", broker.prefix), b"{}")
        # A topic it has nothing to do with: not even its existence is visible.
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(qualified("leads.raw", broker.prefix), b"{}")
    finally:
        await producer.stop()
    # Personal data on leads.raw is not readable for a principal that only writes there.
    # (WRITE implies DESCRIBE, so it sees the topic; the fetch itself is refused.)
    consumer = AIOKafkaConsumer(
        qualified("leads.raw", broker.prefix),
        **broker.settings("channels").client_kwargs(),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(consumer.getone(), BOOT_TIMEOUT_S)
    finally:
        await consumer.stop()
    assert any("Topic:LITERAL:sec.leads.accepted" in d for d in denials(broker, "assignment"))


@pytest.fixture
def services(
    database_url: str, broker: SecureBroker, tmp_path: Path
) -> Iterator[tuple[ServiceGroup, int]]:
    """The four services as processes, each as its own principal; with the broker log's
    length before they started (denials after it are theirs)."""
    log_mark = len(broker.log_text())
    env = service_env(
        database_url,
        broker.bootstrap,
        broker.prefix,
        tmp_path / "data",
        LEADLOOP_WEBHOOK_SECRETS=json.dumps({"web_form": WEBHOOK_SECRET}),
    )
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    for name in SERVICES:
        # Each service connects as its own principal.
        group.env = {**env, **broker.env(name)}
        group.start(name)
    try:
        group.wait_ready(*SERVICES)
        yield group, log_mark
    finally:
        codes = group.stop()
        assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}"


def post_signed(group: ServiceGroup, body: str) -> int:
    """POST a lead to ingest's webhook, signed as the web_form channel; the status."""
    ts = str(int(time.time()))
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        group.url("ingest", "/v1/leads/web_form"),
        data=body.encode(),
        headers={"X-Leadloop-Timestamp": ts, "X-Leadloop-Signature": f"sha256={mac}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return int(reply.status)


def metric_totals(group: ServiceGroup) -> dict[str, float]:
    """The sums of leads accepted and assigned on /metrics."""
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    totals = {"leadloop_leads_accepted_total": 0.0, "leadloop_leads_assigned_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


async def test_services_run_with_their_own_principals(
    broker: SecureBroker, services: tuple[ServiceGroup, int]
) -> None:
    group, log_mark = services
    channels = AIOKafkaProducer(**broker.settings("channels").client_kwargs(), acks="all")
    await channels.start()
    try:
        lead = {"source": "web_form", "source_lead_id": "sec-1", "email": "sec@example.com"}
        await channels.send_and_wait(
            qualified("leads.raw", broker.prefix), json.dumps(lead).encode(), key=b"web_form:sec-1"
        )
    finally:
        await channels.stop()
    # The webhook's producer is ingest's faust producer: it writes leads.raw as User:ingest.
    body = json.dumps({"source": "web_form", "source_lead_id": "sec-2", "phone": "+1 415 555 0199"})
    assert await asyncio.to_thread(post_signed, group, body) == 202

    # Observed as the principals that consume these topics downstream. (leads.assigned
    # also holds the record the authorization test wrote as assignment.)
    ours = {"sec-1", "sec-2"}
    accepted = await collect_as(
        broker.settings("metrics"), "leads.accepted", lambda v: v.get("source_lead_id") in ours
    )
    assert sorted(v["source_lead_id"] for v in accepted) == sorted(ours), "not accepted once"
    lead_ids = {v["lead_id"] for v in accepted}
    assigned = await collect_as(
        broker.settings("crm"), "leads.assigned", lambda v: v.get("lead_id") in lead_ids
    )
    assert sorted(v["lead_id"] for v in assigned) == sorted(lead_ids), "not assigned once"
    assert all(v["kind"] == "initial" for v in assigned)

    # metrics counted it (it reads leads.accepted and leads.assigned as User:metrics).
    want = {"leadloop_leads_accepted_total": 2.0, "leadloop_leads_assigned_total": 2.0}
    deadline = asyncio.get_running_loop().time() + 30
    while (totals := await asyncio.to_thread(metric_totals, group)) != want:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"metrics saw {totals}, expected {want}")
        await asyncio.sleep(0.5)

    # The ACLs derived from the registry were enough: no service was denied anything.
    await asyncio.sleep(1)  # the authorizer log is written asynchronously
    for name in SERVICES:
        denied = denials(broker, name, since=log_mark)
        assert denied == [], f"{name} was denied: {denied[:3]}"
    # Secrets only from the environment, never in output.
    assert broker.passwords is not None
    for name in SERVICES:
        log = group.log(name, tail=None)
        assert broker.passwords[name] not in log
        assert "service_starting" in log


def test_a_service_without_its_kafka_password_does_not_start(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """The real entry point, not just the settings class: exit 2, the setting named, no
    secret printed."""
    env = {
        **service_env(
            "postgresql://leadloop:db-secret-5e1f@127.0.0.1:1/none",
            broker.bootstrap,
            broker.prefix,
            tmp_path,
        ),
        **broker.env("assignment"),
    }
    del env["LEADLOOP_KAFKA__PASSWORD"]
    done = subprocess.run(
        [sys.executable, "-m", "leadloop_assignment"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "kafka.password is missing" in done.stderr
    assert "db-secret-5e1f" not in done.stdout + done.stderr
