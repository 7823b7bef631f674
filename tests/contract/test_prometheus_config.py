"""The Prometheus and Alertmanager configuration in deploy/ is what the real tools accept.

Checked with the tools themselves: ``promtool`` (Debian package ``prometheus``) and
``amtool`` (Debian package ``prometheus-alertmanager``), which ``make system`` installs.
Without them these tests fail rather than skip: a config nobody validated must not pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
PROMETHEUS_CONFIGS = [PROMETHEUS / "prometheus.yml", PROMETHEUS / "prometheus.compose.yml"]
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
DEBIAN_PACKAGE = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def run_tool(tool: str, *args: str | Path) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not on PATH. Run `make system` (it installs the Debian packages "
            f"prometheus and prometheus-alertmanager), or: "
            f"apt-get install -y {DEBIAN_PACKAGE[tool]}",
            pytrace=False,
        )
    result = subprocess.run(
        [path, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{tool} {' '.join(map(str, args))} failed:\n{output}"
    return output


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_promtool_accepts_the_prometheus_config(config: Path) -> None:
    output = run_tool("promtool", "check", "config", config)
    # rule_files is a glob: a config that matches no file is valid but alerts on nothing.
    assert f"{len(RULE_FILES)} rule files found" in output, output


def test_promtool_accepts_the_rules() -> None:
    assert RULE_FILES, "deploy/prometheus/rules/ holds the recording and alerting rules"
    run_tool("promtool", "check", "rules", *RULE_FILES)


def test_the_two_prometheus_configs_differ_only_in_their_targets() -> None:
    local, in_compose = (load(p) for p in PROMETHEUS_CONFIGS)

    def without_targets(config: dict[str, Any]) -> dict[str, Any]:
        for section in (config["scrape_configs"], config["alerting"]["alertmanagers"]):
            for job in section:
                for static in job["static_configs"]:
                    static["targets"] = ["..."]
        return config

    assert without_targets(local) == without_targets(in_compose)


def test_local_prometheus_scrapes_the_metrics_service_on_loopback() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert "127.0.0.1:18084" in targets
    assert config["rule_files"] == ["rules/*.yml"]


def test_every_alert_carries_the_labels_alertmanager_groups_by() -> None:
    group_by = set(load(ALERTMANAGER_CONFIG)["route"]["group_by"])
    assert group_by == {"team", "kind"}
    alerts = [
        rule
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert alerts
    for rule in alerts:
        missing = group_by - set(rule.get("labels", {}))
        assert not missing, f"alert {rule['alert']} lacks labels {sorted(missing)}"
        assert rule["labels"].get("severity") in ("warning", "page"), rule["alert"]
        assert rule.get("annotations", {}).get("summary"), f"alert {rule['alert']} has no summary"


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # web_form: 100 leads a minute, 20 of them rejected (20%).
      - series: 'leadloop_leads_received_total{{source="web_form"}}'
        values: '0+100x60'
      - series: 'leadloop_leads_rejected_total{{source="web_form", reason="invalid_email"}}'
        values: '0+20x60'
      # lead_ads: 100 a minute, 1 rejected (1%): below the threshold.
      - series: 'leadloop_leads_received_total{{source="lead_ads"}}'
        values: '0+100x60'
      - series: 'leadloop_leads_rejected_total{{source="lead_ads", reason="invalid_phone"}}'
        values: '0+1x60'
      # referral: 1 lead every 5 minutes, all rejected: too few leads to alert on.
      - series: 'leadloop_leads_received_total{{source="referral"}}'
        values: '0+0.2x60'
      - series: 'leadloop_leads_rejected_total{{source="referral", reason="missing_contact"}}'
        values: '0+0.2x60'
    promql_expr_test:
      - expr: round(leadloop:leads_received:rate5m * 60)
        eval_time: 30m
        exp_samples:
          - labels: '{{source="web_form"}}'
            value: 100
          - labels: '{{source="lead_ads"}}'
            value: 100
          - labels: '{{source="referral"}}'
            value: 0
      - expr: round(leadloop:leads_rejected:rate5m * 60)
        eval_time: 30m
        exp_samples:
          - labels: '{{source="web_form", reason="invalid_email"}}'
            value: 20
          - labels: '{{source="lead_ads", reason="invalid_phone"}}'
            value: 1
          - labels: '{{source="referral", reason="missing_contact"}}'
            value: 0
    alert_rule_test:
      # The ratio is high from minute 1, but the alert waits for its `for: 10m`.
      - eval_time: 8m
        alertname: LeadloopIngestRejectsHigh
        exp_alerts: []
      - eval_time: 30m
        alertname: LeadloopIngestRejectsHigh
        exp_alerts:
          - exp_labels:
              source: web_form
              severity: warning
              team: marketing-ops
              kind: ingest_rejects
            exp_annotations:
              summary: "Channel web_form rejects 20% of its leads"
              description: {description}
"""


def test_rules_record_and_alert_as_intended(tmp_path: Path) -> None:
    rules = PROMETHEUS / "rules/leadloop.yml"
    alert = next(
        rule
        for group in load(rules)["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "LeadloopIngestRejectsHigh"
    )
    description = alert["annotations"]["description"].replace("{{ $labels.source }}", "web_form")
    tests = tmp_path / "leadloop_test.yml"
    tests.write_text(
        # JSON strings are valid YAML scalars: safe quoting for a path and a paragraph.
        RULE_TESTS.format(rules=json.dumps(str(rules)), description=json.dumps(description)),
        encoding="utf-8",
    )
    run_tool("promtool", "test", "rules", tests)


def test_the_rule_unit_tests_pass() -> None:
    assert RULE_TESTS_FILES, "deploy/prometheus/tests/ holds promtool rule unit tests"
    output = run_tool("promtool", "test", "rules", *RULE_TESTS_FILES)
    assert "SUCCESS" in output, output


def test_every_rule_is_exercised_by_a_unit_test() -> None:
    # The committed unit tests and the ingest rules' test in this module.
    tested = "\n".join([RULE_TESTS, *(p.read_text(encoding="utf-8") for p in RULE_TESTS_FILES)])
    names = [
        rule.get("record") or rule["alert"]
        for path in RULE_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
    ]
    # A recording rule may be exercised through an alert built on it; its name then
    # appears in the rules, not the tests: accept either a test or a use by a tested alert.
    used = "\n".join(p.read_text(encoding="utf-8") for p in RULE_FILES)
    untested = [
        n
        for n in names
        if n not in tested and not (n.startswith("leadloop:") and used.count(n) > 1)
    ]
    assert not untested, f"rules without a promtool unit test: {untested}"


def test_prom_sh_is_valid_bash_with_the_documented_commands() -> None:
    script = PROMETHEUS / "prom.sh"
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    usage = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert usage.returncode == 2
    assert "start|stop|status" in usage.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    run_tool("amtool", "check-config", ALERTMANAGER_CONFIG)


def test_alerts_of_any_team_and_kind_reach_the_default_receiver() -> None:
    config = load(ALERTMANAGER_CONFIG)
    receiver = config["route"]["receiver"]
    labels = ["team=sales-east", "kind=first_response"]
    verify = [f"--config.file={ALERTMANAGER_CONFIG}", f"--verify.receivers={receiver}"]
    run_tool("amtool", "config", "routes", "test", *verify, *labels)
    (default,) = (r for r in config["receivers"] if r["name"] == receiver)
    assert all(w["url"].startswith("http://127.0.0.1:") for w in default["webhook_configs"])
