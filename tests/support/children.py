"""Child processes driven from an event loop (the benchmarks): a leadloop service, or any
other program, as a real process with its output in a log file.

The command, environment, readiness probe and log of a service are the ones
``tests.support.processes`` gives every service process; only the waiting is awaited
here instead of blocking, so that a benchmark's driver keeps producing and counting
while its contender starts and runs.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.ports import free_ports
from tests.support.processes import ROOT, SERVICES, http_status, log_tail, run_env, service_command

from leadloop.settings import KafkaSettings

__all__ = ["READY_TIMEOUT_S", "ChildProcess", "Service", "wait_http_ok"]

#: How long a child may take to say it is ready (a service's /readyz).
READY_TIMEOUT_S = 120


@dataclass
class ChildProcess:
    """A process started from the event loop, with its output in a log file.

    Services run as real processes, as in production, so that a benchmark measures
    their start-up-free steady state and not an in-process imitation."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    _log: IO[bytes]

    @classmethod
    async def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        stdout_pipe: bool = False,
    ) -> ChildProcess:
        log = log_path.open("ab")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
        )
        return cls(name=name, proc=proc, log_path=log_path, _log=log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def read_line(self) -> str:
        """The next line of a piped stdout (a child's readiness handshake)."""
        assert self.proc.stdout is not None, "started without stdout_pipe"
        return (await self.proc.stdout.readline()).decode().strip()

    async def stop(self, grace_s: float = 30) -> int:
        """SIGTERM (a graceful shutdown, as in production), SIGKILL after ``grace_s``."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_s):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        self._log.close()
        return code

    def log_tail(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)


async def wait_http_ok(url: str, *, child: ChildProcess) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log, if the child died.
    Callers bound the wait with ``asyncio.timeout``."""
    while True:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        if await asyncio.to_thread(http_status, url) == 200:
            return
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Service:
    """A leadloop service (a name in ``SERVICES``) on a run's database and topics, with
    its own HTTP port and data directory, then ``extra``: ``run_env``. ``name`` labels
    the process in messages. Start it again (a restart) with the same ``Service``: same
    port, same environment."""

    name: str
    service: str
    port: int
    env: dict[str, str]

    @classmethod
    def on(
        cls,
        service: str,
        kafka: KafkaSettings,
        *,
        db_url: str,
        data_dir: Path,
        extra: Mapping[str, str],
        name: str = "leadloop",
    ) -> Service:
        [port] = free_ports(1)
        env = run_env(
            db_url,
            kafka.bootstrap_servers,
            kafka.topic_prefix,
            data_dir,
            {"LEADLOOP_HTTP__PORT": str(port), **extra},
        )
        return cls(name=name, service=service, port=port, env=env)

    async def start(self, log_path: Path, *, label: str | None = None) -> ChildProcess:
        """The service as a child process; ``label`` names it on stderr with its pid."""
        child = await ChildProcess.start(
            self.name, service_command(self.service), env=self.env, log_path=log_path
        )
        if label is not None:
            print(f"  {label}: {SERVICES[self.service]} pid {child.pid}", file=sys.stderr)
        return child

    async def ready(self, child: ChildProcess, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until ``GET /readyz`` answers 200: PostgreSQL reachable, partitions assigned,
        caught up. A service that is not ready in time fails the run, with its log."""
        try:
            async with asyncio.timeout(timeout_s):
                await wait_http_ok(f"http://127.0.0.1:{self.port}/readyz", child=child)
        except TimeoutError:
            raise RuntimeError(
                f"{child.name} not ready after {timeout_s:.0f} s:\n{child.log_tail()}"
            ) from None
