"""How a batch agent takes events off its faust stream: everything that arrived while
the previous batch was handled, acknowledged once the agent has moved past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import cast

import faust

__all__ = ["batches"]


async def batches(
    stream: faust.Stream[bytes], max_: int, linger: float
) -> AsyncGenerator[list[faust.EventT[bytes]], None]:
    """The stream's events in batches of at most ``max_``, each acknowledged once the
    caller has moved past it.

    Events keep arriving while a batch is handled: the next batch is everything that
    came in meanwhile, so batches grow with a backlog and a busy worker drains it.
    (faust's ``take_events`` stops taking while a batch is handled and then waits a fixed
    window, so its batches hold what arrives in that window however many records wait;
    a worker that falls behind at its offered rate never catches up.) An idle worker
    lingers up to ``linger`` seconds after a first event so that a burst is decided
    together; a quiet partition never holds a partial batch back longer than that.
    """
    pending: list[faust.EventT[bytes]] = []
    arrived, full, room = asyncio.Event(), asyncio.Event(), asyncio.Event()
    room.set()

    async def take(value: bytes) -> bytes:
        # faust runs this for each event, in order, between the caller's awaits.
        while len(pending) >= max_:
            room.clear()
            if await stream.wait_for_stopped(room.wait()):
                # Never acknowledged, so redelivered after the restart.
                return value
        event = stream.current_event
        if event is None:
            raise RuntimeError("faust handed a value without its event")
        pending.append(event)
        arrived.set()
        if len(pending) >= max_:
            full.set()
        return value

    # Acknowledged by hand below, only after the caller has moved past the batch.
    acks_were = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(take)
    # Private in faust: iterates the stream in the background, through ``take``.
    stream._enable_passive(cast(faust.ChannelT[bytes], aiter(stream.channel)))
    try:
        while not stream.should_stop:
            if not pending:
                # mode reports a timeout as "stopped": ask the stream itself.
                await stream.wait_for_stopped(arrived.wait())
                if not stream.should_stop:
                    await stream.wait_for_stopped(full.wait(), timeout=linger)
                if stream.should_stop:
                    break
            batch = pending[:]
            pending.clear()
            arrived.clear()
            full.clear()
            room.set()
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
    finally:
        stream.enable_acks = acks_were
        stream._processors.remove(take)
