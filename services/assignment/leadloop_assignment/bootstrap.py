"""Assignment's composition root."""

from __future__ import annotations

import asyncpg
import faust

from leadloop import settings as settings_mod
from leadloop.clock import SystemClock
from leadloop.kafka import FaustPublisher
from leadloop.runtime import run_service
from leadloop_assignment.adapters.kafka import register_agents
from leadloop_assignment.adapters.postgres import AssignmentStore
from leadloop_assignment.adapters.rules_file import RuleFile
from leadloop_assignment.handlers import AssignmentHandler
from leadloop_assignment.settings import AssignmentSettings


def main() -> None:
    cfg = settings_mod.load(AssignmentSettings)
    rules = RuleFile(cfg.rules_file)  # fails fast on an invalid rule set

    def wire(app: faust.App, pool: asyncpg.Pool) -> None:
        handler = AssignmentHandler(
            store=AssignmentStore(pool),
            publisher=FaustPublisher(app, cfg.kafka.topic_prefix),
            clock=SystemClock(),
            rules=rules.current,
        )
        register_agents(
            app,
            handler,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
        )

    run_service("assignment", cfg, cfg.http, wire)
