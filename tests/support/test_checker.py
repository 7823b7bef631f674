"""The independent checker's comparisons (``tests/support/checker.py``), on hand-made
inputs: no broker, no database, no process.

The fault scenarios under ``tests/faults/`` end with these comparisons, so each problem
the checker names must be reported here on an input built to have it — a checker that
cannot fail proves nothing.
"""

from __future__ import annotations

from collections import Counter

from tests.support.checker import (
    Assigned,
    Labels,
    Outcome,
    Published,
    Rejected,
    SeriesKey,
    Step,
    Stored,
    compare_assignment,
    compare_counters,
    compare_escalations,
    compare_ingest,
    expected_counters,
    parse_exposition,
)

# --- assignment: one first decision per lead, published as stored, fair rotation -------


def stored(lead: str, owner: str | None = "r1", team: str = "t1", kind: str = "initial") -> Stored:
    return Stored(lead_id=lead, kind=kind, owner_id=owner, team_id=team)


def published(
    lead: str, owner: str | None = "r1", team: str = "t1", kind: str = "initial", aid: str = ""
) -> Published:
    return Published(
        assignment_id=aid or f"a-{lead}", lead_id=lead, kind=kind, owner_id=owner, team_id=team
    )


def test_checker_finds_nothing_wrong_with_a_clean_run_and_its_redeliveries() -> None:
    report = compare_assignment(
        ["l1", "l2", "l2"],  # leads.accepted may carry a lead twice (producer retry)
        [stored("l1"), stored("l2", owner=None, kind="pooled")],
        [published("l1"), published("l1"), published("l2", owner=None, kind="pooled")],
    )
    assert report.problems == {}
    assert (report.accepted, report.stored, report.published) == (2, 2, 3)


def test_checker_reports_lost_duplicated_unpublished_and_unknown_leads() -> None:
    report = compare_assignment(
        ["l1", "l2", "l3"],
        [stored("l1"), stored("l1", owner="r2"), stored("l3"), stored("ghost")],
        [published("l1"), published("ghost")],
    )
    assert report.lost == ("l2",)
    assert report.duplicated == ("l1",)
    assert report.unpublished == ("l3",)
    assert report.unknown == ("ghost",)


def test_checker_reports_two_decisions_on_the_topic_and_disagreement_with_the_table() -> None:
    report = compare_assignment(
        ["l1", "l2", "l3"],
        [stored("l1"), stored("l2"), stored("l3")],
        [
            published("l1", aid="a"),
            published("l1", aid="b"),  # same owner, another assignment: two decisions
            published("l2", owner="r9"),  # not the owner PostgreSQL has
            published("l3"),
            published("l3", owner="r2", kind="reassigned"),  # a later move is not a conflict
        ],
    )
    assert report.conflicting == ("l1",)
    assert report.disagreeing == ("l2",)
    assert set(report.problems) == {"conflicting", "disagreeing"}


def test_checker_counts_rotation_per_rep_including_reps_who_got_nothing() -> None:
    roster = {"t1": ["r1", "r2", "r3"], "t2": ["r4"]}
    rows = [stored("l1", "r1"), stored("l2", "r2"), stored("l3", "r1"), stored("l4", "r1")]
    report = compare_assignment(["l1", "l2", "l3", "l4"], rows, [], roster=roster)
    assert report.fairness["t1"].counts == {"r1": 3, "r2": 1, "r3": 0}
    assert report.fairness["t1"].spread == 3
    assert report.fairness["t2"].spread == 0
    assert report.max_spread == 3
    assert "unfair t1" in report.summary()


def test_checker_reports_owners_outside_the_roster_and_leads_routed_to_another_team() -> None:
    report = compare_assignment(
        ["l1", "l2", "l3"],
        [stored("l1", "r1"), stored("l2", "r4"), stored("l3", "r2")],
        [],
        roster={"t1": ["r1", "r2"]},
        expected_team={"l1": "t1", "l2": "t1", "l3": "t2"},
    )
    assert report.misrouted == ("l2", "l3")


# --- the pipeline: ingest conservation, each ladder step once, exact counters -----------


