"""`make up` is idempotent and `make down` leaves no process behind.

Runs a second, private stack (its own state folder, Kafka, PostgreSQL and ports) so the
stack the rest of the suite uses is not disturbed. The local stand-ins (chat sink, CRM
receiver, WeCom) are part of it: started once, answering ``GET /received``, stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.support.ports import free_port_base, free_ports
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e


def _make(target: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make {target} failed:\n{output}"
    return output


def _pids(state: Path) -> dict[str, int]:
    pids = {p.stem: int(p.read_text()) for p in (state / "run").glob("*.pid")}
    pids["kafka"] = int((state / "kafka" / "kafka.pid").read_text())
    pids["prometheus"] = int((state / "prometheus" / "prometheus.pid").read_text())
    pids["alertmanager"] = int((state / "alertmanager" / "alertmanager.pid").read_text())
    for standin in ("chat-sink", "crm-sink", "wecom-sink"):
        pids[standin] = int((state / "observe" / f"{standin}.pid").read_text())
    postmaster = state / "postgres" / "data" / "postmaster.pid"
    pids["postgres"] = int(postmaster.read_text().splitlines()[0])
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc tells it apart.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and str(os.getpid()) != proc.name:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def _exported(env_file: Path, name: str) -> str:
    for line in env_file.read_text().splitlines():
        if line.startswith(f"export {name}="):
            return line.split("=", 1)[1].strip("'")
    raise AssertionError(f"{name} is not in {env_file}")


def _resume(port: int, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/resume", method="POST")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_make_up_twice_runs_one_of_each_and_make_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LEADLOOP_") and k != "DATABASE_URL"
    }
    ports = free_ports(9)
    (
        kafka_port,
        controller_port,
        pg_port,
        prom_port,
        am_port,
        sink_port,
        crm_port,
        wecom_port,
        admin_port,
    ) = ports
    env.update(
        LEADLOOP_STATE_DIR=str(state),
        LEADLOOP_KAFKA_PORT=str(kafka_port),
        LEADLOOP_KAFKA_CONTROLLER_PORT=str(controller_port),
        LEADLOOP_PG_PORT=str(pg_port),
        LEADLOOP_PORT_BASE=str(free_port_base()),
        LEADLOOP_PROM_PORT=str(prom_port),
        LEADLOOP_AM_PORT=str(am_port),
        LEADLOOP_CHAT_SINK_PORT=str(sink_port),
        LEADLOOP_CRM_SINK_PORT=str(crm_port),
        LEADLOOP_WECOM_SINK_PORT=str(wecom_port),
        LEADLOOP_ADMIN__PORT=str(admin_port),
    )
    shared_jars = ROOT / ".state" / "kafka" / "libs"
    if (shared_jars / ".stamp").exists():
        env["LEADLOOP_KAFKA_LIBS"] = str(shared_jars)

    try:
        _make("up", env)
        first = _pids(state)
        assert set(first) == {
            "ingest",
            "assignment",
            "sla-monitor",
            "metrics",
            "handoff",
            "notifier",
            "kafka",
            "postgres",
            "prometheus",
            "alertmanager",
            "chat-sink",
            "crm-sink",
            "wecom-sink",
        }
        assert all(_alive(pid) for pid in first.values()), first
        for port in (sink_port, crm_port, wecom_port):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=5) as r:
                assert json.loads(r.read()) == []
        # The hand-off and the notifier were started on the stand-ins' configuration.
        for service, variable, name in (
            ("handoff", "LEADLOOP_CRM_FILE", "crm.yaml"),
            ("notifier", "LEADLOOP_NOTIFY_FILE", "notify.yaml"),
        ):
            environ = Path(f"/proc/{first[service]}/environ").read_bytes().split(b"\0")
            assert f"{variable}={state / 'observe' / name}".encode() in environ
        assert f"127.0.0.1:{crm_port}/hook" in (state / "observe" / "crm.yaml").read_text()
        assert f"127.0.0.1:{wecom_port}" in (state / "observe" / "notify.yaml").read_text()

        # An operator can resume a halted ingest: its admin listener runs, behind the
        # token generated into the state folder's env.
        token = _exported(state / "env", "LEADLOOP_DEMO_ADMIN_TOKEN")
        assert _resume(admin_port, None) == 401
        assert _resume(admin_port, "wrong-token-of-twenty-chars") == 401
        assert _resume(admin_port, token) == 409  # answered, and ingest is not halted

        again = _make("up", env)
        assert again.count("already running") >= 9, again
        assert _pids(state) == first, "a second make up must not start duplicates"
        assert len(_processes_mentioning(str(state / "kafka" / "server.properties"))) == 1
    finally:
        _make("down", env)

    # pg_ctl's -w returns once the pid file is gone; the postmaster may need a moment
    # more to exit (seconds more on a machine a neighbour keeps busy), so allow that
    # before calling anything left behind.
    deadline = time.monotonic() + 30
    left = {name: pid for name, pid in first.items() if _alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {name: pid for name, pid in left.items() if _alive(pid)}
    assert not left, f"still running after make down: {left}"
    assert not _processes_mentioning(str(state)), "a process still uses the state folder"
