"""One way for a service to decode its input events, and one policy for a bad one.

A service's inputs come from the topic registry (``topics.inputs_of``). Every input of
the downstream services was validated where it entered leadloop (ingest rejects bad
leads to ``leads.rejected`` and bad CRM records to ``crm.rejected``; the other topics
are written by leadloop's own services), so a record that does not decode here is a
producer's bug, not bad luck: it is logged by topic and error count (never a value: the
text may hold anything) and skipped, so it cannot block its partition by failing the
batch on every redelivery.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from leadloop.logging import get_logger
from leadloop.topics import Service, inputs_of

__all__ = ["InputDecoder"]

log = get_logger(__name__)


class InputDecoder:
    """Decodes the (registry topic, value) pairs a service consumes."""

    def __init__(self, service: Service, *, exclude: tuple[str, ...] = ()) -> None:
        self.service = service
        self.models = inputs_of(service, exclude=exclude)

    @property
    def topics(self) -> tuple[str, ...]:
        """The registry names of the topics to subscribe to."""
        return tuple(self.models)

    def decode(self, topic: str, value: bytes) -> BaseModel | None:
        """The event, or None (logged) when ``value`` is not one of ``topic``'s events."""
        try:
            return self.models[topic].model_validate_json(value)
        except ValidationError as exc:
            log.warning(
                "undecodable_event",
                service=self.service,
                topic=topic,
                errors=exc.error_count(),
            )
            return None

    def decode_all(self, messages: Iterable[tuple[str, bytes]]) -> list[BaseModel]:
        """The events that decode, in order; the rest skipped as ``decode`` says."""
        return [e for topic, value in messages if (e := self.decode(topic, value)) is not None]
