"""Assignment's composition root."""

from __future__ import annotations

import asyncpg
import faust

from leadloop import settings as settings_mod
from leadloop.calendar_watch import watch_calendars
from leadloop.clock import SystemClock
from leadloop.config_file import exit_on_config_error
from leadloop.decoding import InputDecoder
from leadloop.kafka import FaustPublisher
from leadloop.runtime import ReadyContributor, run_service
from leadloop_assignment.adapters.kafka import register_agents
from leadloop_assignment.adapters.postgres import PostgresUnitOfWork
from leadloop_assignment.adapters.rules_file import RuleFile, load_calendars
from leadloop_assignment.handlers import AssignmentHandler, ChangeHandler
from leadloop_assignment.settings import AssignmentSettings


def main() -> None:
    cfg = settings_mod.load(AssignmentSettings)
    with exit_on_config_error("assignment"):
        # Both fail fast on an invalid file.
        calendars = load_calendars(cfg.calendars_file)
        rules = RuleFile(cfg.rules_file, calendars)

    def wire(app: faust.App, pool: asyncpg.Pool) -> ReadyContributor:
        store = PostgresUnitOfWork(pool)
        publisher = FaustPublisher(app, cfg.kafka.topic_prefix)
        clock = SystemClock()
        inputs = InputDecoder("assignment")
        register_agents(
            app,
            AssignmentHandler(
                store=store, publisher=publisher, clock=clock, rules=rules.current, inputs=inputs
            ),
            ChangeHandler(
                store=store, publisher=publisher, clock=clock, rules=rules.current, inputs=inputs
            ),
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            decide_within=cfg.decide_within_s,
            pool_check_seconds=cfg.pool_check_seconds,
        )
        # Loud, not fatal: a team's calendar without this year's holidays.
        return watch_calendars(app, calendars, clock)

    run_service("assignment", cfg, cfg.http, wire)
