"""notifier's composition root."""

from __future__ import annotations

import os

import asyncpg
import faust
import httpx
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from leadloop import settings as settings_mod
from leadloop.calendar import CalendarSet
from leadloop.clock import Clock, ScaledClock, SystemClock
from leadloop.logging import get_logger
from leadloop.runtime import run_service
from leadloop_notifier.adapters.channels import (
    ChannelConfigError,
    build_channel,
    parse_channel_config,
)
from leadloop_notifier.adapters.kafka import register_agents
from leadloop_notifier.adapters.metrics import PrometheusMetrics
from leadloop_notifier.adapters.postgres import NotifierStore
from leadloop_notifier.adapters.transports import ChannelTransport
from leadloop_notifier.config import config_error, load_yaml_model
from leadloop_notifier.domain.config import NotifyConfig
from leadloop_notifier.handlers import NotifierHandler
from leadloop_notifier.rendering import Renderer, TemplateError
from leadloop_notifier.settings import NotifierSettings

log = get_logger(__name__)


def main() -> None:
    cfg = settings_mod.load(NotifierSettings)
    # Each fails fast, naming the file and the field: a notifier must not guess.
    notify = load_yaml_model(cfg.notify_file, NotifyConfig)
    calendars = load_yaml_model(cfg.calendars_file, CalendarSet)
    env = dict(os.environ)
    channel_configs = {}
    for name, raw in notify.channels.items():
        try:
            channel_configs[name] = parse_channel_config(raw)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise config_error(
                f"{cfg.notify_file}: channels.{name}.{where}: {first['msg']}"
            ) from None
    group_addresses = {}
    for team_id, team in notify.teams.items():
        if team.pool_channel is not None:
            group_addresses[f"team:{team_id}"] = _address(cfg, team.pool_channel.address_env)
    for route_name, route in notify.alertmanager.items():
        group_addresses[f"alert:{route_name}"] = _address(cfg, route.address_env)
    renderer = Renderer(cfg.templates_dir)
    try:
        for template_set in {t.templates for t in (notify.default, *notify.teams.values())} | {
            r.templates for r in notify.alertmanager.values()
        }:
            renderer.check(template_set)
    except TemplateError as exc:
        raise config_error(f"{cfg.notify_file}: {exc}") from None

    clock: Clock = SystemClock()
    if cfg.accelerated():
        clock = ScaledClock(cfg.test_time_scale, cfg.origin())
        log.warning("accelerated_time", scale=cfg.test_time_scale)

    def wire(app: faust.App, pool: asyncpg.Pool) -> None:
        client = httpx.AsyncClient()
        try:
            transports = {
                name: ChannelTransport(build_channel(c, env, client))
                for name, c in channel_configs.items()
            }
        except ChannelConfigError as exc:
            raise config_error(f"{cfg.notify_file}: {exc}") from None
        registry = CollectorRegistry(auto_describe=True)
        handler = NotifierHandler(
            store=NotifierStore(pool),
            clock=clock,
            config=notify,
            calendars=calendars,
            renderer=renderer,
            transports=transports,
            group_addresses=group_addresses,
            metrics=PrometheusMetrics(registry),
            claim_limit=cfg.claim_limit,
            send_concurrency=cfg.send_concurrency,
            lease_seconds=cfg.lease_seconds,
            retention_days=cfg.retention_days,
        )
        register_agents(
            app,
            handler,
            registry,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            tick_seconds=cfg.tick_seconds,
            digest_seconds=cfg.digest_seconds,
            alertmanager_token=(
                cfg.alertmanager_token.get_secret_value() if cfg.alertmanager_token else None
            ),
        )

    run_service("notifier", cfg, cfg.http, wire)


def _address(cfg: NotifierSettings, name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise config_error(f"{cfg.notify_file}: environment variable {name} is not set")
    return value
