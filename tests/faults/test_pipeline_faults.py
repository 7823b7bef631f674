"""The whole loop under faults: the four services as processes, simulated traffic (leads,
duplicates, malformed records, reps' activities and stage changes, SLA steps), and
faults injected mid-run — deterministic kills after and before the PostgreSQL commit in
ingest and assignment, SIGTERM of each worker, `kill -9` and restart of the broker, a
burst far above what the workers absorb, PostgreSQL paused (SIGSTOP past the command
timeout) and killed hard (SIGKILL of the postmaster) on a cluster of the test's own, and
a zombie assignment worker woken after a second one took over. Every scenario ends with
the independent checker (``tests/support/checker.py``): zero lost, zero duplicated,
exact counters. The checker's comparisons are unit tested on hand-made inputs in
``tests/support/test_checker.py``.

Size: ``LEADLOOP_FAULT_SCALE`` leads per scenario (default 5,000, so the file fits
``make test`` in minutes on two shared cores; ``make soak`` raises it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.broker import Broker, private_broker
from tests.support.checker import Labels, PipelineReport, check_pipeline, read_topic
from tests.support.kafka import group_members
from tests.support.ports import free_port_base, free_ports
from tests.support.processes import CORE as SERVICES
from tests.support.processes import ROOT, ServiceGroup, deploy, service_env
from tests.support.roster_truth import parse_rules

from leadloop.db import apply_migrations
from leadloop.events import EscalationKind, RejectReason
from leadloop.faults import ENABLE_VARIABLE, FAULT_VARIABLE
from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import Service, inputs_of, qualified

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "5000"))
#: Per-test limit: generous for the default size, growing with a soak's.
TIMEOUT_S = 240 + SCALE // 40
#: A killed member leaves its group after this many seconds (the broker's minimum).
SESSION_TIMEOUT_S = 6
#: Real seconds the simulated reps keep answering assignments after the start.
REPS_S = 15 + SCALE / 400

# --- the pipeline under test ------------------------------------------------------------

#: First response within 3 s of round-the-clock time, then three steps; the third moves
#: the lead (assignment acts on it), so escalations feed back into assignment.
SLA_POLICY = """\
policies:
  - policy_id: fr-faults
    kind: first_response
    limit_seconds: 3
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 2, action: notify_manager}
      - {level: 3, after_seconds: 4, action: reassign}
