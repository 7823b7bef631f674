"""Routing, quiet hours and node reminders: which event tells whom, where and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from services.notifier.tests.factories import (
    CALENDARS,
    accepted,
    assigned,
    config,
    escalation,
    rep,
    stage,
)

from leadloop.calendar import is_working
from leadloop.events import EscalationAction, EscalationKind, EscalationStatus
from leadloop_notifier.domain.alerts import alert_notice
from leadloop_notifier.domain.digest import digest_day, digest_notice
from leadloop_notifier.domain.fold import Input, fold
from leadloop_notifier.domain.model import HELD, Changes, OutboxRef, View
from leadloop_notifier.domain.routing import node_due, person_route, send_time

SH = ZoneInfo("Asia/Shanghai")
CN = CALENDARS.for_team("team-cn")
#: Monday 2025-03-03, 10:00 in Shanghai: working time.
MON_10 = datetime(2025, 3, 3, 10, 0, tzinfo=SH)


def run(events: list[Input], now: datetime = MON_10, view: View | None = None) -> Changes:
    return fold(events, view or View(), config(), CALENDARS, now.astimezone(UTC))


def roster(now: datetime = MON_10) -> list[Input]:
    return [
        rep("rep-a", now - timedelta(days=1)),
        rep("mgr-1", now - timedelta(days=1), manager=None, contacts={"email": "m@example.com"}),
    ]


def test_new_lead_goes_to_the_owner_on_their_first_channel() -> None:
    out = run([*roster(), accepted("L1", MON_10, city="上海"), assigned("L1", "rep-a", MON_10)])
    [notice] = out.notices
    assert (notice.recipient, notice.channel, notice.kind) == ("rep-a", "wecom_app", "new_lead")
    assert notice.payload["city"] == "上海"
    assert notice.payload["crm_link"] == "https://crm.example.com/l/L1"
    assert notice.due_at == MON_10
    assert notice.coalesce_s == 60


def test_pooled_lead_goes_to_the_team_chat() -> None:
    out = run([*roster(), assigned("L1", None, MON_10)])
    [notice] = out.notices
    assert (notice.recipient, notice.channel, notice.kind) == (
        "team:team-cn",
        "team_robot",
        "pooled_lead",
    )


def test_pooled_lead_without_a_team_chat_is_not_announced() -> None:
    out = run([*roster(), assigned("L1", None, MON_10, team="team-us")])
    assert out.notices == []


def test_escalation_steps_route_by_action() -> None:
    out = run(
        [
            *roster(),
            escalation("L1", "rep-a", MON_10),
            escalation(
                "L1",
                "rep-a",
                MON_10,
                kind=EscalationKind.RECLAIM_WARNING,
                escalation_id="warn",
            ),
            escalation("L1", "rep-a", MON_10, action=EscalationAction.NOTIFY_MANAGER, level=2),
            escalation("L1", "rep-a", MON_10, action=EscalationAction.RETURN_TO_POOL, level=3),
            escalation("L1", "rep-a", MON_10, action=EscalationAction.PAGE_ONCALL, level=4),
        ]
    )
    assert [(n.recipient, n.channel, n.kind) for n in out.notices] == [
        ("rep-a", "wecom_app", "remind_owner"),
        ("rep-a", "wecom_app", "reclaim_warning"),
        ("mgr-1", "email", "notify_manager"),
    ]
    # Every step is remembered (the digest's overdue list), paged or not.
    assert len(out.steps) == 5


def test_a_reemitted_step_is_not_notified_twice() -> None:
    first = run([*roster(), escalation("L1", "rep-a", MON_10)])
    view = View(reps=dict(first.reps), steps=dict(first.steps))
    again = run([escalation("L1", "rep-a", MON_10)], view=view)
    assert again.notices == []


def test_departed_reps_and_reps_without_addresses_get_nothing() -> None:
    out = run(
        [
            rep("gone", MON_10, status="left"),
            rep("mute", MON_10, contacts={"slack": "U1"}),  # slack is not in team-cn's order
            assigned("L1", "gone", MON_10),
            assigned("L2", "mute", MON_10),
        ]
    )
    assert out.notices == []


def test_a_notice_for_a_rep_not_in_the_roster_yet_is_held_until_they_are() -> None:
    first = run([assigned("L3", "new-hire", MON_10)])
    [held] = first.notices
    assert (held.recipient, held.channel) == ("new-hire", HELD)
    # The roster entry in a later batch releases it onto the rep's first channel.
    later = MON_10 + timedelta(minutes=5)
    view = View(held={"new-hire": [held]})
    out = run([rep("new-hire", later, contacts={"dingtalk": "tok"})], now=later, view=view)
    [routed] = out.notices
    assert (routed.notice_key, routed.channel, routed.due_at) == (
        held.notice_key,
        "dingtalk",
        later,
    )
    assert out.released == [held.key]
    # In the same batch, the held notice never reaches the outbox as held.
    both = run([assigned("L4", "hire-2", MON_10), rep("hire-2", MON_10)])
    assert [(n.recipient, n.channel) for n in both.notices] == [("hire-2", "wecom_app")]
    # A rep who turns out to have left gets nothing; the held row is dropped.
    gone = run(
        [rep("new-hire", later, status="left")], now=later, view=View(held={"new-hire": [held]})
    )
    assert gone.notices == []
    assert gone.released == [held.key]


def test_person_route_follows_the_team_order_among_known_addresses() -> None:
    team = config().team("team-cn")
    r = run([rep("r", MON_10, contacts={"email": "r@example.com", "dingtalk": "tok"})]).reps["r"]
    assert person_route(r, team) == ("dingtalk", ("email",))


def test_quiet_hours_a_reminder_at_three_waits_until_nine() -> None:
    three = datetime(2025, 3, 4, 3, 0, tzinfo=SH)  # Tuesday 03:00
    out = run([*roster(three), escalation("L1", "rep-a", three)], now=three)
    [notice] = out.notices
    assert notice.due_at == datetime(2025, 3, 4, 9, 0, tzinfo=SH)
    assert notice.origin_at == three  # latency is measured from the breach


def test_quiet_hours_skip_lunch_weekends_and_the_spring_festival() -> None:
    lunch = datetime(2025, 3, 3, 12, 30, tzinfo=SH)
    assert send_time(lunch, CN) == datetime(2025, 3, 3, 13, 0, tzinfo=SH)
    saturday = datetime(2025, 3, 8, 10, 0, tzinfo=SH)
    assert send_time(saturday, CN) == datetime(2025, 3, 10, 9, 0, tzinfo=SH)
    festival = datetime(2025, 1, 29, 10, 0, tzinfo=SH)
    assert send_time(festival, CN) == datetime(2025, 2, 5, 9, 0, tzinfo=SH)
    makeup_sunday = datetime(2025, 1, 26, 10, 0, tzinfo=SH)  # 调休: a working Sunday
    assert send_time(makeup_sunday, CN) == makeup_sunday
    assert send_time(datetime(2025, 3, 4, 3, 0, tzinfo=SH), CN, page=True) == datetime(
        2025, 3, 4, 3, 0, tzinfo=SH
    )


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2025, 12, 31)))
def test_every_notice_to_a_person_is_due_in_working_time(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    out = run([*roster(now), escalation("L1", "rep-a", now), assigned("L2", "rep-a", now)], now=now)
    assert len(out.notices) == 2
    for notice in out.notices:
        assert is_working(notice.due_at, CN)
        assert notice.due_at >= now
        assert notice.due_at - now < timedelta(days=10)  # the longest holiday is 8 days


def test_resolution_after_the_reminder_went_out_follows_up_to_the_same_person() -> None:
    firing = escalation("L1", "rep-a", MON_10, escalation_id="e1")
    first = run([*roster(), firing])
    [sent] = first.notices
    view = View(
        reps=dict(first.reps),
        steps=dict(first.steps),
        notified={
            "e1": [OutboxRef("rep-a", sent.channel, "sent", False, sent.fallbacks, "team-cn")]
        },
    )
    touched = MON_10 + timedelta(minutes=12)
    resolved = escalation(
        "L1",
        "rep-a",
        MON_10,
        escalation_id="e1",
        status=EscalationStatus.RESOLVED,
        occurred_at=touched,
    )
    out = run([resolved], now=touched, view=view)
    [notice] = out.notices
    assert (notice.notice_key, notice.recipient, notice.channel, notice.kind) == (
        "resolved:e1",
        "rep-a",
        "wecom_app",
        "resolved",
    )
    assert notice.payload["late_minutes"] == 12
    assert out.cancel_keys == []


def test_resolution_before_the_reminder_went_out_cancels_it() -> None:
    view = View(
        reps={},
        steps=dict(run([escalation("L1", "rep-a", MON_10, escalation_id="e1")]).steps),
        notified={"e1": [OutboxRef("rep-a", "wecom_app", "pending", False, (), "team-cn")]},
    )
    resolved = escalation(
        "L1", "rep-a", MON_10, escalation_id="e1", status=EscalationStatus.RESOLVED
    )
    out = run([resolved], view=view)
    assert out.notices == []
    assert out.cancel_keys == [("escalation:e1", "rep-a", "wecom_app")]


def test_fired_and_resolved_in_one_batch_sends_nothing() -> None:
    firing = escalation("L1", "rep-a", MON_10, escalation_id="e1")
    resolved = escalation(
        "L1", "rep-a", MON_10, escalation_id="e1", status=EscalationStatus.RESOLVED
    )
    out = run([*roster(), firing, resolved])
    assert out.notices == []
    assert out.steps["e1"].status == "resolved"


def test_resolution_of_a_step_nobody_was_told_about_says_nothing() -> None:
    resolved = escalation("L1", "rep-a", MON_10, status=EscalationStatus.RESOLVED)
    out = run([*roster(), resolved])
    assert out.notices == []
    assert out.cancel_keys == []


def test_node_reminders_due_times_on_the_team_calendar() -> None:
    reminders = {r.name: r for r in config().reminders}
    friday = datetime(2025, 3, 7, 15, 0, tzinfo=SH)
    # 2 business days after a Friday: Tuesday at the start of the working day.
    assert node_due(friday, reminders["proposal_followup"], CN) == datetime(
        2025, 3, 11, 9, 0, tzinfo=SH
    )
    # 8 business hours from Friday 15:00: 3 h Friday, 5 h Monday (lunch excluded) -> 15:00.
    assert node_due(friday, reminders["negotiation_followup"], CN) == datetime(
        2025, 3, 10, 15, 0, tzinfo=SH
    )
    # On entering: now, in working time.
    assert node_due(friday, reminders["qualify_confirm"], CN) == friday
    # Revisit 30 days after won, at the next working moment.
    won = datetime(2025, 3, 3, 16, 0, tzinfo=SH)  # + 30 days = Wednesday 2 April 16:00
    assert node_due(won, reminders["revisit"], CN) == datetime(2025, 4, 2, 16, 0, tzinfo=SH)


def test_node_reminders_are_made_for_the_owner_and_cancelled_when_the_lead_moves_on() -> None:
    t = datetime(2025, 3, 7, 15, 0, tzinfo=SH)
    out = run(
        [*roster(t), assigned("L1", "rep-a", t), stage("L1", "proposal", t)],
        now=t,
    )
    kinds = [(n.kind, n.payload.get("node")) for n in out.notices]
    assert kinds == [("new_lead", None), ("node_reminder", "proposal_followup")]
    assert out.notices[1].due_at == datetime(2025, 3, 11, 9, 0, tzinfo=SH)
    assert out.cancel_node_reminders == ["L1"]
    # Moving on within the same batch drops the reminder made earlier in the batch.
    later = run(
        [
            *roster(t),
            assigned("L1", "rep-a", t),
            stage("L1", "proposal", t),
            stage("L1", "won", t + timedelta(hours=1)),
        ],
        now=t,
    )
    assert [(n.kind, n.payload.get("node")) for n in later.notices] == [
        ("new_lead", None),
        ("node_reminder", "revisit"),
    ]


def test_an_older_assignment_arriving_late_changes_nothing() -> None:
    newer = assigned("L1", "rep-a", MON_10, sequence=2)
    older = assigned("L1", "mgr-1", MON_10, sequence=1)
    out = run([*roster(), newer, older])
    assert [n.recipient for n in out.notices] == ["rep-a"]
    assert out.leads["L1"].owner_id == "rep-a"


def test_digest_day_and_contents() -> None:
    r = run(roster()).reps["rep-a"]
    assert digest_day(r, CN, datetime(2025, 3, 3, 8, 59, tzinfo=SH)) is None
    assert digest_day(r, CN, datetime(2025, 3, 3, 9, 0, tzinfo=SH)) == MON_10.date()
    assert digest_day(r, CN, datetime(2025, 3, 8, 10, 0, tzinfo=SH)) is None  # Saturday
    assert digest_day(r, CN, datetime(2025, 3, 3, 18, 0, tzinfo=SH)) is None  # day over
    t = MON_10 - timedelta(days=3)
    state = run(
        [
            *roster(t),
            accepted("L1", t, city="北京"),
            assigned("L1", "rep-a", t),
            assigned("L2", "rep-a", t),
            stage("L2", "won", t),
            assigned("L3", "rep-a", t),
            escalation("L3", "rep-a", t),
        ],
        now=t,
    )
    open_leads = [le for le in state.leads.values() if le.stage not in ("won", "lost")]
    notice = digest_notice(
        r,
        MON_10.date(),
        open_leads,
        list(state.steps.values()),
        [("L1", MON_10 + timedelta(hours=2))],
        config(),
        CN,
        MON_10,
    )
    assert notice is not None
    assert notice.notice_key == "digest:rep-a:2025-03-03"
    assert [o["lead_id"] for o in notice.payload["open"]] == ["L1", "L3"]
    assert notice.payload["open"][0]["city"] == "北京"
    assert [o["lead_id"] for o in notice.payload["overdue"]] == ["L3"]
    assert notice.payload["due_today"] == [{"lead_id": "L1", "due": "2025-03-03 12:00"}]
    assert digest_notice(r, MON_10.date(), [], [], [], config(), CN, MON_10) is None


def test_alert_bridge_dedupe_key_and_no_quiet_hours() -> None:
    night = datetime(2025, 3, 4, 3, 0, tzinfo=UTC)
    body = {
        "groupKey": '{}:{alertname="LeadOverdue"}',
        "status": "firing",
        "alerts": [
            {"fingerprint": "b", "labels": {"alertname": "LeadOverdue", "lead_id": "L1"}},
            {"fingerprint": "a", "labels": {"alertname": "LeadOverdue", "lead_id": "L2"}},
        ],
    }
    first = alert_notice("oncall", "team_robot", body, night)
    reordered = alert_notice(
        "oncall", "team_robot", {**body, "alerts": body["alerts"][::-1]}, night
    )
    resolved = alert_notice("oncall", "team_robot", {**body, "status": "resolved"}, night)
    assert first.notice_key == reordered.notice_key != resolved.notice_key
    assert first.due_at == night
    assert first.coalesce_s == 0
    assert [a["lead_id"] for a in first.payload["alerts"]] == ["L1", "L2"]
