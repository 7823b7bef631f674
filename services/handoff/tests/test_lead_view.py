"""The read API's view of a lead: owner, stage, timeline, clocks, and who sees contacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop_handoff.domain.lead_view import (
    ActivityRow,
    ClockRow,
    ContactRow,
    LeadRow,
    LeadRows,
    OwnershipRow,
    StageRow,
    current_stage,
    lead_view,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _lead(**kw: object) -> LeadRow:
    base: dict[str, object] = {
        "lead_id": "L1",
        "source": "web",
        "source_lead_id": "w-1",
        "score": 80,
        "priority": "hot",
        "is_returning": False,
        "previous_owner_id": None,
        "occurred_at": T0,
        "accepted_at": T0,
        "country": "CN",
        "city": "Shanghai",
        "contact": ContactRow(
            name="王伟", email="wei@example.com", phone="+8613800000000", attributes={"k": 1}
        ),
    }
    base.update(kw)
    return LeadRow(**base)  # type: ignore[arg-type]


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_no_lead_and_an_erased_lead_are_both_not_found() -> None:
    assert lead_view(None, contact=True) is None
    erased = LeadRows(lead=_lead(erased_at=_at(5), contact=ContactRow()))
    assert lead_view(erased, contact=True) is None
    assert lead_view(erased, contact=False) is None


def test_summary_has_no_contact_and_contact_view_has_it() -> None:
    rows = LeadRows(lead=_lead())
    summary = lead_view(rows, contact=False)
    assert summary is not None
    assert "contact" not in summary
    assert "wei@example.com" not in json.dumps(summary)
    full = lead_view(rows, contact=True)
    assert full is not None
    assert full["contact"] == {
        "name": "王伟",
        "email": "wei@example.com",
        "phone": "+8613800000000",
        "company": None,
        "title": None,
        "message": None,
        "attributes": {"k": 1},
    }
    assert full["routing"]["country"] == "CN"
    assert {k: v for k, v in full.items() if k != "contact"} == summary


def test_contact_view_of_rows_read_without_contact_is_a_bug() -> None:
    with pytest.raises(ValueError, match="without contact columns"):
        lead_view(LeadRows(lead=_lead(contact=None)), contact=True)


def test_owner_is_the_latest_ownership_change() -> None:
    rows = LeadRows(
        lead=_lead(),
        ownership=[
            OwnershipRow("e2", "rep-b", "reassigned", _at(10)),
            OwnershipRow("e1", "rep-a", "initial", _at(0)),
        ],
    )
    view = lead_view(rows, contact=False)
    assert view is not None
    assert (view["owner_id"], view["stage"]) == ("rep-b", "assigned")
    pooled = LeadRows(
        lead=_lead(), ownership=[*rows.ownership, OwnershipRow("e3", None, "pooled", _at(20))]
    )
    view = lead_view(pooled, contact=False)
    assert view is not None
    assert (view["owner_id"], view["stage"]) == (None, "new")


@pytest.mark.parametrize(
    ("activities", "stages", "owned", "expected"),
    [
        ([], [], False, "new"),
        ([], [], True, "assigned"),
        (["note"], [], True, "assigned"),
        (["call"], [], True, "contacted"),
        (["visit"], [], False, "contacted"),
        (["call"], [("qualified", 5), ("proposal", 9), ("contacted", 1)], True, "proposal"),
    ],
)
def test_stage(
    activities: list[str], stages: list[tuple[str, int]], owned: bool, expected: str
) -> None:
    rows = LeadRows(
        lead=_lead(),
        ownership=[OwnershipRow("o", "rep-a", "initial", T0)] if owned else [],
        activities=[ActivityRow(f"a{i}", "rep-a", k, _at(i)) for i, k in enumerate(activities)],
        stages=[StageRow(f"s{m}", s, _at(m), "rep-a") for s, m in stages],
    )
    assert current_stage(rows) == expected


def test_timeline_is_in_time_order_ownership_then_touch_then_stage_at_a_tie() -> None:
    rows = LeadRows(
        lead=_lead(),
        ownership=[
            OwnershipRow("o2", None, "pooled", _at(30)),
            OwnershipRow("o1", "rep-a", "initial", _at(0)),
        ],
        activities=[
            ActivityRow("a2", "rep-a", "email", _at(12)),
            ActivityRow("a1", "rep-a", "call", _at(0)),
        ],
        stages=[
            StageRow("s2", "lost", _at(25), "rep-a", loss_reason="no_budget"),
            StageRow("s1", "contacted", _at(0), "rep-a"),
        ],
    )
    view = lead_view(rows, contact=False)
    assert view is not None
    assert [(e["kind"], e["detail"], e["rep"]) for e in view["timeline"]] == [
        ("ownership", "initial", "rep-a"),
        ("activity", "call", "rep-a"),
        ("stage", "contacted", "rep-a"),
        ("activity", "email", "rep-a"),
        ("stage", "lost", "rep-a"),
        ("ownership", "pooled", None),
    ]
    assert view["timeline"][0]["at"] == T0.isoformat()
    assert view["timeline"][4]["loss_reason"] == "no_budget"
    assert view["stage"] == "lost"


def test_open_clocks_soonest_first_exhausted_last() -> None:
    rows = LeadRows(
        lead=_lead(),
        clocks=[
            ClockRow("stage_stall", "p2", "rep-a", "t1", T0, None, 4),
            ClockRow("follow_up", "p1", "rep-a", "t1", T0, _at(60), 2),
            ClockRow("first_response", "p0", "rep-a", "t1", T0, _at(5), 1),
        ],
    )
    view = lead_view(rows, contact=False)
    assert view is not None
    assert [(c["kind"], c["due_at"], c["next_level"]) for c in view["open_clocks"]] == [
        ("first_response", _at(5).isoformat(), 1),
        ("follow_up", _at(60).isoformat(), 2),
        ("stage_stall", None, 4),
    ]


# -- property: no personal data without the contact scope ----------------------------------------

MARK = "§"  # personal values carry it; nothing else can (ids are drawn without it)
ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
personal = st.text(max_size=20).map(lambda s: f"{MARK}{s}{MARK}")
times = st.integers(0, 10_000).map(lambda m: _at(m))
contacts = st.builds(
    ContactRow,
    name=personal,
    email=personal,
    phone=personal,
    company=personal,
    title=personal,
    message=personal,
    attributes=st.dictionaries(ids, personal, max_size=3),
)
leads = st.builds(
    LeadRow,
    lead_id=ids,
    source=ids,
    source_lead_id=ids,
    score=st.integers(0, 100),
    priority=st.sampled_from(["hot", "warm", "cold"]),
    is_returning=st.booleans(),
    previous_owner_id=st.none() | ids,
    occurred_at=times,
    accepted_at=times,
    country=st.none() | ids,
    campaign=st.none() | ids,
    contact=st.none() | contacts,
)
activity_kinds = st.sampled_from(["call", "email", "message", "meeting", "visit", "note"])
rows_strategy = st.builds(
    LeadRows,
    lead=leads,
    ownership=st.lists(st.builds(OwnershipRow, ids, st.none() | ids, ids, times), max_size=4),
    activities=st.lists(st.builds(ActivityRow, ids, ids, activity_kinds, times), max_size=6),
    stages=st.lists(st.builds(StageRow, ids, ids, times, ids), max_size=4),
    clocks=st.lists(
        st.builds(
            ClockRow, ids, ids, st.none() | ids, ids, times, st.none() | times, st.integers(1, 5)
        ),
        max_size=3,
    ),
)


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy)
def test_the_summary_never_carries_personal_data(rows: LeadRows) -> None:
    view = lead_view(rows, contact=False)
    assert view is not None
    assert "contact" not in view
    assert MARK not in json.dumps(view, ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy)
def test_the_timeline_is_sorted_and_complete(rows: LeadRows) -> None:
    view = lead_view(rows, contact=False)
    assert view is not None
    times_seen = [datetime.fromisoformat(e["at"]) for e in view["timeline"]]
    assert times_seen == sorted(times_seen)
    assert len(times_seen) == len(rows.ownership) + len(rows.activities) + len(rows.stages)
