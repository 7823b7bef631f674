"""A forward jump of the wall clock on the real PostgreSQL: 1,000 open clocks, an
injected wall clock that jumps six hours ahead of a faked monotonic one. Reminders fire;
the return_to_pool steps the jump made due wait for the hold, the metric and the log
say so, and after the hold they fire. A backlog after the monitor was down (both clocks
advanced) is catch-up: it fires, spread over minutes by the per-team cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from tests.support.sla_events import ALWAYS, FIRST_RESPONSE, T0, H, assigned, at

from leadloop.clock import FixedClock
from leadloop.messaging import RecordingPublisher
from leadloop_sla_monitor.adapters.metrics import PrometheusSlaMetrics
from leadloop_sla_monitor.adapters.postgres import PostgresUnitOfWork
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.restraint import Guard, Restraint
from leadloop_sla_monitor.handlers import SlaHandler

pytestmark = pytest.mark.integration

#: fr-default: remind at 1 h, reclaim warning at 1.5 h, return_to_pool at 2 h, page at 3 h.
POLICIES = PolicySet.model_validate({"policies": FIRST_RESPONSE})
LEADS = 1000
HOLD = 1800


class Fake:
    """The injected clocks: the wall clock (``wall``) and the monotonic one (``mono``)."""

    def __init__(self) -> None:
        self.wall = FixedClock(T0)
        self.mono = 0.0

    def monotonic(self) -> float:
        return self.mono

    def both(self, seconds: float) -> None:
        """Time passes (or the process was down): both clocks advance."""
        self.wall.advance(timedelta(seconds=seconds))
        self.mono += seconds


def held(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "leadloop_sla_actions_held_total", {"reason": reason, "action": "return_to_pool"}
    )
    assert value is not None
    return value


async def actions(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT kind || ':' || action AS a, count(*) AS n FROM escalations "
        "WHERE status = 'firing' GROUP BY 1"
    )
    return {r["a"]: r["n"] for r in rows}


@pytest.fixture
async def setup(
    database_url: str,
) -> AsyncIterator[tuple[SlaHandler, asyncpg.Pool, Fake, CollectorRegistry]]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    assert pool is not None
    fake = Fake()
    registry = CollectorRegistry()
    sla = SlaHandler(
        uow=PostgresUnitOfWork(pool),
        lifecycle=Lifecycle(POLICIES, ALWAYS),
        escalator=Escalator(POLICIES, ALWAYS),
        publisher=RecordingPublisher(),
        clock=fake.wall,
        restraint=Restraint(
            Guard(
                jump_threshold=timedelta(minutes=5),
                hold=timedelta(seconds=HOLD),
                per_minute=300,
            )
        ),
        monotonic=fake.monotonic,
        metrics=PrometheusSlaMetrics(registry),
    )
    await sla.apply([assigned(f"l{i:04}", "rep-a", T0) for i in range(LEADS)], T0)
    assert await pool.fetchval("SELECT count(*) FROM sla_clocks WHERE stopped_at IS NULL") == LEADS
    yield sla, pool, fake, registry
    await pool.close()


async def test_a_six_hour_jump_fires_reminders_and_holds_the_reclaims_until_the_hold_ends(
    setup: tuple[SlaHandler, asyncpg.Pool, Fake, CollectorRegistry],
) -> None:
    sla, pool, fake, registry = setup
    fake.both(60)
    assert await sla.tick() == 0

    # The wall clock jumps six hours; a tenth of a second passes on the monotonic one.
    fake.wall.advance(timedelta(hours=6))
    fake.mono += 0.1
    with capture_logs() as logs:
        fired = await sla.tick()
    # Every reminder and reclaim warning fires; no lead is taken, no page goes out.
    assert fired == 2 * LEADS
    assert await actions(pool) == {
        "first_response:remind_owner": LEADS,
        "reclaim_warning:remind_owner": LEADS,
    }
    assert registry.get_sample_value("leadloop_sla_clock_jumps_total") == 1
    assert registry.get_sample_value("leadloop_sla_clock_jump_seconds_total") == pytest.approx(
        6 * H - 0.1
    )
    assert held(registry, "clock_jump") == LEADS
    (jump,) = [e for e in logs if e["event"] == "clock_jump"]
    assert jump["seconds"] == pytest.approx(6 * H - 0.1)
    assert jump["log_level"] == "warning"
    assert sum(e["held"] for e in logs if e["event"] == "taking_actions_held") == LEADS

    # During the hold nothing more fires, and the held clocks are not claimed each tick.
    fake.both(HOLD - 1)
    assert await sla.tick() == 0
    assert held(registry, "clock_jump") == LEADS

    # The hold is over: the reclaims fire, at most 300 a minute for the team, each
    # followed by its page.
    fake.both(1)
    fired_per_minute = []
    for _ in range(5):
        fired_per_minute.append(await sla.tick())
        fake.both(60)
    assert fired_per_minute == [600, 600, 600, 200, 0]
    assert await actions(pool) == {
        "first_response:remind_owner": LEADS,
        "reclaim_warning:remind_owner": LEADS,
        "first_response:return_to_pool": LEADS,
        "first_response:page_oncall": LEADS,
    }
    assert held(registry, "clock_jump") == LEADS
    assert held(registry, "rate_cap") == 700 + 400 + 100


async def test_a_backlog_after_the_monitor_was_down_is_caught_up_under_the_cap(
    setup: tuple[SlaHandler, asyncpg.Pool, Fake, CollectorRegistry],
) -> None:
    sla, pool, fake, registry = setup
    fake.both(60)
    assert await sla.tick() == 0
    # Down for six hours: the monotonic clock advanced as much as the wall clock.
    fake.both(6 * H)
    first = await sla.tick()
    assert registry.get_sample_value("leadloop_sla_clock_jumps_total") == 0
    assert held(registry, "clock_jump") == 0
    # The missed steps fire at once, except the team's reclaims beyond the cap.
    counts = await actions(pool)
    assert counts["first_response:return_to_pool"] == 300
    assert first == 2 * LEADS + 2 * 300
    later = []
    for _ in range(4):
        fake.both(60)
        later.append(await sla.tick())
    assert later == [600, 600, 200, 0]
    assert (await actions(pool))["first_response:return_to_pool"] == LEADS
    assert (await actions(pool))["first_response:page_oncall"] == LEADS
    assert at(6 * H) < fake.wall.now() <= at(6 * H + 60 * 5)