"""
#: Every team works round the clock: what the SLA and assignment do then does not depend
#: on the hour the suite runs at.
CALENDARS = "default: always\ncalendars:\n  always:\n    timezone: UTC\n    weekly:\n" + "".join(
    f'      {day}: ["00:00-24:00"]\n'
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)
#: The label values the metrics service is configured with (its defaults).
LABELS = Labels(
    sources=frozenset({"web_form", "lead_ads", "wechat", "trade_show_csv", "referral"}),
    teams=frozenset(
        str(t["team_id"])
        for t in yaml.safe_load((ROOT / "config/rules.yaml").read_text(encoding="utf-8"))["teams"]
    ),
    reject_reasons=frozenset(r.value for r in RejectReason),
    escalation_kinds=frozenset(k.value for k in EscalationKind),
)
#: The rule set and roster the run decides by (assignment's default file).
ROUTING = parse_rules((ROOT / "config/rules.yaml").read_text(encoding="utf-8"))
#: SLA policy id → kind, from the policies file the run uses.
POLICY_KINDS = {p["policy_id"]: p["kind"] for p in yaml.safe_load(SLA_POLICY)["policies"]}
#: The services whose consumer lag the faults wait out.
_CAUGHT_UP: tuple[Service, ...] = ("ingest", "assignment", "metrics")
#: What each service consumes, as the topic registry declares it: it is caught up when
#: its group committed all of it.
CONSUMES: dict[str, tuple[str, ...]] = {name: tuple(inputs_of(name)) for name in _CAUGHT_UP}


@dataclass
class Pipeline:
    """The four services as child processes, a supervisor that restarts workers killed
    by a fault point with their next planned fault (or none), and a record of every
    exit that no fault point and no test signal explains."""

    group: ServiceGroup
    kafka: KafkaSettings
    database_url: str
    #: service → faults still to arm, in order, one per life of the process.
    plans: dict[str, list[str]] = field(default_factory=dict)
    #: (service, fault point) for every planned kill that happened.
    fired: list[tuple[str, str]] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    #: Services the test stopped or is restarting itself (the supervisor leaves them be).
    held: set[str] = field(default_factory=set)
    armed: dict[str, str | None] = field(default_factory=dict)
    #: Exit codes of the test's own SIGTERMs.
    terminated: dict[str, list[int]] = field(default_factory=dict)
    #: Called with (service, point) after a planned kill, before the restart.
    on_fired: Callable[[str, str], Awaitable[None]] | None = None
    #: Simulator processes started for this pipeline.
    simulators: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Second workers of a service (their own ports and logs), stopped right after the
    #: first worker of that service; their SIGTERM exit codes (None: already exited).
    twins: list[ServiceGroup] = field(default_factory=list)
    twin_codes: dict[str, list[int | None]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start ``name`` armed with its next planned fault, if any."""
        plan = self.plans.get(name) or []
        fault = plan.pop(0) if plan else None
        base = self.group.env
        if fault:
            self.group.env = {**base, FAULT_VARIABLE: fault, ENABLE_VARIABLE: "1"}
        try:
            self.group.start(name)
        finally:
            self.group.env = base
        self.armed[name] = fault

    async def supervise(self) -> None:
        """Restart workers that exited: a planned kill is recorded (and ``on_fired``
        called while the worker is still down), anything else is a crash (recorded with
        its last critical line) and fails the test."""
        for name, proc in list(self.group.procs.items()):
            if name in self.held or proc.poll() is None:
                continue
            fault = self.armed.get(name)
            point = fault.split("@")[0] if fault else None
            log = self.group.log(name, tail=None)
            if point and proc.returncode == -signal.SIGKILL and f'"point": "{point}"' in log:
                self.fired.append((name, point))
                if self.on_fired is not None:
                    await self.on_fired(name, point)
            else:
                lines = log.splitlines()
                why = [x for x in lines if '"critical"' in x][-1:] or lines[-10:]
                self.crashes.append(f"{name} exited {proc.returncode}: " + "\n".join(why))
            self.start(name)

    async def terminate(self, name: str, *, restart: bool = True) -> int:
        """SIGTERM ``name``, wait for its exit (returned) and start it again unless told
        otherwise."""
        self.held.add(name)
        self.group.signal(name, signal.SIGTERM)
        code = await asyncio.to_thread(self.group.procs[name].wait, 60)
        self.terminated.setdefault(name, []).append(code)
        if restart:
            self.start(name)
            self.held.discard(name)
            # Until its web server answers, a worker is still importing: a SIGTERM then
            # ends it by the signal's default action, which is not what is tested here.
            await until(f"{name} serving", lambda: self.serving(name), self, 120)
        return code

    def serving(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(self.group.url(name, "/healthz"), timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, ValueError):
            return False

    def scrape(self) -> str:
        with urllib.request.urlopen(self.group.url("metrics", "/metrics"), timeout=30) as r:
            return str(r.read().decode())

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.group.log(n, tail=1500)}" for n in SERVICES)


def make_pipeline(
    database_url: str, kafka: KafkaSettings, tmp_path: Path, **extra: str
) -> Pipeline:
    (tmp_path / "sla.yaml").write_text(SLA_POLICY)
    (tmp_path / "calendars.yaml").write_text(CALENDARS)
    env = service_env(
        database_url,
        kafka.bootstrap_servers,
        kafka.topic_prefix,
        tmp_path / "data",
        LEADLOOP_POLICIES_FILE=str(tmp_path / "sla.yaml"),
        LEADLOOP_CALENDARS_FILE=str(tmp_path / "calendars.yaml"),
        LEADLOOP_TICK_SECONDS="0.2",
        LEADLOOP_POOL_CHECK_SECONDS="1",
        # The simulator's malformed share is spread out; the guard is tested elsewhere.
        LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0",
        BROKER_SESSION_TIMEOUT=str(SESSION_TIMEOUT_S),
        BROKER_HEARTBEAT_INTERVAL="1",
        **extra,
    )
    # A fault switch of the test runner's own environment must not reach the services.
    env = {k: v for k, v in env.items() if k not in (FAULT_VARIABLE, ENABLE_VARIABLE)}
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    return Pipeline(group=group, kafka=kafka, database_url=database_url)


