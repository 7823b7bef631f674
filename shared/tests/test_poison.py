"""Isolating a poison record: the halves of a failing batch, the attempts on one record,
outages left alone, and a handler that fails on everything stopping the worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from leadloop.decoding import Undecodable
from leadloop.poison import (
    PROCESSING_FAILED,
    Failure,
    Streak,
    SystemicFailure,
    dead_letter_headers,
    describe,
    isolate,
)


class Handler:
    """Fails on the records in ``bad`` (``times`` times each, forever by default) and
    keeps every batch it was called with and every record it completed."""

    def __init__(self, bad: dict[int, Exception], times: int | None = None) -> None:
        self.bad = bad
        self.left = {k: times for k in bad}
        self.calls: list[list[int]] = []
        self.done: list[int] = []

    async def __call__(self, items: Sequence[int]) -> None:
        self.calls.append(list(items))
        for item in items:
            if item in self.bad and self.left[item] != 0:
                left = self.left[item]
                self.left[item] = None if left is None else left - 1
                raise self.bad[item]
        self.done.extend(items)


async def no_sleep(_: float) -> None:
    return None


def not_transient(_: BaseException) -> bool:
    return False


async def run(items: list[int], handler: Handler, attempts: int = 3) -> list[Failure[int]]:
    return await isolate(
        items,
        handler,
        attempts=attempts,
        is_transient=not_transient,
        streak=Streak(),
        sleep=no_sleep,
    )


async def test_a_batch_that_goes_through_is_handled_once() -> None:
    handler = Handler({})
    assert await run([1, 2, 3], handler) == []
    assert handler.calls == [[1, 2, 3]]


async def test_the_failing_record_is_split_out_attempted_n_times_and_given_up() -> None:
    handler = Handler({5: ValueError("boom")})
    failures = await run(list(range(8)), handler)
    assert [(f.item, f.reason, f.detail, f.attempts) for f in failures] == [
        (5, PROCESSING_FAILED, "ValueError", 3)
    ]
    # Every other record was handled, in order, the failing one never.
    assert sorted(set(handler.done)) == [0, 1, 2, 3, 4, 6, 7]
    assert handler.calls[0] == list(range(8))
    assert handler.calls.count([5]) == 3


async def test_a_record_that_recovers_on_a_later_attempt_is_not_given_up() -> None:
    handler = Handler({2: ValueError("once")}, times=2)
    assert await run([1, 2, 3], handler, attempts=3) == []
    assert 2 in handler.done


async def test_an_undecodable_record_is_given_up_at_once() -> None:
    handler = Handler({2: Undecodable("crm.reps", 1, ("team_id",)), 3: RuntimeError()})
    failures = await run([1, 2, 3, 4], handler)
    assert [(f.item, f.reason, f.attempts) for f in failures] == [
        (2, "undecodable", 1),
        (3, PROCESSING_FAILED, 3),
    ]
    assert failures[0].detail == "not a crm.reps event: 1 error(s) at team_id"
    assert handler.calls.count([2]) == 1


async def test_an_outage_propagates_at_once_without_splitting() -> None:
    handler = Handler({2: ConnectionResetError()})
    with pytest.raises(ConnectionResetError):
        await isolate(
            [1, 2, 3],
            handler,
            attempts=3,
            is_transient=lambda exc: isinstance(exc, OSError),
            streak=Streak(),
            sleep=no_sleep,
        )
    assert handler.calls == [[1, 2, 3]]


async def test_a_handler_failing_on_everything_is_the_workers_failure() -> None:
    handler = Handler({i: RuntimeError() for i in range(20)})
    with pytest.raises(SystemicFailure, match="10 records in a row"):
        await run(list(range(20)), handler)


async def test_a_streak_spans_batches_and_a_success_ends_it() -> None:
    streak = Streak(limit=3)
    handler = Handler({1: RuntimeError(), 2: RuntimeError(), 4: RuntimeError()})

    async def batch(items: list[int]) -> list[Failure[int]]:
        return await isolate(
            items, handler, attempts=1, is_transient=not_transient, streak=streak, sleep=no_sleep
        )

    assert len(await batch([1, 2])) == 2  # two poison records alone in a batch: parked
    assert len(await batch([3, 4])) == 1  # 3 went through: the streak starts again
    assert streak.count == 1
    with pytest.raises(SystemicFailure):
        await batch([1, 2])


async def test_the_backoff_doubles_between_attempts() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await isolate(
        [1],
        Handler({1: RuntimeError()}),
        attempts=4,
        is_transient=not_transient,
        streak=Streak(),
        backoff=0.1,
        sleep=sleep,
    )
    assert slept == pytest.approx([0.1, 0.2, 0.4])


class PgError(Exception):
    sqlstate = "23514"
    constraint_name = "leads_score_range"

    def __init__(self) -> None:
        super().__init__("new row violates check constraint, DETAIL: (person@example.com)")


def test_the_detail_of_an_unknown_error_names_its_type_never_its_message() -> None:
    assert describe(PgError()) == (
        PROCESSING_FAILED,
        "PgError sqlstate=23514 constraint_name=leads_score_range",
    )
    assert describe(ValueError("person@example.com")) == (PROCESSING_FAILED, "ValueError")


def test_dead_letter_headers_are_those_of_leads_rejected_plus_attempts_and_service() -> None:
    at = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    headers = dict(
        dead_letter_headers(
            service="metrics",
            topic="crm.stage-changes",
            partition=2,
            offset=41,
            failure=Failure(b"x", PROCESSING_FAILED, "ValueError", 3),
            at=at,
        )
    )
    assert headers == {
        "reject-reason": b"processing_failed",
        "reject-detail": b"ValueError",
        "source-topic": b"crm.stage-changes",
        "source-partition": b"2",
        "source-offset": b"41",
        "rejected-at": b"2026-05-04T03:02:01+00:00",
        "reject-attempts": b"3",
        "reject-service": b"metrics",
    }
