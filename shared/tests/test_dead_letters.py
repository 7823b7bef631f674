"""The dead-letter command's pure parts: reading a parked record's headers, choosing
which to replay, and the replayed record (original key and bytes, marked)."""

from __future__ import annotations

from datetime import UTC, datetime

from leadloop.dead_letters import DeadLetter, parse, replay_message, select
from leadloop.poison import Failure, dead_letter_headers

AT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def letter(offset: int, reason: str, at: datetime = AT) -> DeadLetter:
    headers = dead_letter_headers(
        service="metrics",
        topic="crm.stage-changes",
        partition=3,
        offset=100 + offset,
        failure=Failure(None, reason, "ValueError", 3),
        at=at,
    )
    return parse(0, offset, b"lead-1", b"{...}", headers)


def test_a_parked_record_reads_back_from_its_headers() -> None:
    d = letter(7, "processing_failed")
    assert (d.reason, d.detail, d.attempts, d.source_topic, d.source_partition) == (
        "processing_failed",
        "ValueError",
        3,
        "crm.stage-changes",
        3,
    )
    assert (d.source_offset, d.rejected_at, d.key, d.value) == (107, AT, b"lead-1", b"{...}")
    # A record without headers reads as empty, not as an error.
    bare = parse(0, 1, None, None, [])
    assert (bare.reason, bare.attempts, bare.rejected_at, bare.value) == ("", -1, None, b"")


def test_selection_by_time_reason_and_position() -> None:
    later = datetime(2026, 5, 5, tzinfo=UTC)
    letters = [letter(1, "undecodable"), letter(2, "processing_failed", later)]
    assert select(letters) == letters
    assert select(letters, since=later) == letters[1:]
    assert select(letters, reasons=["undecodable"]) == letters[:1]
    assert select(letters, offsets=[(0, 2)]) == letters[1:]
    assert select(letters, offsets=[(1, 2)]) == []


def test_a_replay_is_the_original_record_marked_with_the_dead_letter() -> None:
    message = replay_message(letter(7, "undecodable"), "metrics")
    assert (message.topic, message.key, message.value) == ("crm.stage-changes", b"lead-1", b"{...}")
    assert message.headers == (("replayed-from", b"metrics.dead-letter:0:7"),)
