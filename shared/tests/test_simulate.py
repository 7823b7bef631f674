"""The traffic simulator: pure generation and rep plans (unit), and ``run`` on the real
broker (integration, each test with its own topic prefix).

The unit tests recompute what a record is from its bytes alone, the way ingest will,
instead of trusting the simulator's own labels.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from rich.console import Console
from structlog.testing import capture_logs

from leadloop.config_file import ConfigFileError
from leadloop.events import (
    ActivityRecorded,
    AssignmentKind,
    LeadAssigned,
    Priority,
    RawLead,
    RepStatus,
    RepUpdated,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.simulate import (
    CHANNELS,
    MAX_ATTRIBUTES,
    MAX_RECORD_BYTES,
    ROSTER_ENV,
    Defect,
    PlannedEvent,
    RecordKind,
    Responsiveness,
    RosterError,
    SimulatedRecord,
    SimulationConfig,
    SimulationSummary,
    generate_leads,
    generate_records,
    load_rules,
    plan_followup,
    rep_responsiveness,
    roster_from_rules,
    run,
)
from leadloop.topics import qualified

N = 5000
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def records() -> list[SimulatedRecord]:
    return generate_records(seed=20250303, n=N)


def classify(value: bytes) -> str:
    """What ingest would make of a record, from its bytes alone."""
    if len(value) > MAX_RECORD_BYTES:
        return "too_large"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        obj = json.loads(text)
    except ValueError:
        return "invalid_json"
    if not isinstance(obj, dict):
        return "invalid_json"
    try:
        lead = RawLead.model_validate_json(value)
    except ValidationError:
        return "schema_violation"
    if not lead.email and not lead.phone:
        return "missing_contact"
    return "ok"


def contact_keys(lead: RawLead) -> set[str]:
    """Crude normalisation: enough to recognise the same person in the test data.

    Eight trailing digits: national and international spellings of a number agree on
    them (Singapore and Hong Kong numbers have only eight).
    """
    keys = set()
    if lead.email:
        keys.add("email:" + lead.email.lower())
    if lead.phone:
        keys.add("phone:" + re.sub(r"\D", "", lead.phone)[-8:])
    return keys


def recompute_kinds(values: list[bytes]) -> list[RecordKind]:
    seen_ids: set[tuple[str, str]] = set()
    seen_contacts: set[str] = set()
    kinds = []
    for value in values:
        if classify(value) != "ok":
            kinds.append(RecordKind.MALFORMED)
            continue
        lead = RawLead.model_validate_json(value)
        idempotency_key = (lead.source, lead.source_lead_id)
        contacts = contact_keys(lead)
        if idempotency_key in seen_ids:
            kinds.append(RecordKind.REDELIVERY)
        elif contacts & seen_contacts:
            kinds.append(RecordKind.RETURNING)
        else:
            kinds.append(RecordKind.FRESH)
        seen_ids.add(idempotency_key)
        seen_contacts |= contacts
    return kinds


def well_formed(records: list[SimulatedRecord]) -> list[RawLead]:
    return [RawLead.model_validate_json(r.value) for r in records if r.defect is None]


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes() -> None:
    assert generate_leads(42, 1000) == generate_leads(42, 1000)


def test_different_seeds_give_different_traffic() -> None:
    a, b = generate_leads(1, 200), generate_leads(2, 200)
    assert len({v for _, v in a} & {v for _, v in b}) == 0


def test_more_records_do_not_change_the_first_ones() -> None:
    assert generate_leads(9, 300)[:100] == generate_leads(9, 100)


def test_generate_leads_is_key_and_value_of_the_records() -> None:
    assert generate_leads(5, 50) == [(r.key, r.value) for r in generate_records(5, 50)]


def test_start_moves_timestamps_only_and_must_be_aware() -> None:
    later = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    moved = generate_records(3, 50, start=later)
    assert [r.kind for r in moved] == [r.kind for r in generate_records(3, 50)]
    assert any(b"2026-01-05" in r.value for r in moved)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_records(3, 1, start=datetime(2026, 1, 5))


# --------------------------------------------------------------------------- the mix


def test_shares_of_kinds_recomputed_from_bytes(records: list[SimulatedRecord]) -> None:
    kinds = recompute_kinds([r.value for r in records])
    shares = {kind: n / N for kind, n in Counter(kinds).items()}
    assert shares[RecordKind.MALFORMED] == pytest.approx(0.04, abs=0.012)
    assert shares[RecordKind.REDELIVERY] == pytest.approx(0.03, abs=0.01)
    assert shares[RecordKind.RETURNING] == pytest.approx(0.03, abs=0.01)
    # The simulator's own labels agree with what the bytes say.
    disagreements = sum(1 for r, k in zip(records, kinds, strict=True) if r.kind != k)
    assert disagreements <= N * 0.002


def test_channel_mix(records: list[SimulatedRecord]) -> None:
    counts = Counter(r.channel for r in records)
    expected = dict(zip(CHANNELS, (0.35, 0.25, 0.15, 0.15, 0.10), strict=True))
    for channel, share in expected.items():
        assert counts[channel] / N == pytest.approx(share, abs=0.03), channel


def test_well_formed_records_satisfy_the_contract(records: list[SimulatedRecord]) -> None:
    for record in records:
        if record.defect is not None:
            continue
        assert classify(record.value) == "ok", record.value[:200]
        lead = RawLead.model_validate_json(record.value)
        assert lead.source == record.channel
        assert len(lead.attributes) <= MAX_ATTRIBUTES
        raw = json.loads(record.value)
        assert all(isinstance(v, str | int | float | bool) for v in raw["attributes"].values())
        assert not {"lead_id", "owner_id", "stage", "score", "priority"} & raw.keys()


def test_malformed_records_break_the_contract(records: list[SimulatedRecord]) -> None:
    malformed = [r for r in records if r.kind is RecordKind.MALFORMED]
    assert malformed
    assert all(classify(r.value) != "ok" for r in malformed)


EXPECTED_VERDICT = {
    Defect.INVALID_JSON: "invalid_json",
    Defect.INVALID_UTF8: "invalid_utf8",
    Defect.MISSING_CONTACT: "missing_contact",
    Defect.BAD_SOURCE: "schema_violation",
    Defect.WRONG_TYPE: "schema_violation",
    Defect.TOO_LARGE: "too_large",
    Defect.TOO_MANY_ATTRIBUTES: "schema_violation",
}


@pytest.mark.parametrize("defect", list(Defect))
def test_every_defect_occurs_and_is_what_it_says(
    records: list[SimulatedRecord], defect: Defect
) -> None:
    values = [r.value for r in records if r.defect is defect]
    assert len(values) >= 10
    assert {classify(v) for v in values} == {EXPECTED_VERDICT[defect]}
    if defect is Defect.TOO_MANY_ATTRIBUTES:
        assert all(len(json.loads(v)["attributes"]) > MAX_ATTRIBUTES for v in values)


def test_redeliveries_repeat_an_earlier_record_exactly(records: list[SimulatedRecord]) -> None:
    earlier: set[tuple[bytes | None, bytes]] = set()
    for record in records:
        if record.kind is RecordKind.REDELIVERY:
            assert (record.key, record.value) in earlier
        earlier.add((record.key, record.value))


def test_keys_carry_the_idempotency_pair_except_csv_imports(
    records: list[SimulatedRecord],
) -> None:
    for record in records:
        if record.defect is not None:
            continue
        lead = RawLead.model_validate_json(record.value)
        if record.channel == "trade_show_csv":
            assert record.key is None
        else:
            assert record.key == f"{lead.source}:{lead.source_lead_id}".encode()


# --------------------------------------------------------------------------- realism


def phone_shape(phone: str) -> str:
    return re.sub(r"\d", "9", phone)


def test_phones_come_in_many_formats(records: list[SimulatedRecord]) -> None:
    shapes = {phone_shape(lead.phone) for lead in well_formed(records) if lead.phone}
    assert len(shapes) >= 30
    for example in ("+86 138 0013 8000", "13800138000", "(415) 555-0100", "+44 20 7946 0958",
                    "020-7946-0958", "+44 (0)20 7946 0958", "0086 13800138000"):  # fmt: skip
        assert phone_shape(example) in shapes, example


def test_phones_are_valid_numbers_for_their_country(records: list[SimulatedRecord]) -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    for lead in well_formed(records):
        if lead.phone is None:
            continue
        if not lead.phone.startswith("+"):
            # Without "+", only the country makes the number resolvable.
            assert lead.country is not None
        number = phonenumbers.parse(lead.phone, lead.country)
        assert phonenumbers.is_valid_number(number), phone_shape(lead.phone)


def test_emails_are_valid_and_mixed_case(records: list[SimulatedRecord]) -> None:
    email_validator = pytest.importorskip("email_validator")
    emails = [lead.email for lead in well_formed(records) if lead.email]
    for email in emails:
        email_validator.validate_email(email, check_deliverability=False)
    mixed = [e for e in emails if e != e.lower()]
    assert 0.2 < len(mixed) / len(emails) < 0.5


def test_names_in_chinese_characters_and_latin_script(records: list[SimulatedRecord]) -> None:
    names = [lead.name for lead in well_formed(records) if lead.name]
    chinese = sum(1 for n in names if CJK.search(n))
    assert 0.3 < chinese / len(names) < 0.7
    assert any(n in {"王伟", "李娜", "张敏"} for n in names)
    assert any(re.fullmatch(r"[A-Z][a-zà-ÿ]+ [A-Z][a-zà-ÿ']+", n) for n in names)


def test_fields_vary_like_real_channels(records: list[SimulatedRecord]) -> None:
    leads = well_formed(records)
    assert len({lead.country for lead in leads}) >= 10
    assert len({lead.industry for lead in leads}) >= 8
    assert {lead.source for lead in leads} == set(CHANNELS)
    assert any(lead.company_size for lead in leads)
    assert any(lead.budget for lead in leads)
    offsets = Counter(
        lead.occurred_at.utcoffset() for lead in leads if lead.occurred_at is not None
    )
    assert {timedelta(hours=8), timedelta(0), timedelta(hours=5, minutes=30)} <= offsets.keys()
    assert any(lead.occurred_at is None for lead in leads)


# --------------------------------------------------------------------------- reps

ASSIGNED_AT = datetime(2025, 3, 3, 1, 5, tzinfo=UTC)
PIPELINE = [Stage.CONTACTED, Stage.QUALIFIED, Stage.PROPOSAL, Stage.NEGOTIATION, Stage.WON]


def reps_with(temper: Responsiveness, seed: int = 7, count: int = 5) -> list[str]:
    found = (f"rep-{i}" for i in range(10_000))
    return [r for r in found if rep_responsiveness(seed, r) is temper][:count]


def plan(owner: str, n: int, seed: int = 7) -> list[PlannedEvent]:
    return plan_followup(
        seed,
        assignment_id=f"asg-{owner}-{n}",
        lead_id=f"lead-{owner}-{n}",
        owner_id=owner,
        assigned_at=ASSIGNED_AT,
    )


def test_rep_temperaments_are_shared_about_60_25_15() -> None:
    counts = Counter(rep_responsiveness(7, f"rep-{i}") for i in range(4000))
    assert counts[Responsiveness.FAST] / 4000 == pytest.approx(0.60, abs=0.03)
    assert counts[Responsiveness.SLOW] / 4000 == pytest.approx(0.25, abs=0.03)
    assert counts[Responsiveness.NEVER] / 4000 == pytest.approx(0.15, abs=0.03)


def test_rep_temperament_is_fixed_by_seed_and_rep() -> None:
    reps = [f"rep-{i}" for i in range(100)]
    assert [rep_responsiveness(7, r) for r in reps] == [rep_responsiveness(7, r) for r in reps]
    assert [rep_responsiveness(7, r) for r in reps] != [rep_responsiveness(8, r) for r in reps]


def test_a_rep_who_never_answers_plans_nothing() -> None:
    for rep in reps_with(Responsiveness.NEVER):
        assert plan(rep, 1) == []


@pytest.mark.parametrize(
    ("temper", "low", "high"),
    [(Responsiveness.FAST, 0, 5 * 60), (Responsiveness.SLOW, 30 * 60, 120 * 60)],
)
def test_first_touch_comes_when_the_temperament_says(
    temper: Responsiveness, low: float, high: float
) -> None:
    for rep in reps_with(temper):
        for n in range(20):
            first = plan(rep, n)[0]
            activity = ActivityRecorded.model_validate_json(first.value)
            assert first.topic == "crm.activities"
            assert low <= first.delay_s <= high
            assert activity.occurred_at == ASSIGNED_AT + timedelta(seconds=first.delay_s)


def test_plans_follow_the_pipeline_and_the_contract() -> None:
    event_ids: set[str] = set()
    for rep in reps_with(Responsiveness.FAST) + reps_with(Responsiveness.SLOW):
        for n in range(40):
            events = plan(rep, n)
            delays = [e.delay_s for e in events]
            assert delays == sorted(delays)
            stages: list[Stage] = []
            for event in events:
                assert event.key == f"lead-{rep}-{n}".encode()
                if event.topic == "crm.activities":
                    parsed_a = ActivityRecorded.model_validate_json(event.value)
                    assert parsed_a.rep_id == rep
                    event_ids.add(parsed_a.event_id)
                    continue
                assert event.topic == "crm.stage-changes"
                change = StageChanged.model_validate_json(event.value)
                assert change.rep_id == rep
                assert change.stage is event.stage
                event_ids.add(change.event_id)
                stages.append(change.stage)
                if change.stage is Stage.WON:
                    assert change.amount is not None
                    assert change.amount > 0
            if stages and stages[-1] is Stage.LOST:
                stages = stages[:-1]
            assert stages == PIPELINE[: len(stages)]
            assert stages, "every answered lead is at least contacted"
    assert len(event_ids) == sum(
        len(plan(r, n))
        for r in reps_with(Responsiveness.FAST) + reps_with(Responsiveness.SLOW)
        for n in range(40)
    )


def test_fast_answers_qualify_more_often_and_the_funnel_has_every_ending() -> None:
    def endings(temper: Responsiveness) -> Counter[str]:
        out: Counter[str] = Counter()
        for rep in reps_with(temper, count=10):
            for n in range(100):
                stages = [e.stage for e in plan(rep, n) if e.stage is not None]
                out["qualified"] += Stage.QUALIFIED in stages
                out[stages[-1] if stages[-1] in (Stage.WON, Stage.LOST) else "open"] += 1
        return out

    fast, slow = endings(Responsiveness.FAST), endings(Responsiveness.SLOW)
    assert fast["qualified"] > 1.5 * slow["qualified"]
    assert fast[Stage.WON] > 0
    assert fast[Stage.LOST] > 0
    assert fast["open"] > 0


def test_plans_are_deterministic() -> None:
    rep = reps_with(Responsiveness.FAST)[0]
    assert plan(rep, 3) == plan(rep, 3)
    assert plan(rep, 3) != plan(rep, 4)


# --------------------------------------------------------------------------- config, summary


@pytest.mark.parametrize(
    "bad", [{"time_scale": 0}, {"rate": -1}, {"leads": -1}, {"duration_s": -1}, {"typo": 1}]
)
def test_config_fails_fast_on_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        SimulationConfig(**bad)


def test_summary_prints_counts_and_no_personal_data() -> None:
    summary = SimulationSummary(leads_planned=4)
    for record in generate_records(11, 200)[:4]:
        summary.count_sent(record)
    console = Console(record=True, width=120)
    console.print(summary)
    text = console.export_text()
    assert "leads sent" in text
    assert "4 of 4" in text
    assert "@" not in text
    assert "@" not in str(summary)


# --------------------------------------------------------------------------- roster

RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "rules.yaml"
ROSTER_AT = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_roster_lists_every_rep_and_manager_of_the_shipped_rules_with_addresses() -> None:
    rules = load_rules(RULES_FILE)
    roster = {e.rep_id: e for e in roster_from_rules(rules, at=ROSTER_AT)}

    for team in rules["teams"]:
        for rep in team["reps"]:
            entry = roster[rep["rep_id"]]
            # What assignment reads from the roster equals the file: decisions unchanged.
            assert entry.team_id == team["team_id"]
            assert entry.manager_id == team["manager_id"]
            assert entry.status.value == rep.get("status", "active")
            assert entry.capacity == rep.get("capacity", 100)
            assert entry.weight == rep.get("weight", 1)
            assert entry.timezone == team.get("timezone", "UTC")
        manager = roster[team["manager_id"]]
        # Reachable by the notifier, never given a lead by assignment.
        assert (manager.team_id, manager.status) == (team["team_id"], RepStatus.AWAY)
        assert (manager.capacity, manager.weight) == (0, 0)
    assert len(roster) == sum(len(t["reps"]) + 1 for t in rules["teams"])
    for person, entry in roster.items():
        assert entry.contacts == {"wecom_app": person, "email": f"{person}@demo.invalid"}
        assert entry.updated_at == ROSTER_AT
        # The contract's shape, as a consumer reads it.
        assert RepUpdated.model_validate_json(entry.model_dump_json()) == entry


def test_roster_is_deterministic_per_time_and_takes_the_file_defaults() -> None:
    rules = {
        "teams": [
            {"team_id": "north", "manager_id": "rep-a", "reps": [{"rep_id": "rep-a"}]},
            {"team_id": "south", "reps": [{"rep_id": "rep-b", "status": "left"}]},
        ]
    }
    roster = roster_from_rules(rules, at=ROSTER_AT, contacts={"email": "{rep_id}@x.invalid"})
    # A manager who is also a rep is listed once, as the rep.
    assert [(e.rep_id, e.status, e.capacity, e.weight, e.timezone) for e in roster] == [
        ("rep-a", RepStatus.ACTIVE, 100, 1, "UTC"),
        ("rep-b", RepStatus.LEFT, 100, 1, "UTC"),
    ]
    assert roster[1].contacts == {"email": "rep-b@x.invalid"}
    assert roster_from_rules(rules, at=ROSTER_AT) == roster_from_rules(rules, at=ROSTER_AT)
    later = roster_from_rules(rules, at=ROSTER_AT + timedelta(seconds=1))
    assert {e.event_id for e in later}.isdisjoint(e.event_id for e in roster)


def test_roster_refuses_a_rules_file_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match=r"teams\.0\.reps\.1\.rep_id"):
        roster_from_rules(
            {"teams": [{"team_id": "t", "reps": [{"rep_id": "a"}, {}]}]}, at=ROSTER_AT
        )
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: cannot read"):
        load_rules(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigFileError, match=r"list\.yaml: expected a mapping"):
        load_rules(tmp_path / "list.yaml")


def test_roster_is_off_unless_the_environment_names_a_rules_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ROSTER_ENV, raising=False)
    assert SimulationConfig().roster_file is None
    monkeypatch.setenv(ROSTER_ENV, "config/rules.yaml")
    assert SimulationConfig().roster_file == Path("config/rules.yaml")
    assert SimulationConfig(roster_file=None).roster_file is None


def test_summary_counts_the_roster_when_one_was_published() -> None:
    assert "roster" not in str(SimulationSummary())
    assert "roster entries published (crm.reps): 12" in str(SimulationSummary(roster_published=12))


# --------------------------------------------------------------------------- integration


def bootstrap() -> str:
    return os.environ.get("LEADLOOP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")


@pytest.fixture
async def kafka() -> AsyncIterator[KafkaSettings]:
    """Settings with a topic prefix of this test's own; its topics are deleted afterwards."""
    settings = KafkaSettings(
        bootstrap_servers=bootstrap(), topic_prefix=f"test-simulate-{uuid.uuid4().hex[:10]}."
    )
    created = await create_topics(settings)
    yield settings
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(created)
    finally:
        await admin.close()