def out(
    offset: int,
    outcome: str = "accepted",
    *,
    source: str = "web_form",
    lead: str | None = None,
    reason: str | None = None,
    event_id: str = "",
) -> Outcome:
    if outcome == "accepted" and lead is None:
        lead = f"l{offset}"
    return Outcome(0, offset, event_id or f"o{offset}", source, outcome, reason, lead)


def test_ingest_clean_run_with_redeliveries_has_no_problems_and_counts_per_source() -> None:
    stored = [
        out(0),
        out(1, "duplicate", lead="l0"),
        out(2, "rejected", source="wechat", reason="invalid_phone"),
    ]
    report = compare_ingest(
        raw=[(0, 0), (0, 1), (0, 2)],
        stored=stored,
        published=[*stored, stored[0]],  # a redelivered outcome event is the same event
        rejected=[Rejected(0, 2, "invalid_phone")],
        stored_leads={"l0": "acc-l0"},
        accepted=[("l0", "acc-l0"), ("l0", "acc-l0")],
    )
    assert report.problems == {}
    assert report.per_source == {
        "web_form": {"received": 2, "accepted": 1, "duplicate": 1},
        "wechat": {"received": 1, "rejected": 1},
    }


def test_ingest_reports_records_never_seen_unrecorded_and_unknown() -> None:
    report = compare_ingest(
        raw=[(0, 0), (0, 1), (0, 2)],
        stored=[out(0), out(9)],
        published=[out(0), out(1), out(9)],
        rejected=[],
        stored_leads={"l0": "a0", "l9": "a9"},
        accepted=[("l0", "a0"), ("l9", "a9")],
    )
    assert report.never_seen == ("0:2",)
    assert report.unrecorded == ("0:1",)
    assert report.unknown == ("0:9",)


def test_ingest_reports_a_record_with_two_outcomes_and_an_event_unlike_the_row() -> None:
    report = compare_ingest(
        raw=[(0, 0), (0, 1)],
        stored=[out(0), out(1, "duplicate", lead="l0")],
        published=[
            out(0),
            out(0, event_id="another"),  # a second outcome for one record
            out(1, "accepted", lead="l1"),  # the topic says accepted, the table duplicate
        ],
        rejected=[],
        stored_leads={"l0": "a0"},
        accepted=[("l0", "a0")],
    )
    assert report.duplicated == ("0:0",)
    assert report.disagreeing == ("0:0", "0:1")


def test_ingest_reports_missing_rejects_stray_rejects_and_unpublished_outcomes() -> None:
    report = compare_ingest(
        raw=[(0, 0), (0, 1), (0, 2)],
        stored=[
            out(0, "rejected", reason="invalid_json"),
            out(1, "duplicate", lead="lx"),
            out(2, "rejected", reason="too_large"),
        ],
        published=[out(0, "rejected", reason="invalid_json"), out(1, "duplicate", lead="lx")],
        rejected=[Rejected(0, 1, "invalid_json"), Rejected(0, 2, "invalid_email")],
        stored_leads={},
        accepted=[],
    )
    assert report.unpublished == ("0:2", "rejected 0:0")
    assert report.unknown == ("rejected 0:1", "rejected 0:2")


def test_ingest_reports_leads_published_twice_or_not_at_all_and_unbalanced_tables() -> None:
    report = compare_ingest(
        raw=[(0, 0), (0, 1)],
        stored=[out(0), out(1)],
        published=[out(0), out(1)],
        rejected=[],
        stored_leads={"l0": "a0", "l7": "a7"},
        accepted=[("l0", "a0"), ("l0", "a0-again"), ("l8", "a8")],
    )
    assert report.conflicting == ("l0",)
    assert report.unpublished == ("lead l7",)
    assert report.unknown == ("lead l8",)
    assert report.unbalanced == ("lead l1", "lead l7")


def step(esc: str, status: str = "firing", event_id: str = "", lead: str = "l1") -> Step:
    return Step(esc, status, event_id or f"{esc}-{status}", lead, 1, "remind_owner")


def test_escalations_each_step_once_redeliveries_and_resolutions_are_fine() -> None:
    stored = [step("e1"), step("e1", "resolved"), step("e2")]
    report = compare_escalations(stored, [*stored, step("e1")], accepted={"l1"})
    assert report.problems == {}
    assert (report.stored, report.published) == (3, 4)


