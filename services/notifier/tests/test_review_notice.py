"""The "review ready" notice: one per manager the roster names (per period), at the
manager's working hours, rendered in the team's language as a manager reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.notifier.tests.factories import CALENDARS, config, rep

from leadloop.events import ReviewKind, ReviewPublished
from leadloop_notifier.domain.fold import Input, fold
from leadloop_notifier.domain.model import HELD, Changes, View
from leadloop_notifier.rendering import Renderer

SH = ZoneInfo("Asia/Shanghai")
#: Monday 2026-12-07, 10:00 in Shanghai: working time.
MON_10 = datetime(2026, 12, 7, 10, 0, tzinfo=SH)
#: Sunday 2026-12-06, 08:05 in Shanghai: not.
SUN = datetime(2026, 12, 6, 8, 5, tzinfo=SH)


def published(team: str | None = None, at: datetime = MON_10) -> ReviewPublished:
    return ReviewPublished(
        event_id="rev-2026-11",
        occurred_at=at,
        period="2026-11",
        kind=ReviewKind.MONTH,
        team_id=team,
        period_start=datetime(2026, 11, 1, tzinfo=UTC),
        period_end=datetime(2026, 12, 1, tzinfo=UTC),
        published_at=at,
        where="reviews/review-2026-11.html, reviews/review-2026-11.md",
        leads=1284,
        won=97,
        won_amount=1835400.0,
        lost=412,
        suggestions=[
            "team-cn: rep rep-a followed up 62 % of 42 leads within SLA (9 late, 7 missed)"
            " — coach or rebalance their load",
            "team-cn: 14 owned leads silent — call, close or return them to the pool",
        ],
    )


def roster(at: datetime = MON_10) -> list[Input]:
    day = at - timedelta(days=1)
    return [
        rep("rep-a", day, manager="mgr-1"),
        rep("rep-b", day, manager="mgr-1"),
        rep("rep-e", day, team="team-en", manager="mgr-2", contacts={"email": "e@example.com"}),
        rep("mgr-1", day, manager=None, contacts={"wecom_app": "mgr1"}),
        rep("mgr-2", day, team="team-en", manager=None, contacts={"email": "m2@example.com"}),
        rep("rep-x", day, manager="mgr-gone", status="left"),
    ]


def run(events: list[Input], now: datetime = MON_10, view: View | None = None) -> Changes:
    return fold(events, view or View(), config(), CALENDARS, now.astimezone(UTC))


def test_every_manager_gets_one_notice_per_period() -> None:
    out = run([*roster(), published()])
    reviews = [n for n in out.notices if n.kind == "review"]
    assert [(n.recipient, n.channel, n.team_id) for n in reviews] == [
        ("mgr-1", "wecom_app", "team-cn"),
        ("mgr-2", "email", "team-en"),
    ]  # mgr-gone manages only a rep who left: not a manager any more
    assert {n.notice_key for n in reviews} == {"review:rev-2026-11"}
    assert all(n.lead_id is None for n in reviews)
    p = reviews[0].payload
    assert (p["period"], p["period_kind"], p["first_day"], p["last_day"]) == (
        "2026-11",
        "month",
        "2026-11-01",
        "2026-11-30",
    )
    assert (p["leads"], p["won"], p["won_amount"], p["lost"]) == (1284, 97, 1835400.0, 412)


def test_managers_come_from_the_stored_roster_too() -> None:
    view = View(
        reps={r.rep_id: r for r in []},
        managers={"mgr-1": ("team-cn",), "mgr-9": ("team-cn", "team-en")},
    )
    out = run([published()], view=view)
    # Neither has a roster entry of their own in the view: held until crm.reps names them.
    assert sorted((n.recipient, n.channel) for n in out.notices) == [
        ("mgr-1", HELD),
        ("mgr-9", HELD),
    ]


def test_a_team_report_goes_to_that_teams_managers_only() -> None:
    out = run([*roster(), published(team="team-en")])
    assert [n.recipient for n in out.notices if n.kind == "review"] == ["mgr-2"]


def test_it_waits_for_the_managers_working_hours() -> None:
    [notice] = [
        n for n in run([*roster(SUN), published(at=SUN)], SUN).notices if n.recipient == "mgr-1"
    ]
    assert notice.due_at > SUN
    assert notice.due_at.astimezone(SH).weekday() == 0  # Monday morning


def test_the_notice_reads_well_in_chinese_and_in_english() -> None:
    out = run([*roster(), published()])
    by = {n.recipient: n for n in out.notices}
    renderer = Renderer()
    zh = renderer.render("zh-CN", [by["mgr-1"].payload])
    assert zh.subject == "复盘报告 2026-11"
    assert zh.text.splitlines() == [
        "【复盘报告】2026-11 月度复盘已生成（2026-11-01 至 2026-11-30，全部团队）",
        "",
        "线索 1284 条，赢单 97 单，赢单金额 183.54 万，输单 412 单。",
        "改进建议（前 2 条）：",
        "1. team-cn: rep rep-a followed up 62 % of 42 leads within SLA (9 late, 7 missed)"
        " — coach or rebalance their load",
        "2. team-cn: 14 owned leads silent — call, close or return them to the pool",
        "报告文件：reviews/review-2026-11.html, reviews/review-2026-11.md",
    ]
    en = renderer.render("en", [by["mgr-2"].payload])
    assert en.subject == "Review ready: 2026-11"
    assert en.text.splitlines()[:4] == [
        "Review ready: month 2026-11 (2026-11-01 to 2026-11-30, all teams)",
        "",
        "1284 leads, 97 won (amount 1,835,400), 412 lost.",
        "Top suggestions:",
    ]
    assert en.text.endswith("Reports: reviews/review-2026-11.html, reviews/review-2026-11.md")
    assert "<br>" in (en.html or "")


def test_without_suggestions_it_says_so() -> None:
    quiet = published().model_copy(update={"suggestions": [], "won_amount": 5000.0})
    [notice, *_] = run([*roster(), quiet]).notices[-2:]
    zh = Renderer().render("zh-CN", [notice.payload]).text
    assert "赢单金额 5,000，" in zh
    assert "本期没有改进建议。" in zh