async def started_pipeline(
    database_url: str, kafka: KafkaSettings, tmp_path: Path, pipelines: list[Pipeline]
) -> Pipeline:
    """A pipeline (stopped with the test's others) with its four services up and ready."""
    p = make_pipeline(database_url, kafka, tmp_path)
    pipelines.append(p)
    for name in SERVICES:
        p.start(name)
    await asyncio.to_thread(p.group.wait_ready, timeout=120)
    return p


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    """Pipelines a test made; whatever still runs is stopped at the end."""
    made: list[Pipeline] = []
    yield made
    for p in made:
        for sim in p.simulators:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        p.held.update(SERVICES)
        p.group.stop()
        for twin in p.twins:
            twin.stop()


async def committed_lag(kafka: KafkaSettings, group_id: str, topics: tuple[str, ...]) -> int:
    """Records of ``topics`` the consumer group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        names = [qualified(t, kafka.topic_prefix) for t in topics]
        tps = [
            TopicPartition(d["topic"], p["partition"])
            for d in await admin.describe_topics(names)
            for p in d["partitions"]
        ]
        committed = await admin.list_consumer_group_offsets(group_id, partitions=tps)
        ends = await consumer.end_offsets(tps)
        # An empty partition may come back as committed at -1.
        return sum(
            ends[tp] - max(committed[tp].offset, 0) if tp in committed else ends[tp] for tp in tps
        )
    finally:
        await consumer.stop()
        await admin.close()


async def until(
    what: str, check: Callable[[], object], p: Pipeline, within: float, every: float = 0.3
) -> None:
    """Poll the async ``check`` (supervising the workers meanwhile) until it is truthy."""
    deadline = time.monotonic() + within
    while True:
        await p.supervise()
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s\n{p.logs()}")
        await asyncio.sleep(every)


async def caught_up(p: Pipeline, name: str, within: float) -> None:
    group_id = f"{p.kafka.topic_prefix}leadloop-{name}"

    async def quiet() -> bool:
        return await committed_lag(p.kafka, group_id, CONSUMES[name]) == 0

    await until(f"{name} caught up", quiet, p, within)


async def count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def outcomes(p: Pipeline) -> Callable[[], object]:
    return lambda: count(p.database_url, "SELECT count(*) FROM ingest_outcomes")


def decisions(p: Pipeline) -> Callable[[], object]:
    return lambda: count(
        p.database_url, "SELECT count(*) FROM assignments WHERE kind IN ('initial', 'pooled')"
    )


async def at_least_more(database_url: str, sql: str, n: int) -> bool:
    return await count(database_url, sql) >= n


async def at_least(p: Pipeline, what: str, counter: Callable[[], object], n: float) -> None:
    async def reached() -> bool:
        got = counter()
        assert asyncio.iscoroutine(got)
        return bool(await got >= n)

    await until(f"{what} >= {n:.0f}", reached, p, TIMEOUT_S / 3, every=0.05)


@dataclass
class Traffic:
    """The simulator (``leadloop simulate``) as a child process: leads as fast as the
    broker takes them (a burst), and the reps answering assignments at 600x.

    A process of its own rather than a task of the test: its Kafka clients ride out the
    broker's restart on their own terms, and when they do not, SIGKILL guarantees that
    nothing it held back reaches a topic after the checker read it.
    """

    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    async def end(self, p: Pipeline) -> None:
        """After ``REPS_S`` real seconds: SIGINT (the simulator stops and prints what it
        sent), SIGKILL if it has not exited 20 s later."""
        while time.monotonic() - self.started < REPS_S:
            await p.supervise()
            await asyncio.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(self.proc.wait, 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 20)
            print("\nsimulator did not stop within 20 s of SIGINT: killed")
        print("\n" + self.log.read_text(errors="replace")[-1500:])


def simulate(p: Pipeline, leads: int, seed: int) -> Traffic:
    log = p.group.log_dir / f"simulate-{seed}.log"
    command = [str(Path(sys.executable).parent / "leadloop"), "simulate", "--leads", str(leads)]
    command += ["--rate", "0", "--seed", str(seed), "--time-scale", "600"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=p.group.env, stdout=out, stderr=subprocess.STDOUT
        )
    p.simulators.append(proc)
    return Traffic(proc=proc, log=log)


async def finish(p: Pipeline, traffic: Traffic) -> PipelineReport:
    """Let the traffic end, stop the services in the order their outputs feed each
    other — each once it has committed everything it consumes — take /metrics once the
    metrics service consumed everything, and read it all back with the checker."""
    await traffic.end(p)
    await until("no planned fault left", lambda: not any(p.plans.values()), p, TIMEOUT_S / 4)
    await p.terminate("sla-monitor", restart=False)
    # Ingest first works off leads.raw (a large run leaves it a backlog when the
    # traffic ends): assignment stopped before that would leave the last accepted
    # leads undecided, which the checker rightly counts as lost.
    await caught_up(p, "ingest", TIMEOUT_S / 4)
    for name in ("assignment", "ingest"):
        await caught_up(p, name, TIMEOUT_S / 4)
        await p.terminate(name, restart=False)
        for twin in p.twins:
            if name in twin.procs:
                await stop_twin(p, twin, name)
    await caught_up(p, "metrics", TIMEOUT_S / 4)
    await asyncio.sleep(1.5)  # the last batch's commit is visible before it is served
    text = await asyncio.to_thread(p.scrape)
    await p.terminate("metrics", restart=False)
    report = await check_pipeline(
        p.kafka, p.database_url, text, LABELS, routing=ROUTING, policy_kinds=POLICY_KINDS
    )
    print(report.summary())
    print(f"faults fired: {p.fired}; SIGTERM exit codes: {p.terminated}")
    return report


async def stop_twin(p: Pipeline, twin: ServiceGroup, name: str) -> None:
    """SIGTERM the second worker ``name``; an exit before that is recorded as None."""
    proc = twin.procs[name]
    code: int | None = None
    if proc.poll() is None:
        twin.signal(name, signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    p.twin_codes.setdefault(name, []).append(code)


def assert_clean(p: Pipeline, report: PipelineReport, planned: list[tuple[str, str]]) -> None:
    assert p.crashes == [], "workers crashed:\n" + "\n".join(p.crashes)
    assert sorted(p.fired) == sorted(planned), f"faults fired {p.fired}, planned {planned}"
    assert report.problems == {}, report.summary()
    assert report.assignment.accepted == report.assignment.stored, report.summary()
    assert report.assignment.accepted > 0, report.summary()
    codes = {name: set(c) for name, c in p.terminated.items()}
    assert codes == {name: {0} for name in SERVICES}, f"unclean stops: {p.terminated}"


# --- the scenarios ------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_kills_at_deterministic_points_around_the_commit_in_ingest_and_assignment(
    pipelines: list[Pipeline], database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Each worker dies three times, each time at its second batch: after the commit
    before anything is published, inside the transaction before the commit, and after
    the output was acknowledged before the offsets are committed."""
    p = make_pipeline(database_url, kafka_settings, tmp_path)
    pipelines.append(p)
    p.plans = {
        "ingest": [
            "ingest.after_commit@2",
            "ingest.before_commit@2",
            "ingest-leads-raw.after_handler@2",
        ],
        "assignment": [
            "assignment.after_commit@2",
            "assignment.before_commit@2",
            "assignment-leads-accepted.after_handler@2",
        ],
    }
    planned = [(s, f.split("@")[0]) for s, faults in p.plans.items() for f in faults]
    #: (point, stored, published) at each kill, while the worker is down.
    windows: list[tuple[str, int, int]] = []

    async def window(service: str, point: str) -> None:
        stored, published = await stored_and_published(p, service)
        windows.append((point, stored, published))
        if point.endswith(".after_commit") and stored == published and len(windows) < 12:
            # The batch held no fresh input (all of it redelivered, decided before), so
            # there was nothing to leave unpublished: the same fault again, next life.
            p.plans[service].insert(0, f"{point}@2")
            planned.append((service, point))

    p.on_fired = window
    for name in SERVICES:
        p.start(name)
    await asyncio.to_thread(p.group.wait_ready, timeout=120)
    report = await finish(p, simulate(p, SCALE, seed=71))
    print(f"at each kill (point, stored, published): {windows}")
    assert_clean(p, report, planned)
    # A kill after the commit of a batch with fresh input left effects in PostgreSQL
    # that were not on the output topic yet: the window a kill at a random moment rarely
    # hits. Each worker was killed in it.
    for point in ("ingest.after_commit", "assignment.after_commit"):
        hits = [(st, pub) for name, st, pub in windows if name == point and st > pub]
        assert hits, f"{point} never hit its window: {windows}"


