"""Coalescing, rate limits by scheduling, backoff and fallback order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop_notifier.domain.model import Notice
from leadloop_notifier.domain.sending import (
    MAX_ITEMS,
    Row,
    backoff_seconds,
    destination,
    fallback_for,
    message_id,
    plan,
)

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
KINDS = {"wecom_app": "wecom_app", "robot": "wecom_robot", "email": "email"}
PER_MINUTE = {"wecom_app": 30, "robot": 20, "email": 60}


def row(
    n: int,
    *,
    recipient: str = "rep-a",
    channel: str = "wecom_app",
    due: datetime = T0,
    coalesce: float = 60,
    fallbacks: tuple[str, ...] = (),
    not_before: datetime | None = None,
) -> Row:
    return Row(
        notice=Notice(
            notice_key=f"n{n}",
            recipient=recipient,
            channel=channel,
            kind="remind_owner",
            team_id="team-cn",
            lead_id=f"L{n}",
            payload={"kind": "remind_owner", "lead_id": f"L{n}"},
            fallbacks=fallbacks,
            origin_at=due,
            due_at=due,
            coalesce_s=coalesce,
        ),
        attempts=0,
        not_before=not_before,
        seq=n,
    )


def go(rows: list[Row], now: datetime, free: dict[str, datetime] | None = None):  # type: ignore[no-untyped-def]
    return plan(rows, now, kinds=KINDS, per_minute=PER_MINUTE, next_free=free or {})


def test_twenty_reminders_in_a_minute_are_one_message() -> None:
    rows = [row(i, due=T0 + timedelta(seconds=3 * i)) for i in range(20)]
    # Before the first has waited its window: nothing goes.
    batches, _ = go(rows, T0 + timedelta(seconds=59))
    assert batches == []
    batches, _ = go(rows, T0 + timedelta(seconds=60))
    [batch] = batches
    assert [r.notice.notice_key for r in batch.rows] == [f"n{i}" for i in range(20)]
    assert batch.message_id == message_id(batch.rows)


def test_rows_not_due_yet_wait_for_the_next_message() -> None:
    rows = [row(1), row(2, due=T0 + timedelta(hours=8))]
    [batch], _ = go(rows, T0 + timedelta(minutes=1))
    assert [r.notice.notice_key for r in batch.rows] == ["n1"]


def test_one_message_per_recipient_and_channel() -> None:
    rows = [row(1), row(2, recipient="rep-b"), row(3, channel="email"), row(4)]
    batches, _ = go(rows, T0 + timedelta(minutes=1))
    assert sorted((b.recipient, b.channel, len(b.rows)) for b in batches) == [
        ("rep-a", "email", 1),
        ("rep-a", "wecom_app", 2),
        ("rep-b", "wecom_app", 1),
    ]


def test_a_page_is_not_held_back() -> None:
    [batch], _ = go([row(1, coalesce=0)], T0)
    assert len(batch.rows) == 1


def test_rate_limit_schedules_instead_of_dropping() -> None:
    # A robot takes 20 messages a minute: one per 3 s, whoever the notice is for.
    now = T0 + timedelta(minutes=1)
    rows = [row(i, recipient=f"team:{i}", channel="robot") for i in range(3)]
    batches, free = go(rows, now)
    assert len(batches) == 1
    assert free["robot"] == now + timedelta(seconds=3)
    later, _ = go(rows[1:], now + timedelta(seconds=3), free)
    assert len(later) == 1
    # A person's app messages are limited per person, not per app.
    people = [row(i, recipient=f"rep-{i}") for i in range(3)]
    assert len(go(people, now)[0]) == 3


def test_a_large_backlog_is_split_into_messages_of_at_most_max_items() -> None:
    rows = [row(i, channel="email") for i in range(MAX_ITEMS + 5)]
    now = T0 + timedelta(minutes=1)
    batches, free = go(rows, now)
    assert [len(b.rows) for b in batches] == [MAX_ITEMS]  # the next waits for its slot
    batches, _ = go(rows[MAX_ITEMS:], now + timedelta(seconds=1), free)
    assert [len(b.rows) for b in batches] == [5]


def test_a_batch_is_cut_to_what_the_channel_takes_in_one_message() -> None:
    # WeCom text takes 2048 bytes: 20 lines of 150 bytes need two messages, never one
    # that the transport would have to truncate.
    rows = [row(i, recipient="team:x", channel="robot") for i in range(20)]
    now = T0 + timedelta(minutes=1)
    budgets = {"robot": 2048}
    batches, free = plan(
        rows,
        now,
        kinds=KINDS,
        per_minute=PER_MINUTE,
        next_free={},
        budgets=budgets,
        item_bytes=lambda r: 150,
    )
    [first] = batches
    assert len(first.rows) == (2048 - 160) // 150
    rest, _ = plan(
        rows[len(first.rows) :],
        free["robot"],
        kinds=KINDS,
        per_minute=PER_MINUTE,
        next_free=free,
        budgets=budgets,
        item_bytes=lambda r: 150,
    )
    assert [len(b.rows) for b in rest] == [20 - len(first.rows)]
    # A single line over the budget still goes, alone.
    [alone], _ = plan(
        rows[:2],
        now,
        kinds=KINDS,
        per_minute=PER_MINUTE,
        next_free={},
        budgets=budgets,
        item_bytes=lambda r: 5000,
    )
    assert len(alone.rows) == 1


def test_a_retry_waits_for_its_not_before() -> None:
    r = row(1, not_before=T0 + timedelta(minutes=5))
    assert go([r], T0 + timedelta(minutes=4))[0] == []
    # ... and then for its coalescing window counted from it.
    assert go([r], T0 + timedelta(minutes=6))[0] != []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.sampled_from(["wecom_app", "robot", "email"]), st.integers(0, 600)
        ),
        max_size=80,
    ),
    st.integers(0, 900),
)
def test_plan_sends_each_ready_row_at_most_once_and_never_early(
    specs: list[tuple[int, str, int]], at: int
) -> None:
    rows = [
        row(i, recipient=f"rep-{r}", channel=c, due=T0 + timedelta(seconds=s))
        for i, (r, c, s) in enumerate(specs)
    ]
    now = T0 + timedelta(seconds=at)
    batches, free = go(rows, now)
    sent = [r.notice.key for b in batches for r in b.rows]
    assert len(sent) == len(set(sent))
    for b in batches:
        assert len(b.rows) <= MAX_ITEMS
        assert all(r.ready_at <= now for r in b.rows)
        assert {(r.notice.recipient, r.notice.channel) for r in b.rows} == {
            (b.recipient, b.channel)
        }
        assert min(r.ready_at for r in b.rows) + timedelta(seconds=60) <= now
    # At most one message per destination per pass.
    dests = [destination(KINDS[b.channel], b.channel, b.recipient) for b in batches]
    assert len(dests) == len(set(dests))
    assert all(t > now for d, t in free.items() if d in dests)


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    assert backoff_seconds(1, None, 0.0) == 1.0
    assert backoff_seconds(1, None, 0.999) < 2.0
    assert backoff_seconds(4, None, 0.5) == 12.0
    assert backoff_seconds(30, None, 1.0) <= 900
    assert backoff_seconds(1, 60.0, 0.5) == 60.0


def test_fallback_takes_the_next_channel_once() -> None:
    r = row(1, channel="dingtalk", fallbacks=("email",))
    now = T0 + timedelta(hours=1)
    fb = fallback_for(r, now)
    assert fb is not None
    assert (fb.notice_key, fb.recipient, fb.channel, fb.fallbacks) == ("n1", "rep-a", "email", ())
    assert fb.due_at == now
    assert fb.payload["fallback_from"] == "dingtalk"
    last = Row(fb, attempts=0, not_before=None, seq=2)
    assert fallback_for(last, now) is None


def test_rows_sent_before_go_out_again_as_the_same_message() -> None:
    """After a crash (or a retry) the rows of a message are regrouped as they were, with
    the same message id, even when new rows for the same person are due by then: the
    vendor sees the same idempotency key and the same text."""
    first = [row(i, due=T0 + timedelta(seconds=i)) for i in range(3)]
    [batch], _ = go(first, T0 + timedelta(minutes=2))
    sent_before = [replace(r, message_id=batch.message_id) for r in batch.rows]
    newer = [row(10 + i, due=T0 - timedelta(seconds=30 - i)) for i in range(2)]
    batches, _ = go(newer + sent_before, T0 + timedelta(minutes=10))
    assert batches[0].rows == tuple(sent_before)
    assert batches[0].message_id == batch.message_id
    later, _ = go(newer, T0 + timedelta(minutes=12))
    assert later[0].message_id != batch.message_id
