"""The shared input decoder: a service's inputs come from the topic registry, and an
undecodable record is skipped and logged without its content."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import structlog

from leadloop.decoding import InputDecoder
from leadloop.events import RepUpdated, StageChanged
from leadloop.topics import inputs_of


def test_a_topic_a_service_does_not_consume_cannot_be_left_out() -> None:
    assert "leads.raw" not in inputs_of("ingest", exclude=("leads.raw",))
    with pytest.raises(ValueError, match=r"does not consume leads\.raw"):
        inputs_of("handoff", exclude=("leads.raw",))


def rep(**over: object) -> bytes:
    body = {
        "event_id": "e1",
        "rep_id": "rep-1",
        "team_id": "team-cn",
        "updated_at": datetime(2026, 1, 5, tzinfo=UTC).isoformat(),
    } | over
    return json.dumps(body).encode()


def test_events_decode_by_topic_and_a_bad_one_is_skipped_without_its_text() -> None:
    decoder = InputDecoder("handoff")
    assert decoder.topics == ("leads.assigned", "crm.reps")
    secret = "person@example.com"
    with structlog.testing.capture_logs() as logs:
        events = decoder.decode_all(
            [
                ("crm.reps", rep()),
                ("crm.reps", rep(team_id=secret, rep_id=None)),
                ("crm.reps", b"{"),
            ]
        )
    assert [type(e) for e in events] == [RepUpdated]
    assert [(r["event"], r["topic"], r["errors"]) for r in logs] == [
        ("undecodable_event", "crm.reps", 1),
        ("undecodable_event", "crm.reps", 1),
    ]
    assert secret not in repr(logs)


def test_a_record_of_another_topic_s_shape_does_not_pass() -> None:
    decoder = InputDecoder("assignment")
    assert decoder.decode("crm.stage-changes", rep()) is None
    assert StageChanged in decoder.models.values()
