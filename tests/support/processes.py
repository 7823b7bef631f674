"""Running leadloop services as real child processes with known pids.

What every service process of a test or a benchmark shares is said once here: the
command (``python -m <package>`` from the repository root), the environment on a run's
database and topics, the readiness probe (``GET /readyz`` answers 200) and the log's
tail. ``ServiceGroup`` drives services from blocking code (e2e and fault tests);
``tests.support.children`` drives them from an event loop (benchmarks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVICES = {
    "ingest": "leadloop_ingest",
    "assignment": "leadloop_assignment",
    "sla-monitor": "leadloop_sla_monitor",
    "metrics": "leadloop_metrics",
    "handoff": "leadloop_handoff",
    "notifier": "leadloop_notifier",
}
#: What ``start()`` without names starts: the pipe itself; the edges are started by name.
CORE = ("ingest", "assignment", "sla-monitor", "metrics")


def service_command(name: str) -> list[str]:
    """How a service runs, as in production: ``python -m <package>`` (cwd ``ROOT``)."""
    return [sys.executable, "-m", SERVICES[name]]


def http_status(url: str) -> int:
    """The status ``url`` answers with, 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            code: int = r.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def log_tail(path: Path, chars: int | None = 4000) -> str:
    """A child's log (its last ``chars`` characters; None for all of it)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return text if chars is None else text[-chars:]


@dataclass
class ServiceGroup:
    """The services, each a child process, on ports ``port_base + 1..6`` (by SERVICES order)."""

    env: dict[str, str]
    port_base: int
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.port_base + 1 + list(SERVICES).index(name)

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}{path}"

    def start(self, *names: str) -> None:
        for name in names or CORE:
            env = {**self.env, "LEADLOOP_HTTP__PORT": str(self.port(name))}
            log = (self.log_dir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                service_command(name),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, *names: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for name in names or tuple(self.procs):
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
                if http_status(self.url(name, "/readyz")) == 200:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not ready after {timeout}s:\n{self.log(name)}")
                time.sleep(0.3)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.procs[name].pid, sig)

    def stop(self, timeout: float = 30) -> dict[str, int]:
        """SIGTERM every service and wait; returns the exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes

    def log(self, name: str, tail: int | None = 4000) -> str:
        """The service's output (its last ``tail`` characters; None for all of it)."""
        return log_tail(self.log_dir / f"{name}.log", tail)


def run_env(
    database_url: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    data_dir: Path,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """A service's environment on a run's own database, topics and data directory: this
    process's environment (``.state/env``), then those, then ``extra``; otherwise the
    service's default settings (what a benchmark measures)."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LEADLOOP_KAFKA__TOPIC_PREFIX": topic_prefix,
        "LEADLOOP_DATA_DIR": str(data_dir),
        **extra,
    }


def service_env(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a test's services: ``run_env`` with batches flushed within
    50 ms (a test waits for a handful of records, not for a full batch) and a pepper of
    the test's own."""
    test = {
        "LEADLOOP_KAFKA__BATCH_WITHIN_S": "0.05",
        "LEADLOOP_IDENTITY_PEPPER": "test-pepper-" + topic_prefix,
    }
    return run_env(database_url, kafka_bootstrap, topic_prefix, data_dir, {**test, **extra})


def leadloop(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the ``leadloop`` command of this environment; its exit code and output."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "leadloop"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def deploy(script: str, command: str, env: dict[str, str], timeout: float = 180) -> str:
    """Run one of the project's deploy scripts (``deploy/kafka/kafka.sh start``, …) and
    return its output; a failure carries what the script printed."""
    done = subprocess.run(
        [str(ROOT / script), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{Path(script).name} {command}: {done.stdout}{done.stderr}"
    return done.stdout.strip()
