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
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = [
    "FIRST_DECISIONS",
    "AssignmentReport",
    "Published",
    "Stored",
    "TeamFairness",
    "check_assignment",
    "compare_assignment",
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
    #: Accepted, but without a first decision in PostgreSQL.
    lost: tuple[str, ...]
    #: Two or more first decisions in PostgreSQL (a duplicated effect).
    duplicated: tuple[str, ...]
    #: ``leads.assigned`` carries two different first decisions (assignment id, owner,
    #: team or kind) for the lead; identical redeliveries are fine.
    conflicting: tuple[str, ...]
    #: A first decision on ``leads.assigned`` that is not the one in PostgreSQL.
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
            "duplicated": self.duplicated,
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
        if rows and any(_decision(e) != _decision(rows[0]) for e in events):
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
        duplicated=_sorted(lead for lead, rows in first_stored.items() if len(rows) > 1),
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
    to the end offsets as they were when reading started. No consumer group."""
    name = qualified(topic, kafka.topic_prefix)
    # No group: subscribing assigns every partition of the topic to this consumer.
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=kafka.bootstrap_servers,
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
        await consumer.seek_to_beginning(*tps)
        got: list[ConsumerRecord[bytes, bytes]] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: not read to its end within {within}s")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                got.extend(r for r in records if r.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return got
    finally:
        await consumer.stop()


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
        rows = await conn.fetch("SELECT lead_id, kind, owner_id, team_id FROM assignments")
    finally:
        await conn.close()
    return [Stored(r["lead_id"], r["kind"], r["owner_id"], r["team_id"]) for r in rows]


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
