"""An independent checker: what the topics and PostgreSQL say happened, held against
what must hold.

Fault tests end here instead of with ad-hoc asserts. The checker reads topics from the
beginning (every partition, up to the end offsets taken when reading starts) and
PostgreSQL at the end, and decodes both with plain JSON and SQL rather than the
services' models, so a bug shared by a service and its models cannot hide itself.

Reading (``read_*``, ``check_assignment``) is kept apart from comparing
(``compare_assignment``, a pure function), so the comparison is unit tested on
hand-made inputs.

What it relies on is the contract only: ``leads.accepted`` (``lead_id``),
``leads.assigned`` (``assignment_id``, ``lead_id``, ``kind``, ``owner_id``,
``team_id``) and the ``assignments`` table (``lead_id``, ``kind``, ``owner_id``,
``team_id``).

Beyond assignment (``check_pipeline``): ingest conservation — every ``leads.raw``
record has exactly one outcome (accepted, duplicate, rejected) in ``ingest_outcomes``
and on ``ingest.outcomes``, every reject is on ``leads.rejected`` with its reason, every
stored lead on ``leads.accepted`` with its one event id (``compare_ingest``); every SLA
ladder step once per ``escalation_id`` and status on ``sla.escalations`` as in
``escalations``, each id derived here from the step's inputs (lead, policy, the clock
cycle an assignment or touch on the topics started, level) and the step's owner and team
those of the assignment that started its cycle (``compare_escalations``); every decision
routed by the rules, to a rep active in the team on the roster in force, and rotation
fair within the strategy's bound (``roster_truth.compare_routing``); and the counters
of :data:`COUNTERS` on ``/metrics`` equal to the truth recomputed from the topics, the
breach counter's kind and team taken from the policy and the assignment rather than the
step (``expected_counters``, ``breach_labels``, ``compare_counters``).

No check restates what the schema already forbids (two first decisions for a lead, two
outcome rows for one record, two rows for one ladder step: unique indexes and primary
keys): each compares what PostgreSQL holds with what the topics carry, or with what the
inputs say it must be. Every topic is read to its end offsets, and the number of
records read is held to what the offsets say the topic holds (``read_topic``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from tests.support.roster_truth import (
    Decision,
    RepEntry,
    Routing,
    RoutingReport,
    compare_routing,
    decision_of,
    leads_of,
    rep_entry_of,
)

from leadloop.settings import KafkaSettings
from leadloop.topics import by_name, qualified

__all__ = [
    "COUNTERS",
    "FIRST_DECISIONS",
    "WARNING_KIND",
    "Assigned",
    "AssignmentReport",
    "EscalationReport",
    "IngestReport",
    "Labels",
    "Outcome",
    "PipelineReport",
    "Published",
    "Rejected",
    "SeriesKey",
    "Step",
    "Stored",
    "TeamFairness",
    "breach_labels",
    "check_assignment",
    "check_pipeline",
    "compare_assignment",
    "compare_counters",
    "compare_escalations",
    "compare_ingest",
    "derived_id",
    "escalation_ids",
    "expected_counters",
    "expected_records",
    "parse_exposition",
    "read_accepted_leads",
    "read_published_assignments",
    "read_stored_assignments",
    "read_topic",
]

#: Kinds that are a lead's first decision: exactly one per accepted lead.
FIRST_DECISIONS = frozenset({"initial", "pooled"})

#: How many ids of each problem a summary shows.
_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Stored:
    """One row of the ``assignments`` table."""

    lead_id: str
    kind: str
    owner_id: str | None
    team_id: str
    #: Compared with the published decision's when given (the table's primary key).
    assignment_id: str = ""


@dataclass(frozen=True, slots=True)
class Published:
    """One record of ``leads.assigned`` (redeliveries appear once each)."""

    assignment_id: str
    lead_id: str
    kind: str
    owner_id: str | None
    team_id: str


@dataclass(frozen=True, slots=True)
class TeamFairness:
    """Initial assignments per rep of one round-robin team (reps with none count 0)."""

    team_id: str
    counts: Mapping[str, int]

    @property
    def spread(self) -> int:
        """Most minus fewest leads of any rep: at most 1 for a fair rotation."""
        return max(self.counts.values()) - min(self.counts.values()) if self.counts else 0


@dataclass(frozen=True, slots=True)
class AssignmentReport:
    accepted: int
    #: First decisions stored in PostgreSQL.
    stored: int
    #: ``leads.assigned`` records read, redeliveries included.
    published: int
    #: Accepted, but without a first decision in PostgreSQL. (Two first decisions in
    #: PostgreSQL cannot happen: the unique index ``assignments_one_initial`` forbids
    #: them, so a second decision shows as ``conflicting`` or ``disagreeing``.)
    lost: tuple[str, ...]
    #: ``leads.assigned`` carries two different first decisions (assignment id, owner,
    #: team or kind) for the lead; identical redeliveries are fine.
    conflicting: tuple[str, ...]
    #: A first decision on ``leads.assigned`` that is not the one in PostgreSQL (kind,
    #: owner, team, or assignment id when the stored rows carry it).
    disagreeing: tuple[str, ...]
    #: Decided in PostgreSQL but never published.
    unpublished: tuple[str, ...]
    #: Rows or events for leads that were never accepted.
    unknown: tuple[str, ...]
    #: Stored to a team or owner other than the roster and routing allow.
    misrouted: tuple[str, ...]
    #: Round-robin teams only (those in the roster given).
    fairness: Mapping[str, TeamFairness]

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        """Every non-empty problem list, by name."""
        lists = {
            "lost": self.lost,
            "conflicting": self.conflicting,
            "disagreeing": self.disagreeing,
            "unpublished": self.unpublished,
            "unknown": self.unknown,
            "misrouted": self.misrouted,
        }
        return {name: ids for name, ids in lists.items() if ids}

    @property
    def max_spread(self) -> int:
        return max((t.spread for t in self.fairness.values()), default=0)

    def summary(self) -> str:
        lines = [
            f"accepted={self.accepted} stored={self.stored} published={self.published} "
            f"max_rotation_spread={self.max_spread}"
        ]
        for name, ids in self.problems.items():
            lines.append(f"  {name}: {len(ids)} e.g. {list(ids[:_SHOWN])}")
        for team in self.fairness.values():
            if team.spread > 1:
                lines.append(f"  unfair {team.team_id}: {dict(sorted(team.counts.items()))}")
        return "\n".join(lines)


def compare_assignment(
    accepted: Iterable[str],
    stored: Iterable[Stored],
    published: Iterable[Published],
    *,
    roster: Mapping[str, Collection[str]] | None = None,
    expected_team: Mapping[str, str] | None = None,
) -> AssignmentReport:
    """Hold what was stored and published against what was accepted.

    ``roster``: the reps of each round-robin team that stayed eligible all run long;
    rotation fairness is computed for those teams, and a stored owner outside its
    team's roster is misrouted. ``expected_team``: lead id → the team the rules route
    it to; a first decision for another team is misrouted.
    """
    accepted_ids = set(accepted)
    first_stored: dict[str, list[Stored]] = defaultdict(list)
    stored_leads: set[str] = set()
    for row in stored:
        stored_leads.add(row.lead_id)
        if row.kind in FIRST_DECISIONS:
            first_stored[row.lead_id].append(row)
    first_published: dict[str, set[Published]] = defaultdict(set)
    published_leads: set[str] = set()
    n_published = 0
    for event in published:
        n_published += 1
        published_leads.add(event.lead_id)
        if event.kind in FIRST_DECISIONS:
            first_published[event.lead_id].add(event)

    disagreeing = []
    for lead, events in first_published.items():
        rows = first_stored.get(lead)
        if rows and any(
            _decision(e) != _decision(rows[0])
            or (rows[0].assignment_id and e.assignment_id != rows[0].assignment_id)
            for e in events
        ):
            disagreeing.append(lead)

    misrouted = set()
    for lead, rows in first_stored.items():
        for row in rows:
            wrong_team = expected_team is not None and row.team_id != expected_team.get(
                lead, row.team_id
            )
            outside = (
                roster is not None
                and row.owner_id is not None
                and row.owner_id not in roster.get(row.team_id, ())
            )
            if wrong_team or outside:
                misrouted.add(lead)

    fairness: dict[str, TeamFairness] = {}
    if roster is not None:
        counts = {team: Counter(dict.fromkeys(reps, 0)) for team, reps in roster.items()}
        for rows in first_stored.values():
            for row in rows:
                if row.kind == "initial" and row.team_id in counts and row.owner_id:
                    counts[row.team_id][row.owner_id] += 1
        fairness = {team: TeamFairness(team, dict(c)) for team, c in counts.items()}

    return AssignmentReport(
        accepted=len(accepted_ids),
        stored=sum(len(rows) for rows in first_stored.values()),
        published=n_published,
        lost=_sorted(accepted_ids - set(first_stored)),
        conflicting=_sorted(
            lead
            for lead, events in first_published.items()
            if len({(e.assignment_id, *_decision(e)) for e in events}) > 1
        ),
        disagreeing=_sorted(disagreeing),
        unpublished=_sorted(set(first_stored) - set(first_published)),
        unknown=_sorted((stored_leads | published_leads) - accepted_ids),
        misrouted=_sorted(misrouted),
        fairness=fairness,
    )


def _decision(d: Stored | Published) -> tuple[str, str | None, str]:
    return (d.kind, d.owner_id, d.team_id)


def _sorted(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids))


# --- reading ------------------------------------------------------------------------


async def read_topic(
    kafka: KafkaSettings, topic: str, *, within: float = 180
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` (unprefixed name), all partitions, from the beginning
    to the end offsets as they were when reading started. No consumer group; the
    connection is the settings' own (PLAINTEXT or SASL_SSL, ``client_kwargs``).

    Raises ``AssertionError`` when fewer records were read than the offsets say the
    topic holds (``end - beginning`` per partition): a scan that reads less than its
    topic must not pass as if the records it missed were clean."""
    name = qualified(topic, kafka.topic_prefix)
    # No group: subscribing assigns every partition of the topic to this consumer.
    consumer = AIOKafkaConsumer(
        name,
        **kafka.client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: no partitions found within {within}s")
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        got: list[ConsumerRecord[bytes, bytes]] = []
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: not read to its end within {within}s")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                got.extend(r for r in records if r.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        expected = expected_records(starts, ends)
        # A compacted topic may hold fewer records than its offsets span.
        short = len(got) < expected and _cleanup_policy(topic) == "delete"
        if short or len(got) > expected:
            raise AssertionError(f"{name}: read {len(got)} records, its offsets hold {expected}")
        return got
    finally:
        await consumer.stop()


def _cleanup_policy(topic: str) -> str:
    try:
        return by_name(topic).cleanup_policy
    except KeyError:
        return "compact"  # not in the registry (a test's own topic): no exact count


def expected_records(starts: Mapping[Any, int], ends: Mapping[Any, int]) -> int:
    """Records a full read must return: ``end - beginning`` summed over the partitions.

    Exact on leadloop's topics, which are never transactional (no commit markers take
    an offset) and never compacted below their end while the checker reads."""
    return sum(max(ends[tp] - starts.get(tp, 0), 0) for tp in ends)


async def read_accepted_leads(kafka: KafkaSettings) -> list[str]:
    """Lead ids on ``leads.accepted``, once per record."""
    return [json.loads(r.value)["lead_id"] for r in await read_topic(kafka, "leads.accepted")]


async def read_published_assignments(kafka: KafkaSettings) -> list[Published]:
    out = []
    for r in await read_topic(kafka, "leads.assigned"):
        body = json.loads(r.value)
        out.append(
            Published(
                assignment_id=body["assignment_id"],
                lead_id=body["lead_id"],
                kind=body["kind"],
                owner_id=body.get("owner_id"),
                team_id=body["team_id"],
            )
        )
    return out


async def read_stored_assignments(database_url: str) -> list[Stored]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT assignment_id, lead_id, kind, owner_id, team_id FROM assignments"
        )
    finally:
        await conn.close()
    return [
        Stored(r["lead_id"], r["kind"], r["owner_id"], r["team_id"], r["assignment_id"])
        for r in rows
    ]


