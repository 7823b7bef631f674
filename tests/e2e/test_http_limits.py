"""ingest's public listener under load from one client, on a real process: the API is
rate limited per client address (429 ``rate_limited`` with Retry-After) while probes
are not, and connections beyond the cap are answered 429 ``busy`` and closed before
their request is read; once connections close, new ones are served again."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingest(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        LEADLOOP_WEBHOOK_SECRETS=json.dumps({"web_form": "wf-" + uuid.uuid4().hex}),
        LEADLOOP_HTTP_RATE_PER_S="0.2",
        LEADLOOP_HTTP_BURST="3",
        LEADLOOP_HTTP_MAX_CONNECTIONS="4",
    )
    with running(env, tmp_path, "ingest") as group:
        yield group


async def request(
    host: str, port: int, path: str, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (closed after): status, headers, body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        body = b"{}" if method == "POST" else b""
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        return parse(await asyncio.wait_for(reader.read(), 10))
    finally:
        writer.close()


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


async def test_rate_limit_per_client_and_connection_cap(ingest: ServiceGroup) -> None:
    url = urlsplit(ingest.url("ingest", "/"))
    host, port = url.hostname or "127.0.0.1", url.port or 80

    # Three requests of the burst reach the webhook (401: unsigned), the fourth is limited.
    statuses = [(await request(host, port, "/v1/leads/web_form"))[0] for _ in range(3)]
    assert statuses == [401, 401, 401]
    status, headers, body = await request(host, port, "/v1/leads/web_form")
    assert (status, json.loads(body)) == (429, {"error": "rate_limited"})
    assert 1 <= int(headers["Retry-After"]) <= 5
    # Probes are not the API: never limited.
    for _ in range(5):
        assert (await request(host, port, "/healthz", "GET"))[0] == 200

    # Four idle connections fill the cap; the fifth is answered at once and closed.
    idle = [await asyncio.open_connection(host, port) for _ in range(4)]
    try:
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection(host, port)
        raw = await asyncio.wait_for(reader.read(), 10)  # closed by the server
        writer.close()
        status, headers, body = parse(raw)
        assert (status, json.loads(body)) == (429, {"error": "busy"})
        assert headers["Retry-After"] == "1"
        assert headers["Connection"] == "close"
    finally:
        for _, w in idle:
            w.close()
    # Room again once they are gone.
    for _ in range(50):
        await asyncio.sleep(0.1)
        if (await request(host, port, "/healthz", "GET"))[0] == 200:
            break
    else:
        pytest.fail("the listener did not take connections again")
