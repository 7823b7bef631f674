"""Templates: every kind renders in zh-CN and en; no phone or email ever; HTML escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from services.notifier.tests.factories import (
    CALENDARS,
    accepted,
    assigned,
    config,
    escalation,
    rep,
)

from leadloop_notifier.domain.fold import fold
from leadloop_notifier.domain.model import KINDS, View
from leadloop_notifier.domain.routing import plain_text
from leadloop_notifier.rendering import Renderer, TemplateError, _sample

NOW = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PHONE = re.compile(r"\+?\d[\d\s-]{7,}\d")


@pytest.mark.parametrize("template_set", ["zh-CN", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders(template_set: str, kind: str) -> None:
    message = Renderer().render(template_set, [_sample(kind)])
    assert message.subject
    assert message.text
    assert message.markdown
    assert message.html


def test_chinese_and_english_wording() -> None:
    zh = Renderer().render("zh-CN", [_sample("remind_owner")])
    en = Renderer().render("en", [_sample("remind_owner")])
    assert "跟进提醒" in zh.text
    assert "首次响应" in zh.text
    assert "Reminder" in en.text
    assert "first response" in en.text
    resolved = Renderer().render("en", [_sample("resolved")])
    assert "touched 12 min late" in resolved.text


def test_a_coalesced_batch_lists_every_notice() -> None:
    message = Renderer().render("en", [_sample("remind_owner"), _sample("new_lead")])
    assert message.subject == "2 leadloop notices"
    assert message.text.count("\n1. ") + message.text.count("\n2. ") == 2


def test_notices_built_from_events_carry_no_phone_or_email() -> None:
    # A roster entry carries addresses; the lead's contact data never reaches the notifier.
    events = [
        rep("rep-a", NOW, contacts={"wecom_app": "zhangsan", "email": "zhang@example.com"}),
        rep("mgr-1", NOW, manager=None, contacts={"email": "boss@example.com"}),
        accepted("L1", NOW, city="上海", industry="saas"),
        assigned("L1", "rep-a", NOW),
        escalation("L1", "rep-a", NOW),
    ]
    out = fold(events, View(), config(), CALENDARS, NOW)
    assert out.notices
    for notice in out.notices:
        for template_set in ("zh-CN", "en"):
            m = Renderer().render(template_set, [notice.payload])
            for body in (m.subject, m.text, m.markdown or "", m.html or ""):
                assert "@" not in body
                assert not PHONE.search(body.replace(NOW.strftime("%Y-%m-%d"), ""))
                assert "zhangsan" not in body


def test_lead_facts_from_web_forms_cannot_mention_everyone_or_hide_links() -> None:
    events = [
        rep("rep-a", NOW),
        accepted("L1", NOW, city="<@all> [点我](http://evil.example) **x**", product="crm_pro"),
        assigned("L1", "rep-a", NOW),
    ]
    [notice] = fold(events, View(), config(), CALENDARS, NOW).notices
    assert notice.payload["city"] == "all 点我 http //evil.example x"
    for template_set in ("zh-CN", "en"):
        m = Renderer().render(template_set, [notice.payload])
        for body in (m.text, m.markdown or ""):
            assert "<@" not in body
            assert "](" not in body
            assert "**x" not in body
    assert plain_text("  上海  浦东 ") == "上海 浦东"
    assert plain_text("crm_pro") == "crm pro"


def test_html_is_autoescaped_and_text_is_not_html() -> None:
    sample = {
        **_sample("alert"),
        "alerts": [{**_sample("alert")["alerts"][0], "summary": "<script>x</script>"}],
    }
    message = Renderer().render("en", [sample])
    assert "<script>" not in (message.html or "")
    assert "&lt;script&gt;" in (message.html or "")


def test_a_team_override_replaces_a_shipped_file_and_is_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "new_lead.txt").write_text("Hey, {{ lead_id }} is yours")
    message = Renderer(tmp_path).render("en", [_sample("new_lead")])
    assert message.text == "Hey, L-1 is yours"
    (tmp_path / "en" / "new_lead.txt").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        Renderer(tmp_path).render("en", [_sample("new_lead")])


def test_an_unknown_set_or_a_broken_template_fails_the_check(tmp_path: Path) -> None:
    with pytest.raises(TemplateError):
        Renderer(tmp_path).check("fr")
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "resolved.txt").write_text("{{ no_such_variable }}")
    with pytest.raises(TemplateError):
        Renderer(tmp_path).check("en")


@pytest.mark.parametrize("template_set", ["zh-CN", "en"])
def test_a_lead_name_shows_only_when_the_caller_passes_one(template_set: str) -> None:
    renderer = Renderer()
    lead_kinds = [k for k in KINDS if k not in ("digest", "alert", "review")]
    for kind in lead_kinds:
        plain = renderer.render(template_set, [_sample(kind)])
        named = renderer.render(template_set, [_sample(kind)], names={"L-1": "张三"})
        assert "张三" not in plain.text, kind
        assert "L-1 张三" in named.text, kind
        assert "L-1 张三" in (named.markdown or ""), kind
        other = renderer.render(template_set, [_sample(kind)], names={"L-9": "李四"})
        assert other.text == plain.text  # only the lead's own name
    # A coalesced batch: each line its own lead's name, a lead without one shows none.
    second = {**_sample("new_lead"), "lead_id": "L-2", "crm_link": "https://crm/L-2"}
    batch = renderer.render(template_set, [_sample("remind_owner"), second], names={"L-1": "张三"})
    assert "L-1 张三" in batch.text
    assert "L-2 张三" not in batch.text


def test_item_bytes_keeps_room_for_a_name() -> None:
    renderer = Renderer()
    base = renderer.item_bytes("en", _sample("new_lead"))
    assert base > 0
    assert renderer.item_bytes("en", _sample("new_lead"), name_bytes=257) == base + 257
