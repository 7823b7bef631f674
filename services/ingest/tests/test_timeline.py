"""Satisfaction scores on ingest's timeline: ``timeline.parse`` judges a
``crm.satisfaction`` value as it does activities and stage changes, and the
``TimelineHandler`` hands a usable score to the store and a bad one to ``crm.rejected``
with its bytes, its key and the reason headers (no broker, no database)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from leadloop.clock import FixedClock
from leadloop.events import SatisfactionRecorded
from leadloop.messaging import RecordingPublisher
from leadloop_ingest.domain.intake import Position
from leadloop_ingest.domain.timeline import CrmRejection, TimelineEvent, Unusable, parse
from leadloop_ingest.handlers import TimelineHandler

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def score(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "csat-1",
        "lead_id": "lead-1",
        "rep_id": "rep-1",
        "score": 4,
        "occurred_at": "2025-03-14T09:00:00+08:00",
        **fields,
    }


def value(item: Any) -> bytes:
    return json.dumps(item, ensure_ascii=False).encode()


def test_a_score_with_or_without_rep_and_survey_is_an_event() -> None:
    full = parse(SatisfactionRecorded, value(score(survey_id="post_call", crm_extra=1)))
    assert isinstance(full, SatisfactionRecorded)
    assert (full.lead_id, full.rep_id, full.score, full.survey_id) == (
        "lead-1",
        "rep-1",
        4,
        "post_call",
    )
    bare = {k: v for k, v in score(score=1).items() if k != "rep_id"}
    parsed = parse(SatisfactionRecorded, value(bare))
    assert isinstance(parsed, SatisfactionRecorded)
    assert (parsed.rep_id, parsed.score) == (None, 1)


@pytest.mark.parametrize("number", [0, 6, -1, 10, 100, 10**30])
def test_a_whole_number_off_the_scale_is_score_out_of_range(number: int) -> None:
    assert parse(SatisfactionRecorded, value(score(score=number))) == CrmRejection(
        "score_out_of_range", "score must be from 1 to 5"
    )


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"score": "4"}, "invalid fields: score"),  # strict: published as sent
        ({"score": 4.0}, "invalid fields: score"),
        ({"score": 4.5}, "invalid fields: score"),
        ({"score": True}, "invalid fields: score"),  # a JSON boolean is not a score
        ({"score": None}, "invalid fields: score"),
        ({"occurred_at": "2025-03-14T09:00:00"}, "invalid fields: occurred_at"),  # no offset
        ({"survey_id": "Post Call!"}, "invalid fields: survey_id"),
        ({"rep_id": ""}, "invalid fields: rep_id"),
        ({"lead_id": 7}, "invalid fields: lead_id"),
    ],
)
def test_other_invalid_fields_are_schema_violations(fields: dict[str, Any], detail: str) -> None:
    assert parse(SatisfactionRecorded, value(score(**fields))) == CrmRejection(
        "schema_violation", detail
    )


def test_a_missing_score_is_a_schema_violation() -> None:
    item = {k: v for k, v in score().items() if k != "score"}
    assert parse(SatisfactionRecorded, value(item)) == CrmRejection(
        "schema_violation", "invalid fields: score"
    )


class RecordingTimeline:
    """A TimelineRepository that knows every lead."""

    def __init__(self) -> None:
        self.events: list[TimelineEvent] = []

    async def apply(
        self,
        events: Sequence[tuple[Position, TimelineEvent]],
        rejected: Sequence[Unusable],
        now: datetime,
    ) -> list[Unusable]:
        self.events.extend(e for _, e in events)
        return list(rejected)


async def test_the_handler_stores_a_score_and_dead_letters_a_bad_one_with_its_bytes() -> None:
    store = RecordingTimeline()
    publisher = RecordingPublisher()
    handler = TimelineHandler(store=store, publisher=publisher, clock=FixedClock(NOW))
    good = value(score())
    bad = value(score(event_id="csat-2", score=9))
    used = await handler.handle(
        [
            (Position("t.crm.satisfaction", 2, 40), "crm.satisfaction", b"lead-1", good),
            (Position("t.crm.satisfaction", 2, 41), "crm.satisfaction", b"lead-1", bad),
        ]
    )
    assert used == 1
    assert [e.event_id for e in store.events] == ["csat-1"]
    (dead,) = publisher.messages
    assert (dead.topic, dead.key, dead.value) == ("crm.rejected", b"lead-1", bad)
    assert dict(dead.headers) == {
        "reject-reason": b"score_out_of_range",
        "reject-detail": b"score must be from 1 to 5",
        "source-topic": b"t.crm.satisfaction",
        "source-partition": b"2",
        "source-offset": b"41",
        "rejected-at": NOW.isoformat().encode(),
    }


def test_ingest_reads_crm_satisfaction_on_its_timeline() -> None:
    handler = TimelineHandler(
        store=RecordingTimeline(), publisher=RecordingPublisher(), clock=FixedClock(NOW)
    )
    assert handler.inputs.models["crm.satisfaction"] is SatisfactionRecorded
