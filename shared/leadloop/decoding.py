"""One way for a service to decode its input events, and one policy for a bad one.

A service's inputs come from the topic registry (``topics.inputs_of``). Most inputs
were validated where they entered leadloop (ingest rejects bad leads to
``leads.rejected`` and bad CRM records to ``crm.rejected``) or are written by leadloop's
own services, but the roster (``crm.reps``) may be written by the CRM or HR straight
to Kafka, and a producer can have a bug. A record that does not decode here raises
``Undecodable``: the agent (``leadloop.kafka.batch_agent``) isolates it, parks it on
the service's dead-letter topic with the reason ``undecodable`` and counts it, and the
partition moves on. The log and the dead letter's detail name the topic, the error
count and the fields in error, never a value: the text may hold anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from leadloop.logging import get_logger
from leadloop.topics import Service, inputs_of

__all__ = ["InputDecoder", "Undecodable"]

log = get_logger(__name__)

#: At most this many field locations are named in a detail.
_MAX_FIELDS = 5
#: A location part shown as it is: a schema's field name. Anything else (an unknown
#: key a producer sent, which could be any text) is shown as ``?``.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class Undecodable(Exception):
    """A record that is not one of its topic's events: permanent, so never retried."""

    #: The stable reason code of its dead letter.
    reason = "undecodable"

    def __init__(self, topic: str, errors: int, fields: tuple[str, ...]) -> None:
        self.topic = topic
        self.errors = errors
        self.fields = fields
        named = f" at {', '.join(fields)}" if fields else ""
        super().__init__(f"not a {topic} event: {errors} error(s){named}")


def _fields(exc: ValidationError) -> tuple[str, ...]:
    """The locations in error, as paths of field names (a list index is a number):
    schema names, never values. A JSON syntax error has no location."""
    found: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(
            str(part) if isinstance(part, int) or _NAME.fullmatch(part) else "?"
            for part in error["loc"]
        )
        if path and path not in found:
            found.append(path)
    return tuple(found[:_MAX_FIELDS])


class InputDecoder:
    """Decodes the (registry topic, value) pairs a service consumes."""

    def __init__(self, service: Service, *, exclude: tuple[str, ...] = ()) -> None:
        self.service = service
        self.models = inputs_of(service, exclude=exclude)

    @property
    def topics(self) -> tuple[str, ...]:
        """The registry names of the topics to subscribe to."""
        return tuple(self.models)

    def decode(self, topic: str, value: bytes) -> BaseModel:
        """The event; raises ``Undecodable`` (logged) when ``value`` is not one of
        ``topic``'s events."""
        try:
            return self.models[topic].model_validate_json(value)
        except ValidationError as exc:
            log.warning(
                "undecodable_event",
                service=self.service,
                topic=topic,
                errors=exc.error_count(),
            )
            raise Undecodable(topic, exc.error_count(), _fields(exc)) from None

    def decode_all(self, messages: Iterable[tuple[str, bytes]]) -> list[BaseModel]:
        """The events, in order; raises ``Undecodable`` at the first that does not
        decode, before the caller has done anything with the batch."""
        return [self.decode(topic, value) for topic, value in messages]
