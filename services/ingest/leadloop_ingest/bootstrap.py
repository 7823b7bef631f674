"""Ingest's composition root: settings, store, publisher, handler, agents — wired once."""

from __future__ import annotations

import asyncpg
import faust

from leadloop import settings as settings_mod
from leadloop.clock import SystemClock
from leadloop.kafka import FaustPublisher
from leadloop.runtime import ReadyContributor, run_service
from leadloop_ingest.adapters.admin import register_admin
from leadloop_ingest.adapters.kafka import register_agents
from leadloop_ingest.adapters.postgres import LeadStore
from leadloop_ingest.adapters.timeline_store import TimelineStore
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits
from leadloop_ingest.handlers import IngestGuard, IngestHandler, TimelineHandler
from leadloop_ingest.settings import IngestSettings


def main() -> None:
    cfg = settings_mod.load(IngestSettings)
    assert cfg.identity_pepper is not None  # enforced by the settings validator
    pepper = cfg.identity_pepper.get_secret_value().encode()

    def wire(app: faust.App, pool: asyncpg.Pool) -> ReadyContributor:
        publisher = FaustPublisher(app, cfg.kafka.topic_prefix)
        clock = SystemClock()
        guard = IngestGuard(limit=cfg.consecutive_invalid_limit)
        handler = IngestHandler(
            store=LeadStore(pool),
            publisher=publisher,
            clock=clock,
            limits=Limits(
                max_record_bytes=cfg.max_record_bytes,
                sources=frozenset(cfg.sources),
                default_phone_region=dict(cfg.default_phone_region),
            ),
            weights=ScoringWeights(),
            pepper=pepper,
            guard=guard,
        )
        timeline = TimelineHandler(store=TimelineStore(pool), publisher=publisher, clock=clock)
        register_agents(
            app,
            handler,
            timeline,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
        )

        register_admin(app, guard)

        def ready() -> tuple[bool, dict[str, object]]:
            halted = guard.halted_at
            if halted is None:
                return True, {"halted": False}
            return False, {"halted": True, "partition": halted.partition, "offset": halted.offset}

        return ready

    run_service("ingest", cfg, cfg.http, wire)