async def read_topic(
    settings: KafkaSettings, name: str, expected: int, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        qualified(name, settings.topic_prefix),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while len(out) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out


@pytest.mark.integration
async def test_run_sends_the_generated_leads_to_the_prefixed_topic(kafka: KafkaSettings) -> None:
    cfg = SimulationConfig(leads=50, rate=0, seed=11, reps=False)
    with capture_logs() as logs:
        summary = await run(kafka, cfg)

    assert summary.sent == 50
    assert not summary.interrupted
    assert summary.malformed + summary.duplicates <= 50
    received = await read_topic(kafka, "leads.raw", expected=50)
    expected = generate_leads(11, 50)
    assert sorted((m.key or b"", m.value) for m in received) == sorted(
        (k or b"", v) for k, v in expected
    )
    # Logs carry counts, never the personal data that was sent.
    logged = json.dumps(logs, default=str)
    for lead in well_formed(generate_records(11, 50)):
        for personal in (lead.email, lead.phone, lead.name):
            assert personal is None or personal not in logged


def assignment(lead_id: str, owner_id: str) -> bytes:
    now = datetime.now(UTC)
    event = LeadAssigned(
        event_id=str(uuid.uuid4()),
        occurred_at=now,
        assignment_id=f"asg-{lead_id}",
        lead_id=lead_id,
        owner_id=owner_id,
        team_id="team-apac",
        rule_id="rule-default",
        rule_version="1",
        strategy=Strategy.ROUND_ROBIN,
        kind=AssignmentKind.INITIAL,
        reason="test",
        lead_occurred_at=now,
        assigned_at=now,
        priority=Priority.HOT,
    )
    return event.model_dump_json().encode()


@pytest.mark.integration
async def test_run_plays_the_reps_for_new_assignments(kafka: KafkaSettings) -> None:
    seed = 3
    owners = reps_with(Responsiveness.FAST, seed=seed, count=3)
    leads = [f"lead-{uuid.uuid4().hex[:8]}" for _ in owners]
    # A huge time scale plays whole plans (days of simulated time) in about a second.
    cfg = SimulationConfig(leads=0, seed=seed, reps=True, time_scale=200_000, duration_s=10)
    task = asyncio.create_task(run(kafka, cfg))
    await asyncio.sleep(3)  # the simulator reads assignments made after its start

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for lead_id, owner in zip(leads, owners, strict=True):
            await producer.send_and_wait(
                qualified("leads.assigned", kafka.topic_prefix),
                assignment(lead_id, owner),
                key=lead_id.encode(),
            )
    finally:
        await producer.stop()
    summary = await task

    assert summary.assignments_played == 3
    activities = await read_topic(kafka, "crm.activities", expected=summary.activities)
    changes = await read_topic(
        kafka, "crm.stage-changes", expected=sum(summary.stage_changes.values())
    )
    assert len(activities) == summary.activities >= 3
    assert {m.key for m in activities} == {lead.encode() for lead in leads}
    for message in activities:
        assert ActivityRecorded.model_validate_json(message.value).rep_id in owners
    contacted = [StageChanged.model_validate_json(m.value) for m in changes]
    assert {c.lead_id for c in contacted if c.stage is Stage.CONTACTED} == set(leads)


@pytest.mark.integration
async def test_cancelling_a_run_stops_it_and_still_returns_a_summary(
    kafka: KafkaSettings,
) -> None:
    cfg = SimulationConfig(leads=1000, rate=20, seed=5, reps=True)
    task = asyncio.create_task(run(kafka, cfg))
    await asyncio.sleep(2)
    task.cancel()
    summary = await task

    assert summary.interrupted
    assert 0 < summary.sent < 1000
    received = await read_topic(kafka, "leads.raw", expected=summary.sent, timeout_s=10)
    assert len(received) == summary.sent


@pytest.mark.integration
async def test_run_publishes_the_roster_first(kafka: KafkaSettings) -> None:
    cfg = SimulationConfig(leads=5, rate=0, seed=13, reps=False, roster_file=RULES_FILE)
    summary = await run(kafka, cfg)

    expected = {e.rep_id: e for e in roster_from_rules(load_rules(RULES_FILE), at=ROSTER_AT)}
    assert summary.roster_published == len(expected)
    received = await read_topic(kafka, "crm.reps", expected=len(expected))
    entries = {m.key: RepUpdated.model_validate_json(m.value) for m in received}
    assert set(entries) == {rep_id.encode() for rep_id in expected}
    for key, entry in entries.items():
        assert entry.contacts == expected[key.decode()].contacts
        assert entry.status == expected[key.decode()].status
