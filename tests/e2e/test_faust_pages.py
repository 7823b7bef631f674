"""faust's own web pages are not served on a service's port, not even with faust's
debug switched on in the environment: /router (the cluster's worker URLs), /table
(table contents), /graph, the sensor statistics at / and /assignment/, /performance.
The service's own routes still answer.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from tests.support.processes import http_status
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

FAUST_PAGES = (
    "/router/",
    "/router/topics",
    "/table/",
    "/graph/",
    "/assignment/",
    "/performance/",
)


def test_a_service_serves_no_faust_page(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        # What an operator debugging the worker might set: it must not open the pages.
        APP_DEBUG="1",
        APP_WEB_STATS_ENABLED="1",
        APP_WEB_ROUTER_ENABLED="1",
        APP_WEB_METRICS_ENABLED="1",
    )
    with running(env, tmp_path, "assignment") as group:
        served = {path: http_status(group.url("assignment", path)) for path in FAUST_PAGES}
        assert served == dict.fromkeys(FAUST_PAGES, 404)
        # "/" is faust's plain production index, not the sensor statistics.
        with urllib.request.urlopen(group.url("assignment", "/"), timeout=5) as r:
            assert json.loads(r.read()) == {"status": "OK"}
        assert http_status(group.url("assignment", "/readyz")) == 200
        assert http_status(group.url("assignment", "/metrics")) == 200
