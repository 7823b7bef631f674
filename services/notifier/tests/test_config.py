"""config/notify.yaml: the shipped file is valid; mistakes name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from services.notifier.tests.factories import CONFIG, ROOT

from leadloop.config_file import ConfigFileError, load_yaml
from leadloop_notifier.adapters.channels import parse_channel_config
from leadloop_notifier.domain.config import NotifyConfig
from leadloop_notifier.rendering import Renderer


def test_the_shipped_file_is_valid_and_its_template_sets_render() -> None:
    notify = load_yaml(ROOT / "config" / "notify.yaml", NotifyConfig)
    assert notify.team("team-cn").templates == "zh-CN"
    assert notify.team("unknown-team") == notify.default
    for team in (notify.default, *notify.teams.values()):
        Renderer(ROOT / "config" / "notify-templates").check(team.templates)


def shipped_example() -> dict[str, Any]:
    """The commented example at the end of config/notify.yaml, over the shipped file."""
    text = (ROOT / "config" / "notify.yaml").read_text(encoding="utf-8")
    block = text.split("# --- example", 1)[1].split("# --- end of example", 1)[0]
    lines = [line[2:] for line in block.splitlines()[1:] if line.startswith("#")]
    shipped = yaml.safe_load(text)
    return {**shipped, **yaml.safe_load("\n".join(lines))}


def test_the_shipped_example_is_valid_down_to_each_channel() -> None:
    notify = NotifyConfig.model_validate(shipped_example())
    kinds = {notify.kind_of(name) for name in notify.channels}
    assert {"wecom_app", "wecom_robot", "dingtalk_robot", "feishu_bot", "slack"} <= kinds
    for raw in notify.channels.values():
        parse_channel_config(raw)
    assert notify.team("team-cn").person_channels == ("wecom_app", "dingtalk_robot", "email")
    assert set(notify.alertmanager) == {"dingtalk", "feishu"}


def test_a_channel_used_but_not_configured_is_refused() -> None:
    bad = {**CONFIG, "default": {**CONFIG["default"], "person_channels": ["pigeon"]}}
    with pytest.raises(ValidationError, match="pigeon"):
        NotifyConfig.model_validate(bad)


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    bad = {**CONFIG, "default": {**CONFIG["default"], "crm_link": "crm.example.com"}}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigFileError) as caught:
        load_yaml(path, NotifyConfig)
    assert str(caught.value).startswith(f"{path}: default.crm_link: ")
    assert "crm.example.com" not in str(caught.value)


def test_a_reminder_takes_at_most_one_delay() -> None:
    bad = {
        **CONFIG,
        "reminders": [
            {"name": "x", "stage": "proposal", "after_days": 1, "after_business_days": 1}
        ],
    }
    with pytest.raises(ValidationError, match="at most one"):
        NotifyConfig.model_validate(bad)


def test_message_budgets_follow_the_channel_kind_and_format() -> None:
    notify = NotifyConfig.model_validate(
        {
            **CONFIG,
            "channels": {
                **CONFIG["channels"],
                "email": {"kind": "email"},
                "wecom_app": {"kind": "wecom_app", "msgtype": "text"},
            },
        }
    )
    assert notify.message_bytes("wecom_app") == 2048
    assert notify.message_bytes("team_robot") == 4096  # markdown, the default
    assert notify.message_bytes("email") > 10_000


def test_names_are_off_unless_a_team_opts_in() -> None:
    cfg = NotifyConfig.model_validate(
        {**CONFIG, "teams": {"named": {**CONFIG["default"], "include_name": True}}}
    )
    assert cfg.team("named").include_name
    assert not cfg.default.include_name
    assert not cfg.team("elsewhere").include_name
    with pytest.raises(ValidationError):
        NotifyConfig.model_validate(
            {**CONFIG, "default": {**CONFIG["default"], "include_name": "sometimes"}}
        )