async def stored_and_published(p: Pipeline, service: str) -> tuple[int, int]:
    """While ``service`` is down: its first effects stored in PostgreSQL, and those on
    its output topic (distinct events). Ingest: outcomes; assignment: first decisions."""
    if service == "ingest":
        sql, topic = "SELECT count(*) FROM ingest_outcomes", "ingest.outcomes"
        ids = {json.loads(r.value)["event_id"] for r in await read_topic(p.kafka, topic)}
    else:
        sql = "SELECT count(*) FROM assignments WHERE seq = 0"
        ids = {
            b["assignment_id"]
            for b in (json.loads(r.value) for r in await read_topic(p.kafka, "leads.assigned"))
            if b.get("sequence", 0) == 0
        }
    return await count(p.database_url, sql), len(ids)


def applied(p: Pipeline) -> Callable[[], object]:
    return lambda: count(p.database_url, "SELECT count(*) FROM metric_applied_events")


def steps_stored(p: Pipeline) -> Callable[[], object]:
    return lambda: count(p.database_url, "SELECT count(*) FROM escalations")


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_sigterm_of_each_worker_mid_run(
    pipelines: list[Pipeline], database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Each of the four workers is stopped with SIGTERM while it has work, one after the
    other, and started again: a stop finishes the batch in flight and exits 0."""
    p = await started_pipeline(database_url, kafka_settings, tmp_path, pipelines)
    traffic = simulate(p, SCALE, seed=72)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.2)
    await p.terminate("ingest")
    await at_least(p, "first decisions", decisions(p), SCALE * 0.4)
    await p.terminate("assignment")
    await at_least(p, "SLA steps", steps_stored(p), 1)
    await p.terminate("sla-monitor")
    await at_least(p, "metric events", applied(p), SCALE * 0.8)
    await p.terminate("metrics")
    report = await finish(p, traffic)
    assert_clean(p, report, [])
    assert all(len(codes) == 2 for codes in p.terminated.values()), p.terminated


# --- kill -9 of the broker: on a broker of the test's own ----------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A second single-node broker on its own ports and state folder, so that killing
    it touches no other test."""
    with private_broker(tmp_path / "broker-state") as b:
        yield b


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_kill_9_of_the_broker_and_restart_the_services_recover_by_themselves(
    broker: Broker,
    pipelines: list[Pipeline],
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    """The broker is killed with SIGKILL while every service has work, stays down for a
    few seconds and comes back on the same port and data: no worker is restarted (a
    worker that exits fails the test), and nothing is lost or duplicated."""
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix)
    await create_topics(kafka)
    p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
    pids = {name: proc.pid for name, proc in p.group.procs.items()}
    traffic = simulate(p, SCALE, seed=73)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.3)
    killed_at = await count(database_url, "SELECT count(*) FROM ingest_outcomes")
    await broker.kill_9()
    await asyncio.sleep(5)
    await asyncio.to_thread(broker.run, "start")
    report = await finish(p, traffic)
    print(f"broker killed at {killed_at} outcomes of {SCALE}")
    assert {name: proc.pid for name, proc in p.group.procs.items()} == pids, "no restarts"
    assert 0 < killed_at < SCALE, killed_at
    assert_clean(p, report, [])


