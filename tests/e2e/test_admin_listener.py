"""ingest's admin endpoint is not on the webhook's port, and on its own loopback
listener it answers only with the bearer token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from tests.support.ports import free_ports
from tests.support.processes import http_status
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-" + uuid.uuid4().hex


def post(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, method="POST", headers=headers, data=b"")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {}


def test_admin_endpoints_are_off_the_public_port_and_need_the_token(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    (admin_port,) = free_ports(1)
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        LEADLOOP_ADMIN_TOKEN=TOKEN,
        LEADLOOP_ADMIN__PORT=str(admin_port),
    )
    with running(env, tmp_path, "ingest") as group:
        public = group.url("ingest", "/v1/admin/resume")
        admin = f"http://127.0.0.1:{admin_port}/v1/admin/resume"
        assert post(public, TOKEN)[0] == 404  # not on the webhook's listener
        assert post(admin) == (401, {"error": "unauthorized"})
        assert post(admin, "not-the-token-000000")[0] == 401
        assert post(admin, TOKEN) == (409, {"status": "not halted"})
        assert http_status(group.url("ingest", "/readyz")) == 200
        assert TOKEN not in group.log("ingest", None)
