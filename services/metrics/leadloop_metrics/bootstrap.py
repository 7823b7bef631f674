"""metrics' composition root."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import faust

from leadloop import settings as settings_mod
from leadloop.calendar import CalendarSet
from leadloop.clock import SystemClock
from leadloop.config_file import exit_on_config_error, load_yaml
from leadloop.runtime import run_service
from leadloop_metrics.adapters.config import label_policy
from leadloop_metrics.adapters.kafka import register_agents
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.silence import Silence
from leadloop_metrics.handlers import MetricsHandler
from leadloop_metrics.settings import MetricsSettings


def main() -> None:
    cfg = settings_mod.load(MetricsSettings)
    with exit_on_config_error("metrics"):
        labels = label_policy(cfg.sources, cfg.teams, cfg.rules_file)
        days = cfg.silent_after_business_days
        silence = Silence(days, load_yaml(cfg.calendars_file, CalendarSet)) if days else None

    def wire(app: faust.App, pool: asyncpg.Pool) -> None:
        store = MetricStore(pool)
        # The served counters start from what PostgreSQL holds: a restart never resets them.
        view = SeriesView(asyncio.get_event_loop().run_until_complete(store.load()))
        handler = MetricsHandler(
            store=store,
            view=view,
            labels=labels,
            silence=silence,
            clock=SystemClock(),
            forecast_strength=cfg.forecast_strength,
            forecast_refresh=timedelta(seconds=cfg.forecast_refresh_seconds),
        )
        register_agents(
            app,
            handler,
            view.render,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            refresh_seconds=cfg.refresh_seconds,
            sweep_seconds=cfg.silence_sweep_seconds,
            forecast_seconds=cfg.forecast_seconds,
        )

    run_service("metrics", cfg, cfg.http, wire)