def test_escalations_report_a_step_emitted_twice_unpublished_and_unknown_steps() -> None:
    report = compare_escalations(
        [step("e1"), step("e2"), step("e3", lead="ghost")],
        [
            step("e1"),
            step("e1", event_id="e1-again"),  # the same ladder step, a second time
            step("e3", lead="ghost"),
            step("e4"),
        ],
        accepted={"l1"},
    )
    assert report.duplicated == ("e1/firing",)
    assert report.disagreeing == ("e1/firing",)
    assert report.unpublished == ("e2/firing",)
    assert report.unknown == ("e3/firing", "e4/firing")


LABELS = Labels(
    sources=frozenset({"web_form", "wechat"}),
    teams=frozenset({"team-cn"}),
    reject_reasons=frozenset({"invalid_json"}),
    escalation_kinds=frozenset({"first_response"}),
)


def test_counters_truth_counts_each_event_once_and_bounds_labels() -> None:
    outcomes = [
        out(0),
        out(0),  # redelivered: the same event id
        out(1, "duplicate", source="partner_x", lead="l0"),
        out(2, "rejected", reason="invalid_json"),
        out(3, "rejected", reason="something_new"),
    ]
    assigned = [
        Assigned("a1", "team-cn", "round_robin", "initial"),
        Assigned("a1", "team-cn", "round_robin", "initial"),
        Assigned("a2", "team-zz", "pool", "pooled"),
    ]
    steps = [
        Step("e1", "firing", "f1", "l0", 7, "page_oncall"),
        Step("e1", "firing", "f1", "l0", 7, "page_oncall"),
        Step("e1", "resolved", "r1", "l0", 7, "page_oncall"),
    ]
    truth = expected_counters(
        outcomes, assigned, steps, {"e1": ("first_response", "team-cn")}, LABELS
    )

    def k(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    assert truth == Counter(
        {
            k("leadloop_leads_received_total", source="web_form"): 3,
            k("leadloop_leads_received_total", source="other"): 1,
            k("leadloop_leads_accepted_total", source="web_form"): 1,
            k("leadloop_leads_duplicate_total", source="other"): 1,
            k("leadloop_leads_rejected_total", source="web_form", reason="invalid_json"): 1,
            k("leadloop_leads_rejected_total", source="web_form", reason="other"): 1,
            k(
                "leadloop_leads_assigned_total",
                team="team-cn",
                strategy="round_robin",
                kind="initial",
            ): 1,
            k("leadloop_leads_assigned_total", team="other", strategy="pool", kind="pooled"): 1,
            k("leadloop_sla_breaches_total", kind="first_response", level="5", team="team-cn"): 1,
        }
    )


EXPOSITION = """\
# HELP leadloop_leads_received_total Records read from leads.raw.
# TYPE leadloop_leads_received_total counter
leadloop_leads_received_total{source="web_form"} 3.0
leadloop_leads_received_total{source="wechat"} 0.0
leadloop_leads_received_created{source="web_form"} 1.7e9
# HELP leadloop_leads_accepted_total Leads accepted.
# TYPE leadloop_leads_accepted_total counter
leadloop_leads_accepted_total{source="web_form"} 2.0
# HELP leadloop_funnel_open_leads Open leads per stage and team.
# TYPE leadloop_funnel_open_leads gauge
leadloop_funnel_open_leads{stage="new",team="team-cn"} 4.0
"""


def test_counters_compare_served_values_with_the_truth_absent_being_zero() -> None:
    served = parse_exposition(EXPOSITION)
    assert ("leadloop_leads_received_created", (("source", "web_form"),)) not in served
    truth: dict[SeriesKey, float] = {
        ("leadloop_leads_received_total", (("source", "web_form"),)): 3.0,
        ("leadloop_leads_accepted_total", (("source", "web_form"),)): 1.0,
        ("leadloop_leads_duplicate_total", (("source", "web_form"),)): 1.0,
    }
    diff = compare_counters(truth, served)
    assert diff == {
        ("leadloop_leads_accepted_total", (("source", "web_form"),)): (1.0, 2.0),
        ("leadloop_leads_duplicate_total", (("source", "web_form"),)): (1.0, 0.0),
    }, "a gauge outside the counters is not compared; a zero series equals an absent one"
    assert compare_counters(truth, {**served, **truth}) == {}
