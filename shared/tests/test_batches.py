"""How a batch agent takes events off its stream (``leadloop.kafka.batches``), on a real
faust stream over an in-process channel: no broker is needed to see how events are
grouped and when they are acknowledged.

Each event is made to cost a fixed 0.2 ms on its way through the stream, as faust's own
per-event work does in a worker, so the taker's speed shows: a taker that moves events
only while it waits for a batch to fill cannot make batches larger than what that wait
moves, however many events are queued.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import aclosing

import faust
import pytest

from leadloop.batches import batches

EVENT_COST_S = 0.0002


def channel_and_stream(*, cost_s: float = 0.0) -> tuple[faust.ChannelT[bytes], faust.Stream[bytes]]:
    # A broker that is never dialled: the stream reads an in-process channel.
    app = faust.App("batches-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    app.flow_control.resume()
    channel = app.channel(value_type=bytes, maxsize=100_000)
    stream = app.stream(channel)

    def costly(value: bytes) -> bytes:
        until = time.perf_counter() + cost_s
        while time.perf_counter() < until:
            pass
        return value

    if cost_s:
        stream.add_processor(costly)
    return channel, stream  # type: ignore[return-value]


async def test_a_backlog_is_taken_in_batches_as_large_as_the_work_in_between_allows() -> None:
    channel, stream = channel_and_stream(cost_s=EVENT_COST_S)
    await stream.maybe_start()
    for n in range(3_000):
        await channel.send(value=b"%d" % n)
    sizes: list[int] = []
    seen: list[bytes] = []
    async for batch in batches(stream, 500, 0.01):
        sizes.append(len(batch))
        seen.extend(e.value for e in batch)
        await asyncio.sleep(0.1)  # the handler's I/O: the stream keeps moving meanwhile
        if len(seen) == 3_000:
            break
    assert seen == [b"%d" % n for n in range(3_000)]
    assert max(sizes) <= 500
    # The linger alone moves at most 0.01 / 0.0002 = 50 events; a handler's 100 ms of
    # I/O moves up to 500 (the cap).
    assert statistics.median(sizes[1:]) >= 100, sizes


async def test_an_idle_stream_lingers_for_a_burst_then_hands_it_over_at_once() -> None:
    channel, stream = channel_and_stream()
    await stream.maybe_start()
    taken: list[tuple[float, list[bytes]]] = []

    async def take() -> None:
        async for batch in batches(stream, 500, 0.2):
            taken.append((time.monotonic(), [e.value for e in batch]))
            if len(taken) == 2:
                return

    taker = asyncio.ensure_future(take())
    await asyncio.sleep(0.05)
    assert not taken  # nothing arrived: nothing is handed over
    first_sent = time.monotonic()
    for value in (b"a", b"b", b"c"):
        await channel.send(value=value)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    await channel.send(value=b"d")
    await asyncio.wait_for(taker, 5)
    (at, burst), (_, alone) = taken
    assert burst == [b"a", b"b", b"c"]
    # Held for the linger after the first event, not longer.
    assert 0.2 <= at - first_sent < 0.45, at - first_sent
    assert alone == [b"d"]


async def test_events_are_acknowledged_only_once_the_caller_moved_past_their_batch() -> None:
    channel, stream = channel_and_stream()
    await stream.maybe_start()
    for n in range(1_200):
        await channel.send(value=b"%d" % n)
    handed: list[faust.EventT[bytes]] = []
    async with aclosing(batches(stream, 500, 0.01)) as taken:
        async for batch in taken:
            assert len(batch) <= 500
            assert not any(e.message.acked for e in batch)
            assert all(e.message.acked for e in handed)
            handed.extend(batch)
            if len(handed) == 1_200:
                break
    # Closing the batches acknowledges the last one, as the agent leaving it does.
    assert all(e.message.acked for e in handed)


@pytest.mark.parametrize("linger", [0.01, 1.0])
async def test_a_stopping_stream_ends_the_batches_without_acknowledging_what_waits(
    linger: float,
) -> None:
    channel, stream = channel_and_stream()
    await stream.maybe_start()
    await channel.send(value=b"only")

    async def take() -> list[list[bytes]]:
        return [[e.value for e in batch] async for batch in batches(stream, 500, linger)]

    taker = asyncio.ensure_future(take())
    await asyncio.sleep(0.005)
    await stream.stop()
    handed = await asyncio.wait_for(taker, 5)
    assert handed in ([], [[b"only"]])
