"""Helpers every benchmark under ``bench/`` shares: the real stack, isolation, processes,
and the description of the machine a figure was measured on.

Benchmarks run against the real Kafka broker and PostgreSQL server that ``make stack-up``
starts (``make bench`` does that and exports ``.state/env``). Each run gets its own topic
prefix and, when it needs one, its own freshly migrated database, so runs never see each
other's data and a leftover from an aborted run cannot flatter the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from leadloop.db import apply_migrations
from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings

__all__ = [
    "ROOT",
    "ChildProcess",
    "CpuMeter",
    "Stack",
    "delete_topics",
    "free_port",
    "fresh_database",
    "fresh_topics",
    "machine_info",
    "median",
    "unique_prefix",
    "wait_http_ok",
]

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("LEADLOOP_STATE_DIR", ROOT / ".state"))


@dataclass(frozen=True)
class Stack:
    """Where the running broker and database server are (``.state/env``)."""

    bootstrap: str
    admin_url: str

    @classmethod
    def from_env(cls) -> Stack:
        url = os.environ.get("DATABASE_URL")
        if not url:
            # Fail with the fix, not with a connection error three layers down.
            raise SystemExit(
                "DATABASE_URL is not set: run benchmarks with `make bench`, or start the "
                "stack with `make stack-up` and `. .state/env` first"
            )
        return cls(
            bootstrap=os.environ.get("LEADLOOP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            admin_url=url,
        )


def unique_prefix(bench: str) -> str:
    """A topic prefix no other run uses; the time part sorts leftovers by age."""
    return f"bench-{bench}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}."


@contextlib.asynccontextmanager
async def fresh_topics(stack: Stack, prefix: str) -> AsyncIterator[KafkaSettings]:
    """Every registered topic under ``prefix``, created from the registry (same partition
    counts and configs as production); deleted afterwards so runs do not fill the disk."""
    kafka = KafkaSettings(bootstrap_servers=stack.bootstrap, topic_prefix=prefix)
    await create_topics(kafka)
    try:
        yield kafka
    finally:
        await delete_topics(kafka)


async def delete_topics(kafka: KafkaSettings) -> list[str]:
    """Delete every topic whose name starts with the settings' prefix."""
    if not kafka.topic_prefix:
        # An empty prefix would match the production topics of a shared broker.
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(kafka.topic_prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_database(stack: Stack, bench: str) -> AsyncIterator[str]:
    """A new database migrated with the project's migrations; dropped afterwards.

    A fresh database per run keeps table and index sizes equal between runs: a table
    that already holds the previous run's leads makes every insert slower."""
    name = f"bench_{bench}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.admin_url)
    try:
        # The name is built here from a constant and a uuid, never from input.
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(stack.admin_url, name)
    try:
        await apply_migrations(url)
        yield url
    finally:
        admin = await asyncpg.connect(stack.admin_url)
        try:
            # FORCE: a service that did not stop must not keep the database alive.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ChildProcess:
    """A process the benchmark started, with its output in a log file.

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
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


async def wait_http_ok(url: str, *, child: ChildProcess) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log, if the child died.
    Callers bound the wait with ``asyncio.timeout``."""

    def status() -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                code: int = r.status
                return code
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0

    while True:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        if await asyncio.to_thread(status) == 200:
            return
        await asyncio.sleep(0.2)


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process, all its threads (``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _machine_busy_s() -> float:
    """CPU seconds all CPUs spent on anything but idle and I/O wait (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    # user..steal; guest time is already counted in user.
    return (sum(values[:8]) - idle - iowait) / _TICKS_PER_S


class CpuMeter:
    """Average CPU use, in cores, of some processes and of the whole machine over a window.

    On a shared 2-core machine this is what makes a figure interpretable: a contender at
    1.0 core is bound by its one Python thread; a machine near ``nproc`` busy cores was
    saturated (by the run or by a neighbour) and its figures are less trustworthy."""

    def __init__(self, **pids: int) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {"machine": _machine_busy_s()}
        for name, pid in self._pids.items():
            with contextlib.suppress(OSError):
                sample[name] = _process_cpu_s(pid)
        return sample

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._start = self._sample()

    def cores(self) -> dict[str, float]:
        """Average cores used since ``start``, per process name and ``machine``."""
        wall = time.perf_counter() - self._t0
        end = self._sample()
        return {
            name: round((end[name] - self._start[name]) / wall, 2)
            for name in self._start
            if name in end
        }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _kafka_version(stack: Stack) -> str:
    """The broker jar's version when the broker is the one ``make stack-up`` started;
    Kafka's protocol does not report a release version to clients."""
    ours = f"127.0.0.1:{os.environ.get('LEADLOOP_KAFKA_PORT', '19092')}"
    if stack.bootstrap != ours:
        return f"unknown (external broker {stack.bootstrap})"
    libs = Path(os.environ.get("LEADLOOP_KAFKA_LIBS", STATE / "kafka" / "libs"))
    for jar in sorted(libs.glob("kafka_2.13-*.jar")):
        match = re.fullmatch(r"kafka_2\.13-([0-9][0-9A-Za-z.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown"


def _git_revision() -> str:
    """HEAD, and for a dirty tree a hash of its diff, so two runs of the same uncommitted
    code can be told apart from runs of different uncommitted code. ``bench/`` itself is
    left out: the revision names the code under test, not the harness or its results."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout

    try:
        rev = git("rev-parse", "--short", "HEAD").decode().strip()
        diff = git("diff", "HEAD", "--", ".", ":(exclude)bench")
        untracked = git(
            "ls-files", "--others", "--exclude-standard", "-z", "--", ".", ":(exclude)bench"
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not diff and not untracked:
        return rev
    digest = hashlib.sha256(diff)
    for name in sorted(untracked.split(b"\0")):
        path = ROOT / name.decode()
        if name and path.is_file():
            digest.update(name + b"\0" + path.read_bytes())
    return f"{rev}+dirty:{digest.hexdigest()[:10]}"


async def machine_info(stack: Stack) -> dict[str, Any]:
    """What a reader needs to judge a figure: the hardware, the software, and how busy
    the machine was (it is shared, so the load average is part of the result)."""
    conn = await asyncpg.connect(stack.admin_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": _kafka_version(stack),
        "postgresql": pg_version,
        "git_revision": _git_revision(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