# --- a burst far above what the workers absorb --------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_a_burst_far_above_what_the_workers_absorb(
    pipelines: list[Pipeline], database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Twice the run size at once, as fast as the broker acknowledges: the backlog on
    leads.raw grows to most of the burst (the workers absorb a fraction of the arrival
    rate), and is worked off without loss, duplicates or a stuck partition."""
    p = await started_pipeline(database_url, kafka_settings, tmp_path, pipelines)
    burst = 2 * SCALE
    started = time.monotonic()
    traffic = simulate(p, burst, seed=74)
    group_id = f"{kafka_settings.topic_prefix}leadloop-ingest"
    peak = 0
    while time.monotonic() - started < REPS_S:
        await p.supervise()
        peak = max(peak, await committed_lag(kafka_settings, group_id, ("leads.raw",)))
        if peak >= burst // 2:
            break
        await asyncio.sleep(0.2)
    report = await finish(p, traffic)
    print(f"burst of {burst}: peak backlog on leads.raw {peak}")
    assert peak >= burst // 2, f"the burst never outran ingest: peak backlog {peak} of {burst}"
    assert_clean(p, report, [])


# --- PostgreSQL paused and stopped hard: on a cluster of the test's own ---------------------

#: asyncpg's ``command_timeout`` in ``leadloop.db.create_pool`` (30 s): a pause longer
#: than it makes every statement in flight time out, not merely wait.
COMMAND_TIMEOUT_S = 30


@dataclass
class Postgres:
    """A private PostgreSQL cluster from deploy/postgres/pg.sh (its own state folder and
    port), so that pausing or killing it touches no other test's database."""

    env: dict[str, str]
    data: Path

    def run(self, command: str) -> str:
        return deploy("deploy/postgres/pg.sh", command, self.env)

    @property
    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, ...)."""
        pm = self.postmaster
        found = [pm]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pm:
                found.append(int(stat.parent.name))
        return found

    def signal_all(self, pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    (port,) = free_ports(1)
    state = tmp_path / "pg-state"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # Without DATABASE_URL pg.sh manages the cluster under LEADLOOP_STATE_DIR itself.
    env |= {"LEADLOOP_STATE_DIR": str(state), "LEADLOOP_PG_PORT": str(port)}
    pg = Postgres(env=env, data=state / "postgres" / "data")
    pg.run("start")
    try:
        yield pg
    finally:
        if (pg.data / "postmaster.pid").exists() and alive(pg.postmaster):
            # A test that failed mid-pause leaves the cluster stopped: wake it to stop it.
            pg.signal_all(pg.processes(), signal.SIGCONT)
        subprocess.run(
            [str(ROOT / "deploy/postgres/pg.sh"), "stop"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


async def private_database(pg: Postgres) -> str:
    url = pg.run("url")
    await apply_migrations(url)
    return url


def pids_of(p: Pipeline) -> dict[str, int]:
    return {name: proc.pid for name, proc in p.group.procs.items()}


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_postgres_paused_past_the_command_timeout_the_services_recover_by_themselves(
    postgres: Postgres, pipelines: list[Pipeline], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Every process of the cluster is frozen with SIGSTOP while every service has work,
    for longer than the services' command timeout (connections stay open, nothing
    answers), then woken: no worker exits or is restarted, nothing is lost or doubled."""
    database_url = await private_database(postgres)
    p = await started_pipeline(database_url, kafka_settings, tmp_path, pipelines)
    pids = pids_of(p)
    traffic = simulate(p, SCALE, seed=75)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.3)
    paused_at = await count(database_url, "SELECT count(*) FROM ingest_outcomes")
    frozen = postgres.processes()
    postgres.signal_all(frozen, signal.SIGSTOP)
    try:
        pause = COMMAND_TIMEOUT_S + 8
        paused = time.monotonic()
        while time.monotonic() - paused < pause:
            await p.supervise()
            await asyncio.sleep(0.5)
    finally:
        postgres.signal_all(frozen, signal.SIGCONT)
    report = await finish(p, traffic)
    retries = {n: p.group.log(n, tail=None).count('"postgres_retry"') for n in SERVICES}
    print(f"paused {len(frozen)} processes for {pause} s at {paused_at} outcomes; {retries=}")
    assert pids_of(p) == pids, "no restarts"
    assert 0 < paused_at < SCALE, paused_at
    assert_clean(p, report, [])


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_kill_9_of_the_postmaster_and_restart_the_services_recover_by_themselves(
    postgres: Postgres, pipelines: list[Pipeline], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The postmaster is killed with SIGKILL while every service has work (its backends
    die with it; the restart runs crash recovery), and started again after 10 s on the
    same port and data: no worker exits or is restarted, nothing is lost or doubled."""
    database_url = await private_database(postgres)
    p = await started_pipeline(database_url, kafka_settings, tmp_path, pipelines)
    pids = pids_of(p)
    traffic = simulate(p, SCALE, seed=76)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.3)
    killed_at = await count(database_url, "SELECT count(*) FROM ingest_outcomes")
    cluster = postgres.processes()
    os.kill(cluster[0], signal.SIGKILL)
    down = time.monotonic()
    while time.monotonic() - down < 10:
        await p.supervise()
        await asyncio.sleep(0.5)
    # Orphaned backends notice the postmaster's death and exit; one still attached to the
    # shared memory would make the new postmaster refuse to start.
    await until("backends gone", lambda: not any(map(alive, cluster)), p, 30)
    await asyncio.to_thread(postgres.run, "start")
    downtime = time.monotonic() - down
    print(f"postmaster killed at {killed_at} outcomes, restarted after {downtime:.1f} s")
    report = await finish(p, traffic)
    assert pids_of(p) == pids, "no restarts"
    assert 0 < killed_at < SCALE, killed_at
    assert_clean(p, report, [])


# --- a zombie worker in the pipeline -----------------------------------------------------


def group_id(p: Pipeline, service: str) -> str:
    return f"{p.kafka.topic_prefix}leadloop-{service}"


async def stable_members(p: Pipeline, service: str) -> frozenset[str] | None:
    """The member ids of ``service``'s consumer group when it is Stable, else None."""
    state, ids = await group_members(p.kafka, group_id(p, service))
    return ids if state == "Stable" else None


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S)
async def test_a_frozen_assignment_worker_wakes_after_a_second_worker_took_over(
    pipelines: list[Pipeline], database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Two assignment workers share the work; one is frozen with SIGSTOP while it has
    work, past its session timeout, so the group gives its partitions to the other, which
    goes on deciding; then it is woken and its late writes and commits must change
    nothing: no worker exits, nothing is lost or doubled."""
    p = make_pipeline(database_url, kafka_settings, tmp_path)
    pipelines.append(p)
    (tmp_path / "twin").mkdir()
    twin = ServiceGroup(env=p.group.env, port_base=free_port_base(), log_dir=tmp_path / "twin")
    p.twins.append(twin)
    for name in SERVICES:
        p.start(name)
    twin.start("assignment")
    await asyncio.to_thread(p.group.wait_ready, timeout=120)
    await asyncio.to_thread(twin.wait_ready, timeout=120)
    pids = pids_of(p)
    traffic = simulate(p, SCALE, seed=77)
    await at_least(p, "first decisions", decisions(p), SCALE * 0.2)
    before: frozenset[str] = frozenset()

    async def two() -> bool:
        nonlocal before
        before = await stable_members(p, "assignment") or frozenset()
        return len(before) == 2

    await until("two members", two, p, 60)
    first = "SELECT count(*) FROM assignments WHERE seq = 0"
    frozen_at = await count(database_url, first)
    p.group.signal("assignment", signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        # Evicted once the session timeout passes without a heartbeat: the group settles
        # with one member, one of the two before (the second worker keeps its member id),
        # holding every partition.
        survivor: frozenset[str] = frozenset()

        async def evicted_one() -> bool:
            nonlocal survivor
            survivor = await stable_members(p, "assignment") or frozenset()
            return len(survivor) == 1 and survivor < before

        await until("the frozen member evicted", evicted_one, p, 60)
        evicted = time.monotonic() - stopped
        at_eviction = await count(database_url, first)
        # The survivor works the frozen worker's partitions: observed, first decisions
        # made after the eviction, while the first worker is still frozen.
        await until(
            "the survivor deciding",
            lambda: at_least_more(database_url, first, at_eviction + 50),
            p,
            60,
        )
        woken_at = await count(database_url, first)
    finally:
        p.group.signal("assignment", signal.SIGCONT)
    report = await finish(p, traffic)
    print(f"first decisions: {frozen_at} at the freeze, {woken_at} at the wake-up")
    print(f"frozen member evicted {evicted:.1f} s after SIGSTOP")
    assert p.twin_codes == {"assignment": [0]}, "the second worker ran to a clean stop"
    assert pids_of(p) == pids, "no restarts"
    assert woken_at > frozen_at, "the second worker went on deciding while the first was frozen"
    assert_clean(p, report, [])
