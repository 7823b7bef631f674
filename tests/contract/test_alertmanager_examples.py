"""deploy/alertmanager/examples/production.yml: the production paging example is a config
Alertmanager accepts, with the receivers it documents, routed as its comments say.

Checked with ``amtool`` (Debian package ``prometheus-alertmanager``, which ``make system``
installs); the field names are those of Alertmanager v0.34.0's docs/configuration.md as
summarised in the vendor reference (vendors-messaging.md §5). Without amtool these tests
fail rather than skip, like tests/contract/test_prometheus_config.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy/alertmanager/examples/production.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
BRIDGE = "http://127.0.0.1:18086/v1/alertmanager/"


def run_tool(tool: str, *args: str | Path) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not on PATH. Run `make system` (it installs the Debian package "
            "prometheus-alertmanager), or: apt-get install -y prometheus-alertmanager",
            pytrace=False,
        )
    result = subprocess.run(
        [path, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{tool} {' '.join(map(str, args))} failed:\n{result.stderr}"
    return result.stdout


def example() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return config


def receiver(name: str) -> dict[str, Any]:
    (found,) = (r for r in example()["receivers"] if r["name"] == name)
    return found


def routes(*labels: str) -> list[str]:
    output = run_tool("amtool", "config", "routes", "test", f"--config.file={EXAMPLE}", *labels)
    return output.strip().splitlines()[-1].split(",")


def test_amtool_accepts_the_example() -> None:
    run_tool("amtool", "check-config", EXAMPLE)


@pytest.mark.parametrize(
    ("configs", "needs"),
    [
        ("pagerduty_configs", [("routing_key", "routing_key_file")]),
        ("opsgenie_configs", [("api_key", "api_key_file")]),
        ("slack_configs", [("api_url", "api_url_file"), ("channel",)]),
        ("wechat_configs", [("corp_id",), ("agent_id",), ("api_secret",), ("to_party",)]),
    ],
)
def test_each_documented_receiver_carries_its_keys(
    configs: str, needs: list[tuple[str, ...]]
) -> None:
    found = [c for r in example()["receivers"] for c in r.get(configs, [])]
    assert found, f"no receiver with {configs}"
    for config in found:
        for either in needs:
            assert any(key in config for key in either), f"{configs} lacks {' or '.join(either)}"


def test_secrets_are_read_from_files_where_alertmanager_allows_it() -> None:
    assert "routing_key_file" in receiver("pagerduty-oncall")["pagerduty_configs"][0]
    assert "api_key_file" in receiver("opsgenie-enterprise")["opsgenie_configs"][0]
    assert "api_url_file" in receiver("slack-sales")["slack_configs"][0]


def test_dingtalk_and_feishu_go_through_the_notifiers_bridge() -> None:
    for name, channel in (("dingtalk-team-hz", "dingtalk"), ("feishu-team-sz", "feishu")):
        (hook,) = receiver(name)["webhook_configs"]
        assert hook["url"] == BRIDGE + channel


def test_nothing_posts_to_the_local_chat_sink() -> None:
    assert ":19095" not in EXAMPLE.read_text(encoding="utf-8")


def test_grouping_and_inhibition_match_the_local_config() -> None:
    local = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    assert example()["route"]["group_by"] == local["route"]["group_by"]
    assert example()["inhibit_rules"] == local["inhibit_rules"]


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["team=team-cn", "severity=page"], ["pagerduty-oncall", "wecom-team-cn"]),
        (["team=team-cn", "severity=warning"], ["wecom-team-cn"]),
        (["team=team-enterprise", "severity=page"], ["opsgenie-enterprise", "slack-sales"]),
        (["team=team-hz", "severity=warning"], ["dingtalk-team-hz"]),
        (["team=team-sz", "severity=page"], ["pagerduty-oncall", "feishu-team-sz"]),
        (["team=sales-ops", "severity=warning"], ["slack-sales"]),
        (["team=team-global", "severity=page"], ["pagerduty-oncall", "slack-sales"]),
    ],
)
def test_alerts_are_routed_as_documented(labels: list[str], receivers: list[str]) -> None:
    assert routes(*labels, "kind=first_response") == receivers
