"""``deploy/services.sh`` judges a worker by its process state, not by ``kill -0`` alone:
a worker that was just killed is a zombie until its parent reaps it, and a zombie is
not running — ``status`` says stopped, ``wait`` fails at once, ``stop`` does not wait
30 s for it, and ``start`` would start it again.

Needs no stack: each test points the script at a state directory of its own, whose pid
file names a zombie child of the test (killed, not yet reaped), and at ports nothing
listens on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.ports import free_port_base

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "services.sh"


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def zombie() -> Iterator[int]:
    """A process killed by SIGKILL and not reaped: it answers kill -0 but is dead."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while state_of(child.pid) != "Z":
        assert time.monotonic() < deadline, "the child did not become a zombie"
        time.sleep(0.01)
    os.kill(child.pid, 0)  # what the old check looked at: it still "exists"
    yield child.pid
    child.wait()


@pytest.fixture
def state(tmp_path: Path, zombie: int) -> Path:
    (tmp_path / "run").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "run" / "ingest.pid").write_text(f"{zombie}\n")
    return tmp_path


def services_sh(state: Path, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "LEADLOOP_STATE_DIR": str(state),
        # Ports nothing listens on: /readyz can never answer.
        "LEADLOOP_PORT_BASE": str(free_port_base()),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_status_reports_a_zombie_as_stopped(state: Path) -> None:
    done = services_sh(state, "status", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "ingest: stopped" in done.stdout, done.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_wait_fails_at_once_on_a_zombie(state: Path) -> None:
    began = time.monotonic()
    done = services_sh(state, "wait", timeout=90)
    assert done.returncode == 1
    assert "ingest: exited" in done.stderr, done.stderr
    assert time.monotonic() - began < 20  # not the 60 s of waiting for /readyz


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_stop_does_not_wait_for_a_zombie(state: Path) -> None:
    began = time.monotonic()
    done = services_sh(state, "stop", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ingest: stopped" in done.stdout
    assert "forcing stop" not in done.stdout
    assert time.monotonic() - began < 10  # not the 30 s grace period
    assert not (state / "run" / "ingest.pid").exists()
