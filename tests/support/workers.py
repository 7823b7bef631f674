"""Assignment workers in one consumer group, as the fault tests run them: each its own
process, killed, frozen and restarted by the test."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.support.events import accepted
from tests.support.ports import free_port_base
from tests.support.processes import ServiceGroup
from tests.support.stack import stack_env

from leadloop.events import Priority
from leadloop.settings import KafkaSettings

__all__ = ["Workers", "accepted_record", "assignment_workers"]


@dataclass
class Workers:
    """Assignment workers in one consumer group, each its own ServiceGroup (own ports,
    data dir and log). A worker that exits without being killed by the test is a
    crash: it is recorded (exit code, last critical log line) and restarted, and the
    test fails."""

    env: dict[str, str]
    root: Path
    groups: dict[str, ServiceGroup] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    #: Exit codes of the last ``stop``.
    stopped: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, **env: str) -> None:
        log_dir = self.root / name
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "LEADLOOP_DATA_DIR": str(log_dir / "data"), **env}
        self.groups[name] = ServiceGroup(env=env, port_base=free_port_base(), log_dir=log_dir)
        self.groups[name].start("assignment")

    def wait_ready(self) -> None:
        for group in self.groups.values():
            group.wait_ready("assignment", timeout=120)

    def pid(self, name: str) -> int:
        return self.groups[name].procs["assignment"].pid

    def kill_and_restart(self, name: str) -> None:
        group = self.groups[name]
        group.signal("assignment", signal.SIGKILL)
        group.procs["assignment"].wait()
        group.start("assignment")

    def watch(self) -> None:
        """Record and restart crashed workers."""
        for name, group in self.groups.items():
            proc = group.procs["assignment"]
            if proc.poll() is not None:
                log = group.log("assignment", tail=None).splitlines()
                why = [line for line in log if '"level": "critical"' in line][-1:] or log[-20:]
                self.crashes.append(
                    f"{name} (pid {proc.pid}) exited {proc.returncode}: " + "\n".join(why)
                )
                group.start("assignment")

    def stop(self) -> dict[str, int]:
        """SIGTERM every worker (a paused one is woken first)."""
        for name, group in self.groups.items():
            if group.alive("assignment"):
                group.signal("assignment", signal.SIGCONT)
            self.stopped[name] = group.stop()["assignment"]
        return dict(self.stopped)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{group.log('assignment', tail=2000)}"
            for name, group in self.groups.items()
        )


@contextmanager
def assignment_workers(
    database_url: str, kafka: KafkaSettings, tmp_path: Path, rules: str, **extra: str
) -> Iterator[Workers]:
    """No worker yet (the test adds them) on ``rules`` (YAML text), with a one-second
    heartbeat; every worker is stopped on leaving."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    env = stack_env(
        database_url,
        kafka,
        tmp_path,
        LEADLOOP_RULES_FILE=str(path),
        BROKER_HEARTBEAT_INTERVAL="1",
        **extra,
    )
    w = Workers(env=env, root=tmp_path)
    try:
        yield w
    finally:
        w.stop()


def accepted_record(
    lead_id: str, i: int, at: datetime, *, campaign: str | None, score: int, priority: Priority
) -> tuple[bytes, bytes]:
    """The ``i``-th lead of a fault workload as a leads.accepted record (key, value)."""
    event = accepted(
        lead_id,
        at,
        event_id=f"accepted-{lead_id}",
        source="faults",
        source_lead_id=str(i),
        campaign=campaign,
        score=score,
        priority=priority,
    )
    return lead_id.encode(), event.model_dump_json().encode()
