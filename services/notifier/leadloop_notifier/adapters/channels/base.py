"""The port every delivery channel implements, and the shapes it speaks.

A channel turns one rendered `Message` into one vendor call and reports a `Sent`:
``delivered`` (the vendor accepted it), ``retry`` (a transient condition: rate limit,
timeout, 5xx; ``retry_after_s`` says when, if the vendor said) or ``failed`` (retrying
cannot help: unknown user, revoked credentials, a refused signature). ``code`` is a
short stable token for metrics and the delivery log; it never carries a response body,
a token, a key, a signature, an address or message text, so it is safe to store and
to label with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Channel", "ChannelConfigError", "Message", "Outcome", "Sent"]

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, rendered for every kind of channel."""

    subject: str  # one line (email subject, card title)
    text: str  # plain text (always present)
    markdown: str | None  # for tools that render markdown (WeCom/DingTalk/Feishu/Slack)
    html: str | None  # email HTML part
    # The same for every send of the same message (the notifier's message id, derived
    # from its outbox rows): channels whose vendor deduplicates by a key send it, so a
    # resend after a crash between the vendor's acceptance and the mark is not shown twice.
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one send; see the module docstring for the meaning of each outcome."""

    outcome: Outcome
    code: str
    retry_after_s: float | None = None


class Channel(Protocol):
    """A delivery transport for one configured channel.

    ``per_minute`` is the vendor's documented limit for one destination; the caller
    queues below it (some vendors drop the excess silently instead of refusing it).
    ``send`` never raises for vendor or network trouble: it returns a `Sent`.
    """

    kind: str
    per_minute: int

    async def send(self, address: str, message: Message) -> Sent: ...

    async def aclose(self) -> None: ...


class ChannelConfigError(ValueError):
    """A channel cannot be built from its configuration; names the field, never a value."""


def delivered() -> Sent:
    return Sent("delivered", "ok")


def retry(code: str, after: float | None = None) -> Sent:
    return Sent("retry", code, after)


def failed(code: str) -> Sent:
    return Sent("failed", code)
