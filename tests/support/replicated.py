"""A private primary and its streaming standby on loopback, from deploy/postgres/pg.sh
(``start``, ``standby start|promote|rejoin|stop``), under a state folder and on ports of
their own: killing the primary touches no other test's database and never the stack's.

The failover test (``tests/faults/test_postgres_failover.py``) and the RPO measurement
(``bench/postgres_failover_rpo.py``) both run their clusters from here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.ports import free_ports
from tests.support.processes import ROOT

__all__ = ["Replicated", "replicated"]

PG = "deploy/postgres/pg.sh"


@dataclass(frozen=True)
class Replicated:
    """Where the two servers are and how to drive them."""

    env: dict[str, str]
    state: Path
    primary_port: int
    standby_port: int

    def run(self, *command: str) -> str:
        """``pg.sh COMMAND...`` on these clusters; its output, or a failure with it."""
        done = subprocess.run(
            [str(ROOT / PG), *command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"pg.sh {' '.join(command)}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    @property
    def primary_url(self) -> str:
        """The primary alone (the migrations and the RPO's writers use it)."""
        return self.run("url")

    @property
    def url(self) -> str:
        """Both servers, ``target_session_attrs=read-write``: what a service is given."""
        return self.run("standby", "url")

    def url_of(self, port: int) -> str:
        """One server of the two, by port (an independent look, no host selection)."""
        return self.primary_url.replace(f":{self.primary_port}/", f":{port}/")

    @property
    def data(self) -> Path:
        return self.state / "postgres" / "data"

    def primary_processes(self) -> list[int]:
        """The primary's postmaster and every process it forked."""
        pm = int((self.data / "postmaster.pid").read_text().split()[0])
        found = [pm]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pm:
                found.append(int(stat.parent.name))
        return found

    def kill_primary(self, within: float = 30) -> None:
        """SIGKILL of the primary's postmaster; returns once its orphaned backends have
        noticed and exited too (nothing of it answers any more)."""
        pids = self.primary_processes()
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + within
        while any(map(_alive, pids)):
            assert time.monotonic() < deadline, "the killed primary's processes linger"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: it holds no socket and no shared memory.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@contextlib.contextmanager
def replicated(state: Path, mode: Literal["sync", "async"]) -> Iterator[Replicated]:
    """A primary and a streaming standby (``sync``: a commit is acknowledged once the
    standby has flushed it), both stopped again on leaving."""
    primary_port, standby_port = free_ports(2)
    # Without DATABASE_URL pg.sh manages the clusters under LEADLOOP_STATE_DIR itself.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {
        "LEADLOOP_STATE_DIR": str(state),
        "LEADLOOP_PG_PORT": str(primary_port),
        "LEADLOOP_PG_STANDBY_PORT": str(standby_port),
    }
    pg = Replicated(env=env, state=state, primary_port=primary_port, standby_port=standby_port)
    try:
        pg.run("start")
        pg.run("standby", "start", mode)
        yield pg
    finally:
        for command in (["standby", "stop"], ["stop"]):
            subprocess.run(
                [str(ROOT / PG), *command], env=env, capture_output=True, timeout=120, check=False
            )
