"""The consumer-group error readiness looks for (the real case, a group denied by Kafka
ACLs, runs in tests/e2e/test_readyz_denied_group.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import faust
from aiokafka.errors import GroupAuthorizationFailedError

from leadloop.runtime import consumer_group_error


def app_with(coordinator: object) -> faust.App:
    aiokafka_consumer = SimpleNamespace(_coordinator=coordinator)
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=aiokafka_consumer))
    return cast(faust.App, SimpleNamespace(consumer=consumer))


def test_a_pending_group_error_is_named() -> None:
    app = app_with(SimpleNamespace(_pending_exception=GroupAuthorizationFailedError("g")))

    assert consumer_group_error(app) == "GroupAuthorizationFailedError"


def test_no_pending_error_is_none() -> None:
    assert consumer_group_error(app_with(SimpleNamespace(_pending_exception=None))) is None


def test_a_consumer_not_started_yet_reports_nothing() -> None:
    not_started: Any = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace()))

    assert consumer_group_error(cast(faust.App, not_started)) is None
