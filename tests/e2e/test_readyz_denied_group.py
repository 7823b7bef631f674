"""A service whose consumer group the Kafka ACLs deny is not ready.

Without its group the worker gets no partitions, so it has no lag and, to a naive
check, looks caught up while it consumes nothing. The locked-down broker here grants
the metrics principal its topics but not its group; /readyz must answer 503 and name
the group error, while the assignment service beside it (all its ACLs in place) is
ready.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.ports import free_port_base
from tests.support.processes import ServiceGroup, service_env
from tests.support.secure_kafka import SecureBroker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    b = SecureBroker(
        dir=tmp_path_factory.mktemp("denied-group"), prefix="den.", omit_groups_of=("metrics",)
    )
    try:
        b.start()
        yield b
    finally:
        b.stop()


def readyz(group: ServiceGroup, name: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(group.url(name, "/readyz"), timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_worker_denied_its_consumer_group_is_not_ready(
    database_url: str, broker: SecureBroker, tmp_path: Path
) -> None:
    env = service_env(database_url, broker.bootstrap, broker.prefix, tmp_path / "data")
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    for name in ("assignment", "metrics"):
        group.env = {**env, **broker.env(name)}
        group.start(name)
    try:
        group.wait_ready("assignment")
        deadline = time.monotonic() + 60
        status, body = 0, {}
        while time.monotonic() < deadline:
            assert group.alive("metrics"), group.log("metrics")
            try:
                status, body = readyz(group, "metrics")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                status, body = 0, {}
            if body.get("consumer_group_error"):
                break
            time.sleep(0.5)

        assert body.get("consumer_group_error") == "GroupAuthorizationFailedError", (
            f"/readyz answered {status} {body}\n{group.log('metrics')[-3000:]}"
        )
        assert status == 503
        assert body["ready"] is False
        group.wait_ready("assignment", timeout=30)  # with its ACLs, a service is ready
        denied = (
            "User:metrics is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = "
            f"Group:LITERAL:{broker.prefix}leadloop-metrics"
        )
        assert denied in broker.log_text(), "the broker denied the group, as set up"
    finally:
        group.stop()