async def check_assignment(
    kafka: KafkaSettings,
    database_url: str,
    *,
    roster: Mapping[str, Collection[str]] | None = None,
    expected_team: Mapping[str, str] | None = None,
) -> AssignmentReport:
    """Read ``leads.accepted``, ``leads.assigned`` and ``assignments``; compare them.

    Call it once the workers have stopped (or settled), so that the topics' end offsets
    include everything the stored decisions led to.
    """
    accepted, published, stored = await asyncio.gather(
        read_accepted_leads(kafka),
        read_published_assignments(kafka),
        read_stored_assignments(database_url),
    )
    return compare_assignment(
        accepted, stored, published, roster=roster, expected_team=expected_team
    )


# --- the whole pipeline: ingest conservation, SLA steps, counters ----------------------
#
# Like the assignment comparison above: plain JSON and SQL in, pure comparisons, unit
# tested on hand-made inputs (tests/faults/test_pipeline_faults.py).

#: A position on ``leads.raw``: (partition, offset).
RawPosition = tuple[int, int]
#: A Prometheus series: (sample name, sorted (label, value) pairs).
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

#: The counters of the contract (DESIGN.md) that the metrics service serves today and
#: that follow from single events alone, so the truth is recomputed from the topics
#: without modelling any lead's state: conservation, assignment decisions, SLA steps.
COUNTERS = (
    "leadloop_leads_received_total",
    "leadloop_leads_accepted_total",
    "leadloop_leads_duplicate_total",
    "leadloop_leads_rejected_total",
    "leadloop_leads_assigned_total",
    "leadloop_sla_breaches_total",
)
#: Label values the contract allows outside the configured lists (DESIGN.md: a source
#: not in the configured list is reported as ``other``; teams the same).
OTHER = "other"
#: Escalation levels above this are reported as this level by the metrics service.
MAX_LEVEL = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    """One ``ingest.outcomes`` event or one ``ingest_outcomes`` row."""

    partition: int
    offset: int
    event_id: str
    source: str
    outcome: str
    reason: str | None = None
    lead_id: str | None = None

    @property
    def position(self) -> RawPosition:
        return (self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One ``leads.rejected`` record: where it came from and why (headers)."""

    partition: int
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class IngestReport:
    raw: int
    #: Per source, from PostgreSQL: received, accepted, duplicate, rejected.
    per_source: Mapping[str, Mapping[str, int]]
    #: Raw records with no outcome, neither in PostgreSQL nor on ``ingest.outcomes``.
    never_seen: tuple[str, ...]
    #: Raw records with an outcome on the topic but none in PostgreSQL.
    unrecorded: tuple[str, ...]
    #: Raw records with two or more different outcome events on ``ingest.outcomes``
    #: (two rows for one record cannot be: ``ingest_outcomes``' primary key is the
    #: record's position).
    duplicated: tuple[str, ...]
    #: An outcome event that is not the stored outcome (id, kind, source or lead).
    disagreeing: tuple[str, ...]
    #: Stored outcomes missing from ``ingest.outcomes``, rejects missing from
    #: ``leads.rejected``, stored leads missing from ``leads.accepted``.
    unpublished: tuple[str, ...]
    #: Outcomes for positions not on ``leads.raw``; leads on ``leads.accepted`` that
    #: are not stored; ``leads.rejected`` records for a position not stored as rejected
    #: with that reason.
    unknown: tuple[str, ...]
    #: A lead published with another event id than the stored one, or with two.
    conflicting: tuple[str, ...]
    #: Accepted outcomes without their lead row, or lead rows without an outcome.
    unbalanced: tuple[str, ...]
    #: Event ids of ``ingest.outcomes`` published with two different outcomes or lead
    #: ids: two workers that said different things about one raw record.
    contradicting: tuple[str, ...] = ()

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        lists = {
            "never_seen": self.never_seen,
            "unrecorded": self.unrecorded,
            "duplicated": self.duplicated,
            "disagreeing": self.disagreeing,
            "unpublished": self.unpublished,
            "unknown": self.unknown,
            "conflicting": self.conflicting,
            "unbalanced": self.unbalanced,
            "contradicting": self.contradicting,
        }
        return {name: ids for name, ids in lists.items() if ids}


def _pos(p: RawPosition) -> str:
    return f"{p[0]}:{p[1]}"


def compare_ingest(
    raw: Iterable[RawPosition],
    stored: Iterable[Outcome],
    published: Iterable[Outcome],
    rejected: Iterable[Rejected],
    stored_leads: Mapping[str, str],
    accepted: Iterable[tuple[str, str]],
) -> IngestReport:
    """Conservation of ``leads.raw``: each record ends as exactly one of accepted,
    duplicate or rejected, stored once and published as stored.

    ``stored_leads``: lead id → accepted event id (the ``leads`` table);
    ``accepted``: (lead id, event id) of every ``leads.accepted`` record.
    """
    raw_set = set(raw)
    by_pos: dict[RawPosition, list[Outcome]] = defaultdict(list)
    for row in stored:
        by_pos[row.position].append(row)
    events: dict[RawPosition, set[Outcome]] = defaultdict(set)
    said: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for event in published:
        events[event.position].add(event)
        said[event.event_id].add((event.outcome, event.lead_id))

    never_seen = raw_set - set(by_pos) - set(events)
    unrecorded = (raw_set & set(events)) - set(by_pos)
    duplicated = {p for p, evs in events.items() if len(evs) > 1}
    disagreeing = {
        p for p, evs in events.items() if p in by_pos and any(e != by_pos[p][0] for e in evs)
    }
    unpublished = {_pos(p) for p in set(by_pos) - set(events)}
    unknown = {_pos(p) for p in (set(by_pos) | set(events)) - raw_set}

    rejects: dict[RawPosition, set[str]] = defaultdict(set)
    for r in rejected:
        rejects[(r.partition, r.offset)].add(r.reason)
    for p, rows in by_pos.items():
        if rows[0].outcome == "rejected" and p not in rejects:
            unpublished.add(f"rejected {_pos(p)}")
    for p, reasons in rejects.items():
        rows = by_pos.get(p, [])
        if not rows or rows[0].outcome != "rejected" or reasons != {rows[0].reason}:
            unknown.add(f"rejected {_pos(p)}")

    published_ids: dict[str, set[str]] = defaultdict(set)
    for lead, event_id in accepted:
        published_ids[lead].add(event_id)
    unpublished |= {f"lead {lead}" for lead in set(stored_leads) - set(published_ids)}
    unknown |= {f"lead {lead}" for lead in set(published_ids) - set(stored_leads)}
    conflicting = {
        lead
        for lead, ids in published_ids.items()
        if lead in stored_leads and ids != {stored_leads[lead]}
    }
    accepted_outcomes = {
        rows[0].lead_id for rows in by_pos.values() if rows[0].outcome == "accepted"
    }
    unbalanced = {f"lead {lead}" for lead in accepted_outcomes.symmetric_difference(stored_leads)}

    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    for rows in by_pos.values():
        per_source[rows[0].source]["received"] += 1
        per_source[rows[0].source][rows[0].outcome] += 1
    return IngestReport(
        raw=len(raw_set),
        per_source={s: dict(c) for s, c in sorted(per_source.items())},
        never_seen=_sorted(map(_pos, never_seen)),
        unrecorded=_sorted(map(_pos, unrecorded)),
        duplicated=_sorted(map(_pos, duplicated)),
        disagreeing=_sorted(map(_pos, disagreeing)),
        unpublished=_sorted(unpublished),
        unknown=_sorted(unknown),
        conflicting=_sorted(str(lead) for lead in conflicting),
        unbalanced=_sorted(str(lead) for lead in unbalanced),
        contradicting=_sorted(event_id for event_id, what in said.items() if len(what) > 1),
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One ``sla.escalations`` event or ``escalations`` row (the fields that identify
    a ladder step and what it says)."""

    escalation_id: str
    status: str
    event_id: str
    lead_id: str
    level: int
    action: str
    policy_id: str = ""
    kind: str = ""
    owner_id: str | None = None
    team_id: str = ""


#: What started a clock cycle, as the inputs say: an assignment (its owner and team) or
#: a touch (an activity or stage change: None, the owner is the lead's at that time).
Cycle = tuple[str | None, str] | None

#: The namespace of leadloop's deterministic ids (uuid5 over the parts joined by U+001F):
#: the contract's, written out here so that the checker derives the ids itself.
ID_NAMESPACE = uuid.UUID("6f1d3c1e-5b1a-4a57-9d62-6c9a3f0e1a10")
#: The escalation kind whose id carries a suffix of its own (a reclaim warning).
WARNING_KIND = "reclaim_warning"


def derived_id(*parts: str | int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def escalation_ids(step: Step, cycles: Mapping[str, Cycle]) -> dict[str, str]:
    """The ids ``step`` may carry, from its inputs: escalation id → the cycle it names.
    One per clock cycle of the lead (an assignment or a touch on the topics), each for
    the step's policy and level: deterministic, so a redelivery is recognisable and a
    second firing of one step cannot slip past the primary key with a new id."""
    warning = ("reclaim_warning",) if step.kind == WARNING_KIND else ()
    return {
        derived_id("escalation", step.lead_id, step.policy_id, cycle, step.level, *warning): cycle
        for cycle in cycles
    }


@dataclass(frozen=True, slots=True)
class EscalationReport:
    stored: int
    published: int
    #: (escalation id, status) published as two or more different events: a ladder
    #: step emitted twice. Identical redeliveries are fine. (Two rows cannot be: the
    #: primary key of ``escalations`` is the escalation id and status.)
    duplicated: tuple[str, ...]
    #: Published, but not what PostgreSQL holds for that step.
    disagreeing: tuple[str, ...]
    #: Stored but never published.
    unpublished: tuple[str, ...]
    #: Published but not stored, or for a lead that was never accepted.
    unknown: tuple[str, ...]
    #: An escalation id that no clock cycle of the lead on the topics gives for its
    #: policy and level, or an event id not derived from the escalation id and status.
    misidentified: tuple[str, ...] = ()
    #: A step of a cycle an assignment started, for another owner or team than that
    #: assignment's.
    misattributed: tuple[str, ...] = ()

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        lists = {
            "duplicated": self.duplicated,
            "disagreeing": self.disagreeing,
            "unpublished": self.unpublished,
            "unknown": self.unknown,
            "misidentified": self.misidentified,
            "misattributed": self.misattributed,
        }
        return {name: ids for name, ids in lists.items() if ids}


def compare_escalations(
    stored: Iterable[Step],
    published: Iterable[Step],
    accepted: Collection[str] | None = None,
    cycles: Mapping[str, Mapping[str, Cycle]] | None = None,
) -> EscalationReport:
    """Each ladder step (escalation id and status) once on ``sla.escalations``, as
    PostgreSQL holds it; with ``cycles`` (lead id → its clock cycles from the topics:
    assignment ids with their owner and team, touch event ids), each published id
    derived from the step's inputs rather than taken on trust."""
    rows: dict[tuple[str, str], Step] = {}
    n_stored = 0
    for row in stored:
        n_stored += 1
        rows[(row.escalation_id, row.status)] = row
    events: dict[tuple[str, str], set[Step]] = defaultdict(set)
    n_published = 0
    for event in published:
        n_published += 1
        events[(event.escalation_id, event.status)].add(event)

    def name(k: tuple[str, str]) -> str:
        return f"{k[0]}/{k[1]}"

    unknown = {name(k) for k in set(events) - set(rows)}
    if accepted is not None:
        unknown |= {
            name(k) for k, evs in events.items() if any(e.lead_id not in accepted for e in evs)
        }
    misidentified: set[str] = set()
    misattributed: set[str] = set()
    if cycles is not None:
        for k, evs in events.items():
            for e in evs:
                lead_cycles = cycles.get(e.lead_id, {})
                cycle = escalation_ids(e, lead_cycles).get(e.escalation_id)
                if cycle is None or e.event_id != derived_id(
                    "sla.escalations", e.escalation_id, e.status
                ):
                    misidentified.add(name(k))
                    continue
                started = lead_cycles[cycle]
                if started is not None and (e.owner_id, e.team_id) != started:
                    misattributed.add(name(k))
    return EscalationReport(
        stored=n_stored,
        published=n_published,
        duplicated=_sorted(name(k) for k, evs in events.items() if len(evs) > 1),
        disagreeing=_sorted(
            name(k) for k, evs in events.items() if k in rows and any(e != rows[k] for e in evs)
        ),
        unpublished=_sorted(name(k) for k in set(rows) - set(events)),
        unknown=_sorted(unknown),
        misidentified=_sorted(misidentified),
        misattributed=_sorted(misattributed),
    )


@dataclass(frozen=True, slots=True)
class Assigned:
    """What the assignment counter needs of a ``leads.assigned`` event."""

    event_id: str
    team_id: str
    strategy: str
    kind: str


@dataclass(frozen=True, slots=True)
class Labels:
    """The bounded label values of the metrics service's configuration."""

    sources: frozenset[str]
    teams: frozenset[str]
    reject_reasons: frozenset[str]
    escalation_kinds: frozenset[str]

    def source(self, value: str) -> str:
        return value if value in self.sources else OTHER

    def team(self, value: str) -> str:
        return value if value in self.teams else OTHER


def _series(name: str, **labels: str) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


def expected_counters(
    outcomes: Iterable[Outcome],
    assigned: Iterable[Assigned],
    steps: Iterable[Step],
    steps_kind: Mapping[str, tuple[str, str]],
    labels: Labels,
) -> Counter[SeriesKey]:
    """The truth of :data:`COUNTERS` from the topics, each event counted once by its
    event id (redeliveries carry the same id).

    ``steps_kind``: escalation id → (kind, team id) of the step (from the topic).
    """
    truth: Counter[SeriesKey] = Counter()
    seen: set[str] = set()
    for o in outcomes:
        if o.event_id in seen:
            continue
        seen.add(o.event_id)
        source = labels.source(o.source)
        truth[_series("leadloop_leads_received_total", source=source)] += 1
        if o.outcome == "rejected":
            reason = o.reason if o.reason in labels.reject_reasons else OTHER
            truth[_series("leadloop_leads_rejected_total", source=source, reason=reason)] += 1
        else:
            truth[_series(f"leadloop_leads_{o.outcome}_total", source=source)] += 1
    seen = set()  # event ids are unique per topic, not across topics
    for a in assigned:
        if a.event_id in seen:
            continue
        seen.add(a.event_id)
        team = labels.team(a.team_id)
        key = _series("leadloop_leads_assigned_total", team=team, strategy=a.strategy, kind=a.kind)
        truth[key] += 1
    seen = set()
    for s in steps:
        if s.event_id in seen or s.status != "firing":
            continue
        seen.add(s.event_id)
        kind, team = steps_kind[s.escalation_id]
        truth[
            _series(
                "leadloop_sla_breaches_total",
                kind=kind if kind in labels.escalation_kinds else OTHER,
                level=str(min(max(s.level, 1), MAX_LEVEL)),
                team=labels.team(team),
            )
        ] += 1
    return truth


def compare_counters(
    truth: Mapping[SeriesKey, float], served: Mapping[SeriesKey, float]
) -> dict[SeriesKey, tuple[float, float]]:
    """Every series of :data:`COUNTERS` whose served value is not the truth: key →
    (truth, served). A series absent on either side counts as 0."""
    keys = {k for k in (*truth, *served) if k[0] in COUNTERS}
    diff = {k: (float(truth.get(k, 0)), float(served.get(k, 0))) for k in keys}
    return {k: v for k, v in sorted(diff.items()) if v[0] != v[1]}


def parse_exposition(text: str) -> dict[SeriesKey, float]:
    """The samples of a Prometheus text exposition (``_created`` samples left out)."""
    out: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@dataclass(frozen=True, slots=True)
class PipelineReport:
    ingest: IngestReport
    assignment: AssignmentReport
    escalations: EscalationReport
    #: Counter series whose /metrics value differs from the truth: (truth, served).
    counters: Mapping[SeriesKey, tuple[float, float]]
    #: Sum of each counter's truth, for the summary.
    totals: Mapping[str, float]
    #: Every decision against the rules and the roster (routing, eligibility, fairness).
    routing: RoutingReport

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        out = {f"ingest.{k}": v for k, v in self.ingest.problems.items()}
        out |= {f"assignment.{k}": v for k, v in self.assignment.problems.items()}
        out |= {f"sla.{k}": v for k, v in self.escalations.problems.items()}
        out |= {f"routing.{k}": v for k, v in self.routing.problems.items()}
        if self.counters:
            out["counters"] = tuple(
                f"{name}{dict(labels)} truth={t:g} served={s:g}"
                for (name, labels), (t, s) in self.counters.items()
            )
        return out

    def summary(self) -> str:
        lines = [
            f"raw={self.ingest.raw} per_source={dict(self.ingest.per_source)}",
            f"assignment: {self.assignment.summary().splitlines()[0]}",
            f"sla: stored={self.escalations.stored} published={self.escalations.published}",
            self.routing.summary(),
            "counters: " + ", ".join(f"{k}={v:g}" for k, v in sorted(self.totals.items())),
        ]
        for name, ids in self.problems.items():
            lines.append(f"  {name}: {len(ids)} e.g. {list(ids[:_SHOWN])}")
        return "\n".join(lines)


async def read_ingest(
    kafka: KafkaSettings, database_url: str
) -> tuple[
    list[RawPosition],
    list[Outcome],
    list[Outcome],
    list[Rejected],
    dict[str, str],
    list[tuple[str, str]],
]:
    """Everything :func:`compare_ingest` takes, read from the topics and PostgreSQL."""
    raw, outcomes, rejected, accepted = await asyncio.gather(
        read_topic(kafka, "leads.raw"),
        read_topic(kafka, "ingest.outcomes"),
        read_topic(kafka, "leads.rejected"),
        read_topic(kafka, "leads.accepted"),
    )
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT raw_partition, raw_offset, event_id, source, outcome, reason, lead_id "
            "FROM ingest_outcomes WHERE raw_topic = $1",
            qualified("leads.raw", kafka.topic_prefix),
        )
        leads = {
            r["lead_id"]: r["accepted_event_id"]
            for r in await conn.fetch("SELECT lead_id, accepted_event_id FROM leads")
        }
    finally:
        await conn.close()
    stored = [
        Outcome(
            r["raw_partition"],
            r["raw_offset"],
            r["event_id"],
            r["source"],
            r["outcome"],
            r["reason"],
            r["lead_id"],
        )
        for r in rows
    ]
    published = []
    for record in outcomes:
        b = json.loads(record.value)
        published.append(
            Outcome(
                b["raw_partition"],
                b["raw_offset"],
                b["event_id"],
                b["source"],
                b["outcome"],
                b.get("reason"),
                b.get("lead_id"),
            )
        )
    rejects = []
    for record in rejected:
        h = {k: v.decode() for k, v in record.headers}
        rejects.append(
            Rejected(int(h["source-partition"]), int(h["source-offset"]), h["reject-reason"])
        )
    pairs = [(b["lead_id"], b["event_id"]) for b in (json.loads(r.value) for r in accepted)]
    return [(r.partition, r.offset) for r in raw], stored, published, rejects, leads, pairs


_STEP_COLUMNS = (
    "escalation_id, status, event_id, lead_id, level, action, policy_id, kind, owner_id, team_id"
)


def _step(b: Mapping[str, Any]) -> Step:
    return Step(
        b["escalation_id"],
        b["status"],
        b["event_id"],
        b["lead_id"],
        b["level"],
        b["action"],
        b["policy_id"],
        b["kind"],
        b["owner_id"],
        b["team_id"],
    )


async def read_steps(kafka: KafkaSettings, database_url: str) -> tuple[list[Step], list[Step]]:
    """Stored and published ladder steps."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(f"SELECT {_STEP_COLUMNS} FROM escalations")
    finally:
        await conn.close()
    published = [_step(json.loads(r.value)) for r in await read_topic(kafka, "sla.escalations")]
    return [_step(r) for r in rows], published


async def read_cycles(kafka: KafkaSettings) -> dict[str, dict[str, Cycle]]:
    """Every clock cycle the inputs of sla-monitor can start, per lead: each assignment
    with an owner on ``leads.assigned`` (its owner and team), each activity on
    ``crm.activities`` and each stage change on ``crm.stage-changes`` (a touch)."""
    assigned, activities, stages = await asyncio.gather(
        read_topic(kafka, "leads.assigned"),
        read_topic(kafka, "crm.activities"),
        read_topic(kafka, "crm.stage-changes"),
    )
    cycles: dict[str, dict[str, Cycle]] = defaultdict(dict)
    for r in [*activities, *stages]:
        b = json.loads(r.value)
        cycles[b["lead_id"]][b["event_id"]] = None
    for r in assigned:
        b = json.loads(r.value)
        if b.get("owner_id") is not None:
            cycles[b["lead_id"]][b["assignment_id"]] = (b["owner_id"], b["team_id"])
    return dict(cycles)


def breach_labels(
    steps: Iterable[Step],
    cycles: Mapping[str, Mapping[str, Cycle]],
    policy_kinds: Mapping[str, str],
) -> dict[str, tuple[str, str]]:
    """escalation id → (kind, team) for the breach counter, from the inputs: the kind
    of the step's policy (or a reclaim warning), the team of the assignment whose cycle
    the id names. A step whose id names no assignment keeps its own team; a policy not
    in ``policy_kinds`` its own kind (both then stand out elsewhere)."""
    out: dict[str, tuple[str, str]] = {}
    for s in steps:
        lead_cycles = cycles.get(s.lead_id, {})
        cycle = escalation_ids(s, lead_cycles).get(s.escalation_id)
        started = lead_cycles.get(cycle) if cycle is not None else None
        team = started[1] if started is not None else s.team_id
        kind = WARNING_KIND if s.kind == WARNING_KIND else policy_kinds.get(s.policy_id, s.kind)
        out[s.escalation_id] = (kind, team)
    return out


async def read_assigned_for_counters(kafka: KafkaSettings) -> list[Assigned]:
    return [
        Assigned(b["event_id"], b["team_id"], b["strategy"], b["kind"])
        for b in (json.loads(r.value) for r in await read_topic(kafka, "leads.assigned"))
    ]


async def read_routing(
    kafka: KafkaSettings, routing: Routing
) -> tuple[dict[str, dict[str, Any]], list[Decision], list[RepEntry]]:
    """The leads' attributes, every decision and every roster update, from the topics."""
    accepted, assigned, reps = await asyncio.gather(
        read_topic(kafka, "leads.accepted"),
        read_topic(kafka, "leads.assigned"),
        read_topic(kafka, "crm.reps"),
    )
    decisions = [decision_of(json.loads(r.value)) for r in assigned]
    updates = [rep_entry_of(json.loads(r.value), routing.reps) for r in reps if r.value]
    return leads_of(accepted), decisions, updates


async def check_pipeline(
    kafka: KafkaSettings,
    database_url: str,
    metrics_text: str,
    labels: Labels,
    *,
    routing: Routing,
    policy_kinds: Mapping[str, str],
) -> PipelineReport:
    """Read every topic from the beginning and PostgreSQL; compare them with each other,
    with the rule set and roster (``routing``), and with ``metrics_text`` (a /metrics
    exposition taken once the services are quiet). ``policy_kinds``: SLA policy id →
    its kind (the policies file the run used).

    Call it after the services stopped consuming (quiet or stopped), so that the
    topics' end offsets include everything the stored effects led to.
    """
    (
        (raw, stored, published, rejects, leads, accepted),
        assignment,
        (stored_steps, published_steps),
        assigned,
        cycles,
        (attributes, decisions, updates),
    ) = await asyncio.gather(
        read_ingest(kafka, database_url),
        check_assignment(kafka, database_url),
        read_steps(kafka, database_url),
        read_assigned_for_counters(kafka),
        read_cycles(kafka),
        read_routing(kafka, routing),
    )
    ingest = compare_ingest(raw, stored, published, rejects, leads, accepted)
    escalations = compare_escalations(stored_steps, published_steps, set(leads), cycles)
    kinds = breach_labels(published_steps, cycles, policy_kinds)
    truth = expected_counters(published, assigned, published_steps, kinds, labels)
    counters = compare_counters(truth, parse_exposition(metrics_text))
    totals: Counter[str] = Counter()
    for (name, _), value in truth.items():
        totals[name] += value
    routed = compare_routing(attributes, decisions, routing, updates)
    return PipelineReport(ingest, assignment, escalations, counters, dict(totals), routed)
