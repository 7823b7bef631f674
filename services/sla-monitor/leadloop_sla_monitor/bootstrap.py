"""sla-monitor's composition root."""

from __future__ import annotations

import asyncpg
import faust
import yaml

from leadloop import settings as settings_mod
from leadloop.calendar import CalendarSet
from leadloop.clock import SystemClock
from leadloop.kafka import FaustPublisher
from leadloop.runtime import run_service
from leadloop_sla_monitor.adapters.kafka import register_agents
from leadloop_sla_monitor.adapters.postgres import ClockStore
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_sla_monitor.handlers import SlaHandler
from leadloop_sla_monitor.settings import SlaSettings


def main() -> None:
    cfg = settings_mod.load(SlaSettings)
    # Both fail fast when invalid: a service must not guess at its SLA rules.
    with cfg.policies_file.open(encoding="utf-8") as f:
        policies = PolicySet.model_validate(yaml.safe_load(f))
    with cfg.calendars_file.open(encoding="utf-8") as f:
        calendars = CalendarSet.model_validate(yaml.safe_load(f))

    def wire(app: faust.App, pool: asyncpg.Pool) -> None:
        handler = SlaHandler(
            store=ClockStore(pool, policies, calendars),
            publisher=FaustPublisher(app, cfg.kafka.topic_prefix),
            clock=SystemClock(),
        )
        register_agents(
            app,
            handler,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            tick_seconds=cfg.tick_seconds,
        )

    run_service("sla-monitor", cfg, cfg.http, wire)
