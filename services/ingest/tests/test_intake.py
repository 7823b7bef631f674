"""``decide`` (one outcome per raw record), scoring, and the handler's published messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop.clock import FixedClock
from leadloop.events import (
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAccepted,
    Priority,
    RawLead,
)
from leadloop.messaging import RecordingPublisher
from leadloop_ingest.domain.dedupe import Decided, Known, Merge
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.domain.intake import (
    UNKNOWN_SOURCE,
    LeadRecord,
    OutcomeRecord,
    Position,
    RawRecord,
    accepted_event,
    as_duplicate,
    decide,
    lead_id_for,
    outcome_event,
    reject_headers,
)
from leadloop_ingest.domain.scoring import ScoringWeights, score
from leadloop_ingest.domain.validation import Limits, NormalisedContact
from leadloop_ingest.handlers import IngestHandler

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
PRODUCED = datetime(2025, 3, 3, 9, 29, 58, tzinfo=UTC)
LIMITS = Limits(
    sources=frozenset({"web_form", "lead_ads", "wechat", "trade_show_csv", "referral"}),
    default_phone_region={"wechat": "CN"},
)
WEIGHTS = ScoringWeights()
PEPPER = b"test-pepper-not-a-real-secret"

SEED_EMAIL = "li.na.private@example.com"
SEED_PHONE = "+86 139 1234 5678"
SEED_PHONE_E164 = "+8613912345678"
SEED_NAME = "李娜 Privatename"


def raw(value: dict[str, Any] | bytes, offset: int, *, partition: int = 0) -> RawRecord:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return RawRecord(
        position=Position("leads.raw", partition, offset),
        key=f"k{offset}".encode(),
        value=data,
        timestamp=PRODUCED,
    )


def lead(source_lead_id: str = "wf-1", **fields: Any) -> dict[str, Any]:
    return {"source": "web_form", "source_lead_id": source_lead_id, **fields}


def run(records: list[RawRecord], now: datetime = NOW) -> Decided:
    return decide(records, limits=LIMITS, weights=WEIGHTS, pepper=PEPPER, now=now)


# --- decide -----------------------------------------------------------------------------


def test_the_same_idempotency_key_twice_in_a_batch_is_accepted_then_duplicate() -> None:
    from leadloop_ingest.domain.dedupe import resolve

    first = raw(lead(email="a@example.com"), 10)
    again = raw(lead(email="changed@example.com", company="Other"), 11)
    resolved = resolve(run([first, again]), Known(stored={}, people=[]))
    (o1, l1, _), (o2, l2, _) = resolved
    assert o1.outcome is IngestOutcome.ACCEPTED
    assert l1 is not None
    assert o1.lead_id == l1.lead_id == lead_id_for("web_form", "wf-1")
    assert o2.outcome is IngestOutcome.DUPLICATE
    assert l2 is None
    assert o2.lead_id == o1.lead_id
    assert o2.event_id != o1.event_id
    assert o2.reason == "redelivery"


def test_the_same_source_lead_id_from_another_source_is_another_lead() -> None:
    (o1, _), (o2, _) = run(
        [
            raw(lead(email="a@example.com"), 1),
            raw({**lead(email="a@example.com"), "source": "referral"}, 2),
        ]
    )
    assert o1.outcome is o2.outcome is IngestOutcome.ACCEPTED
    assert o1.lead_id != o2.lead_id


def test_ids_are_deterministic_across_calls() -> None:
    records = [
        raw(lead("a", email="a@example.com"), 1),
        raw(b"{broken", 2),
        raw(lead("b", phone="+8613800138000"), 3),
        raw(lead("a", email="a@example.com"), 4),
    ]
    first = run(records)
    second = run(records, now=NOW + timedelta(hours=1))
    assert [(o.event_id, o.lead_id, o.outcome) for o, _ in first] == [
        (o.event_id, o.lead_id, o.outcome) for o, _ in second
    ]
    leads1 = [lr for _, lr in first if lr]
    leads2 = [lr for _, lr in second if lr]
    assert [lr.accepted_event_id for lr in leads1] == [lr.accepted_event_id for lr in leads2]
    assert [accepted_event(lr).event_id for lr in leads1] == [
        accepted_event(lr).event_id for lr in leads2
    ]


def test_the_outcome_event_id_depends_on_the_raw_position_and_the_lead_id_does_not() -> None:
    value = lead(email="a@example.com")
    results = [
        run([raw(value, 5)])[0][0],
        run([raw(value, 6)])[0][0],
        run([raw(value, 5, partition=1)])[0][0],
    ]
    assert len({o.event_id for o in results}) == 3
    assert len({o.lead_id for o in results}) == 1
    # A redelivery of the same position gives the same outcome event id.
    assert run([raw(value, 5)])[0][0].event_id == results[0].event_id


def test_rejections_carry_reason_and_readable_source_and_no_lead() -> None:
    records = [
        raw(b"\xff not json", 1),
        raw(lead(), 2),
        raw({**lead(email="a@example.com"), "source": "partner_x"}, 3),
        raw({"source": "Not A Source", "email": "a@example.com"}, 4),
    ]
    outcomes = run(records)
    assert [(o.outcome, o.reason, o.source) for o, _ in outcomes] == [
        (IngestOutcome.REJECTED, "invalid_json", UNKNOWN_SOURCE),
        (IngestOutcome.REJECTED, "missing_contact", "web_form"),
        (IngestOutcome.REJECTED, "unknown_source", "partner_x"),
        (IngestOutcome.REJECTED, "schema_violation", UNKNOWN_SOURCE),
    ]
    assert all(lr is None and o.lead_id is None for o, lr in outcomes)
    assert all(o.recorded_at == NOW for o, _ in outcomes)


def test_a_rejected_record_does_not_claim_its_idempotency_key() -> None:
    bad = raw(lead(email="not-an-email"), 1)
    good = raw(lead(email="a@example.com"), 2)
    (o1, _), (o2, l2) = run([bad, good])
    assert o1.outcome is IngestOutcome.REJECTED
    assert o2.outcome is IngestOutcome.ACCEPTED
    assert l2 is not None


def test_the_lead_record_holds_normalised_contact_and_derived_fields() -> None:
    value = lead(
        email="Li.Na@Example.com",
        phone=SEED_PHONE,
        name="  李   娜 ",
        country="CN",
        city="Shanghai",
        company="Acme",
        title="CTO",
        message="call me",
        attributes={"utm": "baidu"},
        lead_id="attacker-id",
        score=100,
        priority="hot",
        owner_id="rep-attacker",
    )
    ((outcome, record),) = run([raw(value, 7)])
    assert record is not None
    assert record.lead_id == lead_id_for("web_form", "wf-1") != "attacker-id"
    assert record.email == "li.na@example.com"
    assert record.phone == SEED_PHONE_E164
    assert record.name == "李 娜"
    assert record.fields["country"] == "CN"
    assert record.fields["company"] == "Acme"
    assert record.attributes == {"utm": "baidu"}
    assert record.email_key == identity_key(PEPPER, "email", "li.na@example.com")
    assert record.phone_key == identity_key(PEPPER, "phone", SEED_PHONE_E164)
    assert "li.na" not in (record.email_key or "")
    assert (
        record.score
        == score(
            RawLead.model_validate(value),
            NormalisedContact(record.email, record.phone, record.name),
            WEIGHTS,
        )[0]
    )
    assert record.score < 100  # web_form 15 + company, title, email, phone 16
    assert record.is_returning is False
    assert record.previous_owner_id is None
    assert record.occurred_at == PRODUCED  # no occurred_at in input: the broker timestamp
    assert record.accepted_at == NOW
    assert record.position == Position("leads.raw", 0, 7)
    assert outcome.lead_id == record.lead_id


def test_occurred_at_from_the_record_wins_over_the_broker_timestamp() -> None:
    value = lead(email="a@example.com", occurred_at="2025-03-01T08:00:00+08:00")
    ((_, record),) = run([raw(value, 1)])
    assert record is not None
    assert record.occurred_at == datetime(2025, 3, 1, 0, 0, tzinfo=UTC)


def test_identity_keys_are_keyed_by_the_pepper() -> None:
    key = identity_key(b"pepper-a", "email", "a@example.com")
    assert key is not None
    assert key == identity_key(b"pepper-a", "email", "a@example.com")
    assert key != identity_key(b"pepper-b", "email", "a@example.com")
    assert key != identity_key(b"pepper-a", "phone", "a@example.com")
    assert identity_key(b"pepper-a", "email", None) is None
    assert identity_key(b"pepper-a", "email", "") is None


def test_as_duplicate_keeps_ids_and_marks_the_outcome() -> None:
    ((outcome, _),) = run([raw(lead(email="a@example.com"), 1)])
    dup = as_duplicate(outcome)
    assert dup.outcome is IngestOutcome.DUPLICATE
    assert (dup.lead_id, dup.event_id, dup.position, dup.source) == (
        outcome.lead_id,
        outcome.event_id,
        outcome.position,
        outcome.source,
    )


# --- events and headers ----------------------------------------------------------------


def test_the_accepted_event_carries_no_personal_data() -> None:
    value = lead(
        email=SEED_EMAIL,
        phone=SEED_PHONE,
        name=SEED_NAME,
        company="Acme",
        country="CN",
        budget=50_000,
        attributes={"wechat_openid": "o-secret-openid"},
    )
    ((_, record),) = run([raw(value, 1)])
    assert record is not None
    event = accepted_event(record)
    serialized = event.model_dump_json()
    for secret in (
        SEED_EMAIL,
        SEED_PHONE,
        SEED_PHONE_E164,
        SEED_NAME,
        "Privatename",
        "o-secret-openid",
        record.email_key or "-",
        record.phone_key or "-",
    ):
        assert secret not in serialized
    fields = json.loads(serialized)
    assert not {"email", "phone", "name", "attributes", "email_key"} & set(fields)
    assert fields["lead_id"] == record.lead_id
    assert fields["country"] == "CN"
    assert fields["budget"] == 50_000
    assert fields["score"] == record.score
    assert fields["priority"] == record.priority.value
    # It round-trips through the contract model.
    assert LeadAccepted.model_validate_json(serialized) == event


def test_reject_headers_are_the_contracts_and_carry_the_reason() -> None:
    ((outcome, _),) = run([raw(lead(email=SEED_EMAIL.replace("@", "@@")), 42, partition=3)])
    headers = dict(reject_headers(outcome))
    assert set(headers) == {
        "reject-reason",
        "reject-detail",
        "source-topic",
        "source-partition",
        "source-offset",
        "rejected-at",
    }
    assert headers["reject-reason"] == b"invalid_email"
    assert headers["source-topic"] == b"leads.raw"
    assert headers["source-partition"] == b"3"
    assert headers["source-offset"] == b"42"
    assert datetime.fromisoformat(headers["rejected-at"].decode()) == NOW
    assert SEED_EMAIL.split("@")[0].encode() not in headers["reject-detail"]
    assert headers["reject-detail"]


def test_the_outcome_event_names_position_and_outcome() -> None:
    ((outcome, _),) = run([raw(lead(email="a@example.com"), 9, partition=2)])
    event = outcome_event(outcome)
    assert isinstance(event, IngestOutcomeRecorded)
    assert (event.event_id, event.source, event.outcome, event.lead_id) == (
        outcome.event_id,
        "web_form",
        IngestOutcome.ACCEPTED,
        outcome.lead_id,
    )
    assert (event.raw_partition, event.raw_offset) == (2, 9)


# --- scoring ---------------------------------------------------------------------------


def raw_lead(**fields: Any) -> RawLead:
    # model_construct: scoring must be robust even to values validation would refuse.
    base: dict[str, Any] = {f: None for f in RawLead.model_fields}
    base.update(source="web_form", source_lead_id="x", attributes={})
    base.update(fields)
    return RawLead.model_construct(**base)


def test_scoring_examples() -> None:
    best = raw_lead(source="referral", company_size=5000, budget=200_000, company="A", title="B")
    full = NormalisedContact("a@example.com", "+8613800138000", None)
    assert score(best, full, WEIGHTS) == (96, Priority.HOT)
    bare = raw_lead(source="lead_ads")
    assert score(bare, NormalisedContact("a@example.com", None, None), WEIGHTS) == (
        14,
        Priority.COLD,
    )
    unknown_channel = raw_lead(source="somewhere_new", company_size=200, budget=5_000)
    # 10 (default channel) + 18 + 8 + 4
    assert score(unknown_channel, NormalisedContact(None, "+8613800138000", None), WEIGHTS) == (
        40,
        Priority.WARM,
    )


def test_priority_thresholds_are_inclusive_at_their_bounds() -> None:
    contact = NormalisedContact(None, None, None)
    for points, expected in [
        (29, Priority.COLD),
        (30, Priority.WARM),
        (59, Priority.WARM),
        (60, Priority.HOT),
    ]:
        weights = ScoringWeights(channel={"web_form": points}, hot_at=60, warm_at=30)
        assert score(raw_lead(), contact, weights) == (points, expected)


text_or_none = st.none() | st.text(max_size=8)
contacts = st.builds(NormalisedContact, text_or_none, text_or_none, text_or_none)
raw_leads = st.builds(
    raw_lead,
    source=st.sampled_from(("referral", "web_form", "wechat", "lead_ads", "x")),
    company_size=st.none() | st.integers(min_value=-(10**12), max_value=10**12),
    budget=st.none() | st.floats(),
    company=text_or_none,
    title=text_or_none,
)
points = st.integers(min_value=-1000, max_value=1000)
weights = st.builds(
    ScoringWeights,
    channel=st.dictionaries(st.sampled_from(("referral", "web_form", "x")), points),
    default_channel=points,
    company_size_bands=st.lists(st.tuples(st.integers(0, 10**6), points), max_size=4).map(tuple),
    budget_bands=st.lists(st.tuples(st.floats(0, 1e9), points), max_size=4).map(tuple),
    completeness_per_field=points,
    hot_at=st.integers(0, 100),
    warm_at=st.integers(0, 100),
)


@settings(max_examples=300)
@given(raw_leads, contacts, st.one_of(st.just(WEIGHTS), weights))
def test_score_stays_within_0_and_100_and_priority_follows_the_thresholds(
    lead_: RawLead, contact: NormalisedContact, w: ScoringWeights
) -> None:
    value, priority = score(lead_, contact, w)
    assert 0 <= value <= 100
    assert isinstance(value, int)
    if value >= w.hot_at:
        assert priority is Priority.HOT
    elif value >= w.warm_at:
        assert priority is Priority.WARM
    else:
        assert priority is Priority.COLD
    # Deterministic: a replayed lead keeps its score.
    assert score(lead_, contact, w) == (value, priority)


# --- the handler ------------------------------------------------------------------------


class FakeStore:
    """Persists nothing; proposals whose lead id already "exists" are stored already."""

    def __init__(self, existing: set[str] | None = None, failures: int = 0) -> None:
        self.existing = existing or set()
        self.failures = failures
        self.calls: list[Decided] = []

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[FakeStore]:
        yield self

    async def outcomes(self, positions: Sequence[Position]) -> dict[Position, OutcomeRecord]:
        return {}

    async def known(self, fresh: Decided) -> Known:
        self.calls.append(fresh)
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("postgres is down")
        return Known(
            stored={
                r.lead_id: r.lead_id
                for _, r in fresh
                if r is not None and r.lead_id in self.existing
            },
            people=[],
        )

    async def insert_leads(self, leads: Sequence[LeadRecord]) -> set[str]:
        return {lead.lead_id for lead in leads}

    async def record(
        self, outcomes: Sequence[OutcomeRecord], merges: Sequence[tuple[Merge, datetime]]
    ) -> None:
        return None

    async def leads(self, lead_ids: Sequence[str]) -> dict[str, LeadRecord]:
        return {}


def handler(store: FakeStore, publisher: RecordingPublisher) -> IngestHandler:
    return IngestHandler(
        store=store,
        publisher=publisher,
        clock=FixedClock(NOW),
        limits=LIMITS,
        weights=WEIGHTS,
        pepper=PEPPER,
    )


BATCH = [
    raw(lead("a", email=SEED_EMAIL, name=SEED_NAME), 100),
    raw(b'{"source": "web_form", "email": "' + SEED_EMAIL.encode() + b'"', 101),
    raw(lead("a", email=SEED_EMAIL), 102),
    raw(lead("b", phone=SEED_PHONE), 103),
]


async def test_the_handler_publishes_accepted_rejected_and_every_outcome() -> None:
    store, publisher = FakeStore(), RecordingPublisher()
    final = await handler(store, publisher).handle(BATCH)
    assert [o.outcome for o, _ in final] == [
        IngestOutcome.ACCEPTED,
        IngestOutcome.REJECTED,
        IngestOutcome.DUPLICATE,
        IngestOutcome.ACCEPTED,
    ]
    assert len(store.calls) == 1
    topics = [m.topic for m in publisher.messages]
    assert topics == [
        "leads.accepted",
        "ingest.outcomes",
        "leads.rejected",
        "ingest.outcomes",
        "ingest.outcomes",
        "leads.accepted",
        "ingest.outcomes",
    ]
    lead_a, lead_b = lead_id_for("web_form", "a"), lead_id_for("web_form", "b")
    accepted = [m for m in publisher.messages if m.topic == "leads.accepted"]
    assert [m.key for m in accepted] == [lead_a.encode(), lead_b.encode()]
    for m in accepted:
        event = LeadAccepted.model_validate_json(m.value)
        assert event.accepted_at == NOW
        assert m.key == event.lead_id.encode()

    (rejected,) = [m for m in publisher.messages if m.topic == "leads.rejected"]
    assert rejected.value == BATCH[1].value  # the original bytes, untouched
    assert rejected.key == BATCH[1].key
    headers = dict(rejected.headers)
    assert headers["reject-reason"] == b"invalid_json"
    assert headers["source-offset"] == b"101"
    assert SEED_EMAIL.encode() not in headers["reject-detail"]

    outcomes = [
        IngestOutcomeRecorded.model_validate_json(m.value)
        for m in publisher.messages
        if m.topic == "ingest.outcomes"
    ]
    assert [(e.outcome, e.raw_offset, e.lead_id) for e in outcomes] == [
        (IngestOutcome.ACCEPTED, 100, lead_a),
        (IngestOutcome.REJECTED, 101, None),
        (IngestOutcome.DUPLICATE, 102, lead_a),
        (IngestOutcome.ACCEPTED, 103, lead_b),
    ]
    outcome_keys = [m.key for m in publisher.messages if m.topic == "ingest.outcomes"]
    assert outcome_keys == [b"web_form", UNKNOWN_SOURCE.encode(), b"web_form", b"web_form"]
    assert all(e.occurred_at == NOW for e in outcomes)


async def test_the_handler_publishes_nothing_personal_outside_leads_rejected() -> None:
    publisher = RecordingPublisher()
    await handler(FakeStore(), publisher).handle(BATCH)
    for m in publisher.messages:
        if m.topic == "leads.rejected":
            continue
        blob = m.value + (m.key or b"") + b"".join(v for _, v in m.headers)
        for secret in (SEED_EMAIL, SEED_PHONE, SEED_PHONE_E164, SEED_NAME):
            assert secret.encode() not in blob, m.topic


async def test_a_proposal_the_store_already_had_is_published_as_a_duplicate_only() -> None:
    existing = lead_id_for("web_form", "b")
    store, publisher = FakeStore(existing={existing}), RecordingPublisher()
    final = await handler(store, publisher).handle(BATCH)
    assert final[3][0].outcome is IngestOutcome.DUPLICATE
    assert final[3][1] is None
    accepted_keys = [m.key for m in publisher.messages if m.topic == "leads.accepted"]
    assert accepted_keys == [lead_id_for("web_form", "a").encode()]
    last = IngestOutcomeRecorded.model_validate_json(publisher.messages[-1].value)
    assert (last.outcome, last.lead_id, last.raw_offset) == (
        IngestOutcome.DUPLICATE,
        existing,
        103,
    )


async def test_a_transient_store_failure_is_retried_before_anything_is_published() -> None:
    store, publisher = FakeStore(failures=1), RecordingPublisher()
    final = await handler(store, publisher).handle(BATCH[:1])
    assert len(store.calls) == 2
    assert store.calls[0] == store.calls[1]  # the same proposals, decided once
    assert [o.outcome for o, _ in final] == [IngestOutcome.ACCEPTED]
    assert [m.topic for m in publisher.messages] == ["leads.accepted", "ingest.outcomes"]


async def test_a_permanent_store_error_propagates_and_nothing_is_published() -> None:
    class BrokenStore(FakeStore):
        async def known(self, fresh: Decided) -> Known:
            raise RuntimeError("constraint violated")

    publisher = RecordingPublisher()
    with pytest.raises(RuntimeError, match="constraint violated"):
        await handler(BrokenStore(), publisher).handle(BATCH)
    assert publisher.messages == []


def test_a_copy_later_in_the_batch_points_at_the_lead_its_first_copy_merged_into() -> None:
    """Regression: the first copy merged into an open lead; the copy's duplicate outcome
    must reference that lead, not the id of a lead that was never created."""
    from leadloop_ingest.domain.dedupe import PersonLead, resolve
    from leadloop_ingest.domain.identity import identity_key

    body = lead("x1", email="p@example.com")
    proposals = run([raw(body, 1), raw(body, 2)])
    open_lead = PersonLead(
        lead_id="open-lead",
        email_key=identity_key(PEPPER, "email", "p@example.com"),
        phone_key=None,
        owner_id="rep-1",
        accepted_at=NOW,
        closed_at=None,
        stage="assigned",
    )
    resolved = resolve(proposals, Known(stored={}, people=[open_lead]))
    assert [o.lead_id for o, _, _ in resolved] == ["open-lead", "open-lead"]
    assert [o.reason for o, _, _ in resolved] == ["same_person", "redelivery"]


def test_a_copy_of_a_record_merged_in_an_earlier_batch_points_at_the_merge_target() -> None:
    """Regression (found by the kill -9 test): after a redelivery, the first copy is
    already stored as a merge; the second copy must not reference a lead never created."""
    from leadloop_ingest.domain.dedupe import resolve

    body = lead("x2", email="q@example.com")
    proposals = run([raw(body, 1), raw(body, 2)])
    proposed_id = lead_id_for("web_form", "x2")
    resolved = resolve(proposals[1:], Known(stored={proposed_id: "open-lead"}, people=[]))
    assert [(o.outcome, o.lead_id) for o, _, _ in resolved] == [
        (IngestOutcome.DUPLICATE, "open-lead")
    ]
