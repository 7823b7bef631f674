"""The whole loop on a 3-node KRaft cluster, with the broker faults replication is for.

A cluster of the file's own (``deploy/kafka/kafka.sh start-cluster``: three nodes on
loopback, each broker and controller, its own ports and data under a temporary folder;
stopped after the last test) carries every topic with replication factor 3 and
min.insync.replicas 2, created by ``leadloop topics create``. The four services run as
processes against all three bootstrap addresses under simulated traffic (the machinery
of ``test_pipeline_faults.py``), and while the traffic still flows:

- leader change: the node leading the most partitions of ``leads.raw`` and
  ``leads.accepted`` is shut down cleanly (its leaderships move first), started again,
  and a preferred leader election gives it its partitions back;
- ``kill -9`` of the node leading the most of those partitions, restarted once the
  pipeline made progress on the other two;
- ``kill -9`` of the active controller (the KRaft quorum's leader), restarted once
  another node leads the quorum and the pipeline made progress.

Leaders are read with the Admin API (``DescribeTopics``), the controller with
``DescribeQuorum`` (``kafka.sh controller``). Every scenario ends with the independent
checker (``tests/support/checker.py``): zero lost, zero duplicated effects, exact
counters; and no worker may exit or be restarted.

Size: ``LEADLOOP_FAULT_SCALE`` leads per scenario (default 3,000; ``make soak`` raises it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from tests.faults.test_pipeline_faults import (
    Pipeline,
    assert_clean,
    at_least,
    count,
    decisions,
    finish,
    outcomes,
    pids_of,
    pipelines,  # noqa: F401 - the fixture, used by name
    simulate,
    started_pipeline,
    until,
)
from tests.support.ports import free_port_base
from tests.support.processes import ROOT, leadloop

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "3000"))
NODES = (1, 2, 3)
#: The topics whose partition leaders the faults aim at: the busiest ones.
BUSY = ("leads.raw", "leads.accepted")
#: A fault waits for this share of the run to be worked while a node is down.
PROGRESS = 0.1
#: Per-test limit: the cluster's start, the fault, the restart and the catching up on top
#: of the pipeline's run; grows with a soak's size.
TIMEOUT = 420 + SCALE // 20
FIRST_DECISIONS = "SELECT count(*) FROM assignments WHERE kind IN ('initial', 'pooled')"


@dataclass
class Cluster:
    """The three nodes of ``kafka.sh start-cluster`` in ``dir``; node N's client port is
    ``base + N - 1``."""

    dir: Path
    base: int
    env: dict[str, str]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(ROOT / "deploy/kafka/kafka.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"kafka.sh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    def address(self, node: int) -> str:
        return f"127.0.0.1:{self.base + node - 1}"

    def bootstrap(self, nodes: tuple[int, ...] = NODES) -> str:
        return ",".join(self.address(n) for n in nodes)

    def controller(self) -> int:
        return int(self.run("controller", str(self.dir)).splitlines()[-1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("kafka-cluster")
    shared = Path(os.environ.get("LEADLOOP_STATE_DIR", ROOT / ".state"))
    # free_port_base() leaves base+1 .. base+6 free: three client, three controller ports.
    base = free_port_base() + 1
    env = {
        **os.environ,
        "LEADLOOP_STATE_DIR": str(state / "state"),
        "LEADLOOP_KAFKA_LIBS": str(shared / "kafka" / "libs"),
    }
    c = Cluster(dir=state / "cluster", base=base, env=env)
    c.run("start-cluster", str(c.dir), str(base))
    try:
        yield c
    finally:
        c.run("stop-cluster", str(c.dir))


@pytest.fixture
async def cluster_kafka(cluster: Cluster, topic_prefix: str) -> KafkaSettings:
    """Every node up (a test that failed may have left one down) and the registry's
    topics created on the cluster with ``leadloop topics create``: replication factor 3,
    min.insync.replicas 2."""
    await asyncio.to_thread(cluster.run, "start-cluster", str(cluster.dir), str(cluster.base))
    kafka = KafkaSettings(bootstrap_servers=cluster.bootstrap(), topic_prefix=topic_prefix)
    env = {
        **os.environ,
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LEADLOOP_KAFKA__TOPIC_PREFIX": topic_prefix,
    }
    done = await asyncio.to_thread(
        leadloop,
        "topics",
        "create",
        "--replication-factor",
        "3",
        "--min-insync-replicas",
        "2",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parts = await partitions(kafka.bootstrap_servers, kafka)
    assert parts, "no partitions described"
    assert all(len(replicas) == 3 == len(isr) for _, replicas, isr in parts.values()), parts
    return kafka


#: (topic, partition) → (leader, replicas, in-sync replicas)
Partitions = dict[tuple[str, int], tuple[int, list[int], list[int]]]


async def partitions(bootstrap: str, kafka: KafkaSettings) -> Partitions:
    """The partitions of the busy topics as the cluster describes them, asked through
    ``bootstrap`` (the nodes that are up)."""
    names = [qualified(t, kafka.topic_prefix) for t in BUSY]
    for attempt in range(20):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            return {
                (d["topic"], p["partition"]): (p["leader"], list(p["replicas"]), list(p["isr"]))
                for d in await admin.describe_topics(names)
                for p in d["partitions"]
            }
        except KafkaError:
            # The client asks a node of the metadata it holds, which may name the node
            # just killed until the controller fenced it: ask again.
            if attempt == 19:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def led(parts: Partitions) -> Counter[int]:
    return Counter(leader for leader, _, _ in parts.values())


async def busiest(cluster: Cluster, kafka: KafkaSettings) -> tuple[int, int]:
    """The node leading the most partitions of the busy topics, and how many."""
    counts = led(await partitions(cluster.bootstrap(), kafka))
    node, n = max(sorted(counts.items()), key=lambda item: item[1])
    return node, n


async def led_by(cluster: Cluster, kafka: KafkaSettings, node: int, live: tuple[int, ...]) -> int:
    """How many partitions of the busy topics ``node`` leads, asked of the ``live`` nodes."""
    return led(await partitions(cluster.bootstrap(live), kafka))[node]


async def all_in_sync(cluster: Cluster, kafka: KafkaSettings) -> bool:
    parts = await partitions(cluster.bootstrap(), kafka)
    return bool(parts) and all(len(isr) == 3 for _, _, isr in parts.values())


async def progressed(p: Pipeline, at: tuple[int, int]) -> None:
    """Outcomes and first decisions grew by ``PROGRESS`` of the run since ``at`` (both
    counted in PostgreSQL): the pipeline works while the fault lasts."""
    await at_least(p, "outcomes", outcomes(p), min(at[0] + SCALE * PROGRESS, SCALE))
    # About nine leads in ten are accepted (the rest are duplicates and rejects).
    await at_least(
        p, "first decisions", decisions(p), min(at[1] + SCALE * PROGRESS / 2, SCALE * 0.8)
    )


async def counts(database_url: str) -> tuple[int, int]:
    return (
        await count(database_url, "SELECT count(*) FROM ingest_outcomes"),
        await count(database_url, FIRST_DECISIONS),
    )


class Phases:
    """Seconds since the test's start at each named step, printed at the end."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.marks: list[str] = []

    def __call__(self, name: str) -> None:
        self.marks.append(f"{name} {time.monotonic() - self.start:.0f}s")

    def __str__(self) -> str:
        return ", ".join(self.marks)


