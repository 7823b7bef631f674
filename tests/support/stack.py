"""A test's services on its own database and topic prefix: the environment, and the
services started, ready, and stopped again at the end (e2e and faults)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port_base
from tests.support.processes import ROOT, ServiceGroup, service_env

from leadloop.settings import KafkaSettings

__all__ = ["metric_totals", "reconcile_metrics", "running", "sla_monitor", "stack_env"]


def stack_env(
    database_url: str, kafka: KafkaSettings, scratch: Path, **extra: str
) -> dict[str, str]:
    """``service_env`` for the test's database and topics, data under ``scratch/data``."""
    return service_env(
        database_url, kafka.bootstrap_servers, kafka.topic_prefix, scratch / "data", **extra
    )


@contextmanager
def running(
    env: dict[str, str],
    log_dir: Path,
    *names: str,
    ready_timeout: float = 90,
    clean_exit: bool = True,
) -> Iterator[ServiceGroup]:
    """``names`` (all four when none) started and ready; stopped on leaving, and then,
    with ``clean_exit``, every one of them must have exited 0."""
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=log_dir)
    group.start(*names)
    try:
        group.wait_ready(*names, timeout=ready_timeout)
        yield group
    finally:
        codes = group.stop()
    if clean_exit:
        unclean = [name for name, code in codes.items() if code != 0]
        logs = "".join(f"\n--- {name}\n{group.log(name)}" for name in unclean)
        assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}{logs}"


@contextmanager
def sla_monitor(
    database_url: str,
    kafka: KafkaSettings,
    tmp_path: Path,
    policy: str,
    *,
    tick: str = "0.1",
    ready_timeout: float = 90,
    **extra: str,
) -> Iterator[ServiceGroup]:
    """The sla-monitor alone on ``policy`` (YAML text), ticking every ``tick`` seconds;
    it must exit 0 when stopped."""
    path = tmp_path / "sla.yaml"
    path.write_text(policy)
    env = stack_env(
        database_url,
        kafka,
        tmp_path,
        LEADLOOP_POLICIES_FILE=str(path),
        LEADLOOP_TICK_SECONDS=tick,
        **extra,
    )
    with running(env, tmp_path, "sla-monitor", ready_timeout=ready_timeout) as group:
        yield group


def metric_totals(group: ServiceGroup) -> dict[str, float]:
    """The metrics service's /metrics: each metric's samples summed over its labels."""
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def reconcile_metrics(
    group: ServiceGroup, env: dict[str, str], within: float
) -> subprocess.CompletedProcess[str]:
    """``leadloop_metrics.tools reconcile`` (the stored facts replayed and compared with
    what the group's metrics service serves), run with ``env``, for ``within`` seconds at most."""
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "leadloop_metrics.tools",
            "reconcile",
            "--url",
            group.url("metrics", "/metrics"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )
