"""The topic registry: every topic leadloop reads or writes, in one place.

Topics are created up front from this registry (``leadloop topics create``), never on
the fly by a client. Faust table changelogs take their partition count from their
source topic, so every keyed topic shares ``DEFAULT_PARTITIONS``: a lead's events
land on the same partition number in every topic, which keeps per-lead state local
to one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from leadloop import events

__all__ = [
    "CONSUMING_SERVICES",
    "DEFAULT_PARTITIONS",
    "REGISTRY",
    "Service",
    "TopicSpec",
    "by_name",
    "dead_letter_topic",
    "inputs_of",
    "qualified",
]

DEFAULT_PARTITIONS = 6

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS

Service = Literal[
    "ingest",
    "assignment",
    "sla-monitor",
    "metrics",
    "handoff",
    "notifier",
    "channels",
    "crm",
    "humans",
    "review",
]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    model: type[BaseModel] | None
    producers: tuple[Service, ...]
    consumers: tuple[Service, ...]
    partitions: int = DEFAULT_PARTITIONS
    retention_ms: int = 7 * _DAY_MS
    cleanup_policy: Literal["delete", "compact"] = "delete"
    contains_pii: bool = False
    notes: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Broker-side topic configuration."""
        cfg = {"cleanup.policy": self.cleanup_policy, **self.extra_config}
        if self.cleanup_policy == "delete":
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


REGISTRY: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="leads.raw",
        key="optional",
        model=events.RawLead,
        producers=("channels", "ingest"),
        consumers=("ingest",),
        # Personal data: kept only long enough to recover from an outage.
        retention_ms=3 * _DAY_MS,
        contains_pii=True,
        notes="channels, webhook and CSV import write here",
    ),
    TopicSpec(
        name="leads.rejected",
        key="as input",
        model=None,
        producers=("ingest",),
        consumers=("humans",),
        # Original bytes of rejected records may contain personal data.
        retention_ms=14 * _DAY_MS,
        contains_pii=True,
        notes="original bytes plus reject-* headers; replayed after a fix",
    ),
    TopicSpec(
        name="crm.rejected",
        key="as input",
        model=None,
        producers=("ingest",),
        consumers=("humans",),
        retention_ms=14 * _DAY_MS,
        # Original bytes of rejected CRM events: an activity's outcome is a rep's free
        # text about the person.
        contains_pii=True,
        notes="CRM activities, stage changes and satisfaction scores ingest could not use:"
        " bytes + reject-* headers",
    ),
    TopicSpec(
        name="ingest.outcomes",
        key="source",
        model=events.IngestOutcomeRecorded,
        producers=("ingest",),
        consumers=("metrics",),
        notes="one per leads.raw record: accepted, duplicate or rejected",
    ),
    TopicSpec(
        name="leads.accepted",
        key="lead_id",
        model=events.LeadAccepted,
        producers=("ingest",),
        consumers=("assignment", "sla-monitor", "metrics", "notifier"),
    ),
    TopicSpec(
        name="leads.assigned",
        key="lead_id",
        model=events.LeadAssigned,
        producers=("assignment",),
        consumers=("ingest", "sla-monitor", "metrics", "handoff", "notifier", "crm"),
    ),
    TopicSpec(
        name="crm.activities",
        key="lead_id",
        model=events.ActivityRecorded,
        producers=("crm", "ingest"),
        consumers=("ingest", "sla-monitor", "metrics"),
        # ``outcome`` is free text a rep typed about the person (erase nulls it in
        # lead_activities); on the topic it stays until the retention.
        contains_pii=True,
    ),
    TopicSpec(
        name="crm.stage-changes",
        key="lead_id",
        model=events.StageChanged,
        producers=("crm", "ingest"),
        consumers=("ingest", "sla-monitor", "metrics", "assignment", "notifier"),
    ),
    TopicSpec(
        name="crm.satisfaction",
        key="lead_id",
        model=events.SatisfactionRecorded,
        producers=("crm", "ingest"),
        consumers=("ingest", "metrics"),
        notes="customer satisfaction (客户满意度), a 1-5 score per lead; no comment text",
    ),
    TopicSpec(
        name="crm.reps",
        key="rep_id",
        model=events.RepUpdated,
        producers=("crm", "ingest"),
        consumers=("assignment", "sla-monitor", "handoff", "notifier"),
        partitions=1,
        cleanup_policy="compact",
        notes="compacted roster: the latest entry per rep wins",
    ),
    TopicSpec(
        name="sla.escalations",
        key="lead_id",
        model=events.EscalationRaised,
        producers=("sla-monitor",),
        consumers=("assignment", "metrics", "notifier"),
    ),
    TopicSpec(
        name="review.published",
        key="period",
        model=events.ReviewPublished,
        producers=("review",),
        consumers=("notifier",),
        # A handful of records a month: one partition keeps them in order.
        partitions=1,
        # Long enough for a notifier that was down over a weekend to still announce.
        retention_ms=30 * _DAY_MS,
        notes="one per period the scheduled review wrote (key: 2026-W48, 2026-11):"
        " headline numbers, top suggestions, file names; no personal data",
    ),
)

#: The services whose agents consume through ``leadloop.kafka.batch_agent``: each one
#: parks the records it cannot process on its own ``<service>.dead-letter`` topic.
CONSUMING_SERVICES: tuple[Service, ...] = (
    "ingest",
    "assignment",
    "sla-monitor",
    "metrics",
    "handoff",
    "notifier",
)


def dead_letter_topic(service: str) -> str:
    """The registry name of ``service``'s dead-letter topic."""
    return f"{service}.dead-letter"


REGISTRY += tuple(
    TopicSpec(
        name=dead_letter_topic(service),
        key="as input",
        model=None,
        producers=(service,),
        consumers=("humans",),
        retention_ms=14 * _DAY_MS,
        # ingest's inputs include leads.raw: the original bytes may be personal data.
        contains_pii=service == "ingest",
        notes="records this service could not decode or failed to process:"
        " original bytes + reject-* headers; replayed by leadloop dead-letters replay",
    )
    for service in CONSUMING_SERVICES
)

_BY_NAME = {spec.name: spec for spec in REGISTRY}


def by_name(name: str) -> TopicSpec:
    return _BY_NAME[name]


def qualified(name: str, prefix: str) -> str:
    """The broker-side name: tests and parallel environments prefix every topic."""
    return f"{prefix}{name}"


def inputs_of(service: Service, *, exclude: tuple[str, ...] = ()) -> dict[str, type[BaseModel]]:
    """The topics ``service`` consumes, as the registry says, and each one's event model:
    the one declaration of a service's inputs (its agents subscribe to these keys).
    ``exclude`` leaves out topics the service reads another way (ingest's raw leads)."""
    found: dict[str, type[BaseModel]] = {}
    for spec in REGISTRY:
        if service in spec.consumers and spec.name not in exclude:
            if spec.model is None:
                raise ValueError(f"{spec.name} has no event model to decode")
            found[spec.name] = spec.model
    for name in exclude:
        if service not in by_name(name).consumers:
            raise ValueError(f"{service} does not consume {name}")
    return found