def others(node: int) -> tuple[int, ...]:
    return tuple(n for n in NODES if n != node)


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT)
async def test_leader_change_under_load(
    cluster: Cluster,
    cluster_kafka: KafkaSettings,
    pipelines: list[Pipeline],  # noqa: F811 - the imported fixture
    database_url: str,
    tmp_path: Path,
) -> None:
    """The node leading the most busy partitions is shut down cleanly (its leaderships
    move to the other two before it stops), started again once the pipeline progressed
    without it, and given its partitions back by a preferred leader election — three
    leader changes on the partitions it led, all under load."""
    kafka = cluster_kafka
    p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
    pids = pids_of(p)
    phase = Phases()
    traffic = simulate(p, SCALE, seed=81)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.2)
    phase("load")
    node, leading = await busiest(cluster, kafka)
    at = await counts(database_url)
    started = time.monotonic()
    await asyncio.to_thread(cluster.run, "stop-node", str(cluster.dir), str(node))
    stopped_s = time.monotonic() - started
    assert await led_by(cluster, kafka, node, others(node)) == 0
    phase("fault")
    await progressed(p, at)
    phase("progress")
    await asyncio.to_thread(cluster.run, "start-node", str(cluster.dir), str(node))
    await until("back in sync", lambda: all_in_sync(cluster, kafka), p, 120)
    phase("in sync")
    moved = int(await asyncio.to_thread(cluster.run, "elect-leaders", str(cluster.dir)))
    back = 0

    async def leads_again() -> bool:
        # A broker answers metadata from its own copy of the cluster's state, which
        # follows the controller's election a moment later: observe, do not read once.
        nonlocal back
        back = await led_by(cluster, kafka, node, NODES)
        return back > 0

    elected = time.monotonic()
    await until(f"node {node} leads busy partitions again", leads_again, p, 60)
    seen_s = time.monotonic() - elected
    during = await counts(database_url)
    report = await finish(p, traffic)
    phase("checked")
    print(f"phases: {phase}")
    print(
        f"node {node} led {leading} busy partitions; stopped at {at} (outcomes, first "
        f"decisions) in {stopped_s:.1f} s; elected back at {during}: {moved} partitions "
        f"moved, {back} busy ones led by node {node} (seen {seen_s:.1f} s after the election)"
    )
    assert pids_of(p) == pids, "no restarts"
    assert 0 < at[0] < SCALE, at
    # The controller may have moved the leaderships back by itself once the node was in
    # sync again (then the election has nothing to move); either way it leads again
    # (``leads_again`` above fails the test otherwise).
    assert_clean(p, report, [])


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT)
async def test_kill_9_of_the_busiest_leader_under_load(
    cluster: Cluster,
    cluster_kafka: KafkaSettings,
    pipelines: list[Pipeline],  # noqa: F811 - the imported fixture
    database_url: str,
    tmp_path: Path,
) -> None:
    """The node leading the most busy partitions is killed with SIGKILL; once the other
    two lead its partitions and the pipeline progressed on them, it is started again on
    its data and catches up."""
    kafka = cluster_kafka
    p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
    pids = pids_of(p)
    phase = Phases()
    traffic = simulate(p, SCALE, seed=82)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.2)
    phase("load")
    node, leading = await busiest(cluster, kafka)
    at = await counts(database_url)
    await asyncio.to_thread(cluster.run, "kill-node", str(cluster.dir), str(node))
    killed = time.monotonic()

    async def moved_away() -> bool:
        return await led_by(cluster, kafka, node, others(node)) == 0

    await until("leaders elected elsewhere", moved_away, p, 60)
    failover_s = time.monotonic() - killed
    phase("fault")
    await progressed(p, at)
    phase("progress")
    down_s = time.monotonic() - killed
    await asyncio.to_thread(cluster.run, "start-node", str(cluster.dir), str(node))
    await until("back in sync", lambda: all_in_sync(cluster, kafka), p, 120)
    phase("in sync")
    report = await finish(p, traffic)
    phase("checked")
    print(f"phases: {phase}")
    print(
        f"node {node} led {leading} busy partitions; killed at {at} (outcomes, first "
        f"decisions); new leaders after {failover_s:.1f} s; down {down_s:.1f} s"
    )
    assert pids_of(p) == pids, "no restarts"
    assert 0 < at[0] < SCALE, at
    assert_clean(p, report, [])


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT)
async def test_kill_9_of_the_active_controller_under_load(
    cluster: Cluster,
    cluster_kafka: KafkaSettings,
    pipelines: list[Pipeline],  # noqa: F811 - the imported fixture
    database_url: str,
    tmp_path: Path,
) -> None:
    """The active controller (the leader of the KRaft metadata quorum) is killed with
    SIGKILL; another node takes over the quorum, the pipeline progresses, and the killed
    node is started again."""
    kafka = cluster_kafka
    p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
    pids = pids_of(p)
    # Asked before the traffic starts (a JVM's start on a loaded machine takes seconds):
    # nothing changes the quorum's leader until the fault.
    node = await asyncio.to_thread(cluster.controller)
    phase = Phases()
    traffic = simulate(p, SCALE, seed=83)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.2)
    phase("load")
    leading = await led_by(cluster, kafka, node, NODES)
    at = await counts(database_url)
    await asyncio.to_thread(cluster.run, "kill-node", str(cluster.dir), str(node))
    killed = time.monotonic()
    successor = node

    async def new_controller() -> bool:
        nonlocal successor
        env = {**cluster.env}
        done = await asyncio.to_thread(
            subprocess.run,
            [str(ROOT / "deploy/kafka/kafka.sh"), "controller", str(cluster.dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = done.stdout.split()
        if done.returncode == 0 and lines and lines[-1].lstrip("-").isdigit():
            successor = int(lines[-1])
        return successor not in (node, -1)

    await until("a new active controller", new_controller, p, 60, every=1)
    failover_s = time.monotonic() - killed
    phase("fault")
    await progressed(p, at)
    phase("progress")
    await asyncio.to_thread(cluster.run, "start-node", str(cluster.dir), str(node))
    await until("back in sync", lambda: all_in_sync(cluster, kafka), p, 120)
    phase("in sync")
    report = await finish(p, traffic)
    phase("checked")
    print(f"phases: {phase}")
    print(
        f"controller {node} (leading {leading} busy partitions) killed at {at} (outcomes, "
        f"first decisions); node {successor} active controller within {failover_s:.1f} s"
    )
    assert pids_of(p) == pids, "no restarts"
    assert 0 < at[0] < SCALE, at
    assert_clean(p, report, [])
