"""deploy/alertmanager/alertmanager.yml: each team's pages reach the chat sink with its
chat tool's template (team-cn WeCom, every other team Slack), checked by Alertmanager's
own route tester (amtool, from Debian's prometheus-alertmanager)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from tests.fakes.chat_sink import STYLES

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "alertmanager" / "alertmanager.yml"


def _amtool(*args: str) -> str:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip(reason="amtool is not installed (deploy/system.sh installs it)")
    done = subprocess.run([amtool, *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_the_config_is_valid_for_alertmanager() -> None:
    _amtool("check-config", str(CONFIG))


@pytest.mark.parametrize(
    ("team", "receiver"),
    [("team-cn", "chat-wecom"), ("team-global", "chat-slack"), ("team-00", "chat-slack")],
)
def test_pages_are_routed_by_team_to_their_chat_template(team: str, receiver: str) -> None:
    routed = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "alertname=LeadSlaEscalation",
        f"team={team}",
        "kind=first_response",
    )
    assert routed == receiver


def test_every_receiver_names_a_style_the_sink_renders() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    styles = {}
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        url = urlsplit(hook["url"])
        assert url.path == "/alerts"
        (style,) = parse_qs(url.query)["style"]
        styles[receiver["name"]] = style
    assert set(styles.values()) <= set(STYLES)
    assert styles["chat-wecom"] == "wecom"
    assert styles[config["route"]["receiver"]] == "slack"
