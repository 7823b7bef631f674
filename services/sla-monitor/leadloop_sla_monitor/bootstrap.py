"""sla-monitor's composition root."""

from __future__ import annotations

import time
from datetime import timedelta

import asyncpg
import faust
from prometheus_client import CollectorRegistry

from leadloop import settings as settings_mod
from leadloop.calendar import CalendarSet
from leadloop.calendar_watch import watch_calendars
from leadloop.clock import Clock, ScaledClock, SystemClock
from leadloop.config_file import exit_on_config_error, load_yaml
from leadloop.kafka import FaustPublisher
from leadloop.logging import get_logger
from leadloop.runtime import ReadyContributor, run_service
from leadloop_sla_monitor.adapters.alertmanager import AlertmanagerClient
from leadloop_sla_monitor.adapters.kafka import register_agents
from leadloop_sla_monitor.adapters.metrics import PrometheusSlaMetrics
from leadloop_sla_monitor.adapters.postgres import PostgresUnitOfWork
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.restraint import Guard, Restraint
from leadloop_sla_monitor.handlers import SlaHandler
from leadloop_sla_monitor.settings import SlaSettings

log = get_logger(__name__)


def main() -> None:
    cfg = settings_mod.load(SlaSettings)
    # Both fail fast when invalid: a service must not guess at its SLA rules.
    with exit_on_config_error("sla-monitor"):
        policies = load_yaml(cfg.policies_file, PolicySet)
        calendars = load_yaml(cfg.calendars_file, CalendarSet)

    clock: Clock = SystemClock()
    if cfg.accelerated():
        clock = ScaledClock(cfg.test_time_scale, cfg.origin())
        log.warning("accelerated_time", scale=cfg.test_time_scale)

    guard = Guard(
        jump_threshold=timedelta(seconds=cfg.clock_jump_threshold_seconds),
        hold=timedelta(seconds=cfg.clock_jump_hold_seconds),
        per_minute=cfg.taking_actions_per_minute,
        rate=cfg.test_time_scale,
    )

    def wire(app: faust.App, pool: asyncpg.Pool) -> ReadyContributor:
        notifier = AlertmanagerClient(cfg.alertmanager_url) if cfg.alertmanager_url else None
        registry = CollectorRegistry(auto_describe=True)
        handler = SlaHandler(
            uow=PostgresUnitOfWork(pool),
            lifecycle=Lifecycle(policies, calendars),
            escalator=Escalator(policies, calendars),
            publisher=FaustPublisher(app, cfg.kafka.topic_prefix),
            clock=clock,
            alerting=policies.alerting,
            send_alerts=notifier.send if notifier else None,
            alert_actions=policies.alerting.actions if notifier else frozenset(),
            restraint=Restraint(guard),
            monotonic=_boottime,
            metrics=PrometheusSlaMetrics(registry),
        )
        register_agents(
            app,
            handler,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            tick_seconds=cfg.tick_seconds,
            alert_poll_seconds=cfg.alert_poll_seconds,
        )
        # Loud, not fatal: a team's calendar without this year's holidays.
        return watch_calendars(app, calendars, clock, registry=registry)

    run_service("sla-monitor", cfg, cfg.http, wire)


def _boottime() -> float:
    """Monotonic seconds that count a suspended machine too (Linux ``CLOCK_BOOTTIME``):
    a host waking from suspend is elapsed time for the restraint, not a jump."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()
