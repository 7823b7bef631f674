"""The shared input decoder: a service's inputs come from the topic registry, and an
undecodable record raises ``Undecodable`` (for the agent to dead-letter) and is logged,
without its content either way."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import structlog

from leadloop.decoding import InputDecoder, Undecodable
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


def test_events_decode_by_topic_and_a_bad_one_raises_without_its_text() -> None:
    decoder = InputDecoder("handoff")
    assert decoder.topics == ("leads.assigned", "crm.reps")
    secret = "person@example.com"
    assert [type(e) for e in decoder.decode_all([("crm.reps", rep())])] == [RepUpdated]
    raised: list[Undecodable] = []
    with structlog.testing.capture_logs() as logs:
        for value in (rep(team_id=secret, rep_id=None), b"{"):
            with pytest.raises(Undecodable) as caught:
                decoder.decode_all([("crm.reps", rep()), ("crm.reps", value)])
            raised.append(caught.value)
    assert [(r["event"], r["topic"], r["errors"]) for r in logs] == [
        ("undecodable_event", "crm.reps", 1),
        ("undecodable_event", "crm.reps", 1),
    ]
    assert [(e.reason, e.topic, e.errors, e.fields) for e in raised] == [
        ("undecodable", "crm.reps", 1, ("rep_id",)),
        ("undecodable", "crm.reps", 1, ()),
    ]
    assert secret not in repr(logs) + "".join(str(e) for e in raised)


def test_a_record_of_another_topic_s_shape_does_not_pass() -> None:
    decoder = InputDecoder("assignment")
    with pytest.raises(Undecodable):
        decoder.decode("crm.stage-changes", rep())
    assert StageChanged in decoder.models.values()
