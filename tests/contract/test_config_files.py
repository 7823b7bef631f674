"""Every shipped configuration file loads through its service's loader, and a service
refused by a configuration file says so the same way: ``<service>: <file>: <field>: …``
on stderr, exit status 2, before it connects to anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadloop.calendar import CalendarSet
from leadloop.config_file import load_yaml
from leadloop.simulate import load_rules as roster_rules
from leadloop.simulate import roster_from_rules
from leadloop_assignment.adapters.rules_file import load_calendars, load_rules
from leadloop_handoff.adapters.read_api import load_clients
from leadloop_handoff.adapters.targets import load_crm_file
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.adapters.vendor_hooks import load_inbound
from leadloop_ingest.domain.vendors.targets import Inbound
from leadloop_metrics.adapters.config import team_ids
from leadloop_notifier.adapters.channels import parse_channel_config
from leadloop_notifier.domain.config import NotifyConfig
from leadloop_sla_monitor.domain.ladder import PolicySet

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
SHIPPED = sorted([*CONFIG.glob("*.yaml"), *(CONFIG / "demo").glob("*.yaml")])


def _inbound(path: Path) -> None:
    # Its secrets are variables the file names; any long enough value will do here.
    targets = load_yaml(path, Inbound).targets.values()
    names = {n for t in targets for n in (t.secret_env, t.api_token_env) if n is not None}
    load_inbound(path, dict.fromkeys(names, "x" * 32))


def _rules(path: Path) -> None:
    load_rules(path, load_calendars(CONFIG / "calendars.yaml"))
    assert team_ids(path)
    assert roster_from_rules(roster_rules(path), at=datetime(2026, 1, 5, tzinfo=UTC))


def _calendars(path: Path) -> None:
    load_calendars(path)  # assignment's loader
    load_yaml(path, CalendarSet)  # sla-monitor's and the notifier's


def _notify(path: Path) -> None:
    for raw in load_yaml(path, NotifyConfig).channels.values():
        parse_channel_config(raw)


LOADERS: dict[str, Callable[[Path], object]] = {
    "api-clients.yaml": load_clients,
    "calendars.yaml": _calendars,
    "channels.yaml": load_channels,
    "crm-inbound.yaml": _inbound,
    "crm.yaml": load_crm_file,
    "notify.yaml": _notify,
    "rules.yaml": _rules,
    "sla.yaml": lambda path: load_yaml(path, PolicySet),
}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIG)))
def test_every_shipped_file_loads_through_its_services_loader(path: Path) -> None:
    assert path.name in LOADERS, f"{path}: no loader known for this file; add it here"
    LOADERS[path.name](path)


def test_there_are_shipped_files() -> None:
    assert {p.name for p in SHIPPED} == set(LOADERS)


# -- start-up refused -------------------------------------------------------------------

SECRET = "do-not-print-this-value-0123456789"

#: service -> (module, the variable naming its file, a file it refuses, what is named)
REFUSED = {
    "ingest": (
        "leadloop_ingest",
        "LEADLOOP_CHANNELS_FILE",
        f"channels:\n  web_form:\n    adapter: [{SECRET}]\n",
        "channels.web_form.adapter",
    ),
    "assignment": (
        "leadloop_assignment",
        "LEADLOOP_CALENDARS_FILE",
        f"- {SECRET}\n",
        "expected a mapping at the top level",
    ),
    "sla-monitor": (
        "leadloop_sla_monitor",
        "LEADLOOP_POLICIES_FILE",
        f"policies: [\n  {SECRET}\n",
        "invalid YAML at line 3",
    ),
    "metrics": (
        "leadloop_metrics",
        "LEADLOOP_RULES_FILE",
        f"teams: [{{name: {SECRET}}}]\n",
        "teams.0.team_id: Field required",
    ),
    "handoff": (
        "leadloop_handoff",
        "LEADLOOP_CRM_FILE",
        f"targets:\n  - name: a\n    kind: webhook\n    url: {SECRET}\n",
        "targets.0.webhook",
    ),
    "notifier": ("leadloop_notifier", "LEADLOOP_NOTIFY_FILE", "", "the file is empty"),
}


@pytest.mark.parametrize("service", sorted(REFUSED))
def test_a_service_refused_by_a_file_names_it_and_exits_2(tmp_path: Path, service: str) -> None:
    module, variable, text, field = REFUSED[service]
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        variable: str(path),
        # Valid settings that reach nothing: the file is refused before any connection.
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "LEADLOOP_IDENTITY_PEPPER": "p" * 32,
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }
    env.pop("LEADLOOP_TEAMS", None)  # metrics reads its teams from the rule file
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{service}: {path}: {field}"), done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr
