"""The port between handlers and Kafka: messages to publish, and who publishes them.

Handlers build ``OutMessage`` values and hand them to a ``Publisher``; the faust adapter
is one implementation, a recording list in unit tests is another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

__all__ = ["OutMessage", "Publisher", "RecordingPublisher", "event_message"]


@dataclass(frozen=True, slots=True)
class OutMessage:
    #: Logical topic name from the registry (the adapter adds any prefix).
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher(Protocol):
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        """Send all messages; return only once the broker acknowledged every one.

        Raises if a message could not be delivered; the caller then must not treat
        its input as done.
        """
        ...


class RecordingPublisher:
    """Keeps what was published (unit tests)."""

    def __init__(self) -> None:
        self.messages: list[OutMessage] = []

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        self.messages.extend(messages)


def event_message(event: BaseModel, key: str | None) -> OutMessage:
    topic: str = getattr(type(event), "topic")  # noqa: B009 - ClassVar on every event model
    return OutMessage(
        topic=topic,
        key=key.encode() if key is not None else None,
        value=event.model_dump_json(exclude_none=False).encode(),
    )
