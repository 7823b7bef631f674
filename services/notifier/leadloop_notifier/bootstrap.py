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
from leadloop.config_file import ConfigFileError, exit_on_config_error, load_yaml
from leadloop.logging import get_logger
from leadloop.runtime import run_service
from leadloop_notifier.adapters.channels import (
    ChannelConfig,
    ChannelConfigError,
    build_channel,
    parse_channel_config,
)
from leadloop_notifier.adapters.kafka import register_agents
from leadloop_notifier.adapters.metrics import PrometheusMetrics
from leadloop_notifier.adapters.postgres import NotifierStore
from leadloop_notifier.adapters.transports import ChannelTransport
from leadloop_notifier.domain.config import NotifyConfig
from leadloop_notifier.handlers import NotifierHandler
from leadloop_notifier.rendering import Renderer, TemplateError
from leadloop_notifier.settings import NotifierSettings

log = get_logger(__name__)


def main() -> None:
    cfg = settings_mod.load(NotifierSettings)
    # Each fails fast, naming the file and the field: a notifier must not guess.
    with exit_on_config_error("notifier"):
        notify = load_yaml(cfg.notify_file, NotifyConfig)
        calendars = load_yaml(cfg.calendars_file, CalendarSet)
        channel_configs = _channel_configs(cfg, notify)
        group_addresses = _group_addresses(cfg, notify)
        renderer = Renderer(cfg.templates_dir)
        _check_templates(cfg, notify, renderer)
    env = dict(os.environ)

    clock: Clock = SystemClock()
    if cfg.accelerated():
        clock = ScaledClock(cfg.test_time_scale, cfg.origin())
        log.warning("accelerated_time", scale=cfg.test_time_scale)

    def wire(app: faust.App, pool: asyncpg.Pool) -> None:
        client = httpx.AsyncClient()
        transports = {}
        with exit_on_config_error("notifier"):
            for name, c in channel_configs.items():
                try:
                    transports[name] = ChannelTransport(build_channel(c, env, client))
                except ChannelConfigError as exc:
                    # A secret the channel names by its variable: the message names it.
                    raise ConfigFileError(cfg.notify_file, f"channels.{name}", str(exc)) from None
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


def _channel_configs(cfg: NotifierSettings, notify: NotifyConfig) -> dict[str, ChannelConfig]:
    """Each channel's settings, validated by the model of its kind."""
    configs = {}
    for name, raw in notify.channels.items():
        try:
            configs[name] = parse_channel_config(raw)
        except ValidationError as exc:
            raise ConfigFileError.invalid(cfg.notify_file, exc, within=("channels", name)) from None
    return configs


def _group_addresses(cfg: NotifierSettings, notify: NotifyConfig) -> dict[str, str]:
    """The group chats' addresses, from the variables the file names."""
    addresses = {}
    for team_id, team in notify.teams.items():
        if team.pool_channel is not None:
            field = f"teams.{team_id}.pool_channel.address_env"
            addresses[f"team:{team_id}"] = _address(cfg, field, team.pool_channel.address_env)
    for route_name, route in notify.alertmanager.items():
        field = f"alertmanager.{route_name}.address_env"
        addresses[f"alert:{route_name}"] = _address(cfg, field, route.address_env)
    return addresses


def _address(cfg: NotifierSettings, field: str, name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigFileError(cfg.notify_file, field, f"environment variable {name} is not set")
    return value


def _check_templates(cfg: NotifierSettings, notify: NotifyConfig, renderer: Renderer) -> None:
    """Every template set in use renders: a broken one stops start-up, not a reminder."""
    used = {"default.templates": notify.default.templates}
    used.update({f"teams.{t}.templates": team.templates for t, team in notify.teams.items()})
    used.update(
        {f"alertmanager.{r}.templates": a.templates for r, a in notify.alertmanager.items()}
    )
    checked: set[str] = set()
    for field, template_set in used.items():
        if template_set in checked:
            continue
        checked.add(template_set)
        try:
            renderer.check(template_set)
        except TemplateError as exc:
            raise ConfigFileError(cfg.notify_file, field, str(exc)) from None
