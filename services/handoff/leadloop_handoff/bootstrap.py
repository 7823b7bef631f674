"""The hand-off's composition root: settings, CRM targets, store, handler, agents, and
the read API for reps' tools."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import aiohttp
import asyncpg
import faust

from leadloop import settings as settings_mod
from leadloop.clock import SystemClock
from leadloop.config_file import ConfigFileError, exit_on_config_error
from leadloop.logging import get_logger
from leadloop.runtime import ReadyContributor, run_service
from leadloop_handoff.adapters.kafka import register_agents
from leadloop_handoff.adapters.lead_reader import LeadReader
from leadloop_handoff.adapters.metrics import HandoffMetrics
from leadloop_handoff.adapters.postgres import HandoffStore
from leadloop_handoff.adapters.read_api import ReadApi, load_clients, register_read_api
from leadloop_handoff.adapters.targets import (
    CrmConfigError,
    CrmFile,
    SessionFactory,
    build_target,
    load_crm_file,
)
from leadloop_handoff.domain.deliveries import TargetPlan
from leadloop_handoff.domain.pacing import TokenBucket
from leadloop_handoff.domain.retry import RetryPolicy
from leadloop_handoff.handlers import HandoffHandler, Lane
from leadloop_handoff.settings import HandoffSettings

log = get_logger(__name__)


def main() -> None:
    cfg = settings_mod.load(HandoffSettings)
    with exit_on_config_error("handoff"):
        crm = load_crm_file(cfg.crm_file)
        clients = load_clients(cfg.api_clients_file)
        lanes = _lanes(cfg, crm)
    log.info("handoff_targets", targets=sorted(lanes))

    def wire(app: faust.App, pool: asyncpg.Pool) -> ReadyContributor:
        metrics = HandoffMetrics(lanes)
        handler = HandoffHandler(
            store=HandoffStore(pool),
            lanes=lanes,
            clock=SystemClock(),
            metrics=metrics,
            lease=timedelta(seconds=cfg.lease_seconds),
            claim_batch=cfg.claim_batch,
        )
        register_agents(
            app,
            handler,
            metrics.registry,
            prefix=cfg.kafka.topic_prefix,
            batch_size=cfg.kafka.batch_size,
            within=cfg.kafka.batch_within_s,
            tick_seconds=cfg.tick_seconds,
            erasure_scan_seconds=cfg.erasure_scan_seconds,
        )

        register_read_api(
            app, ReadApi(store=LeadReader(pool), clients=clients, clock=SystemClock())
        )

        async def close_targets() -> None:
            for lane in lanes.values():
                await lane.target.aclose()
            log.info("handoff_targets_closed", targets=sorted(lanes))

        # The app's exit stack unwinds after its timers were cancelled: a delivery pass
        # in flight at shutdown is stopped as before (its rows keep their lease), not
        # cut by a closed session.
        app.async_exit_stack.push_async_callback(close_targets)

        def ready() -> tuple[bool, dict[str, object]]:
            return True, {"targets": sorted(lanes)}

        return ready

    run_service("handoff", cfg, cfg.http, wire)


def _lanes(cfg: HandoffSettings, crm: CrmFile) -> dict[str, Lane]:
    lanes: dict[str, Lane] = {}
    for i, target_cfg in enumerate(crm.targets):
        if not target_cfg.enabled:
            continue
        try:
            target = build_target(
                target_cfg, os.environ, _session_factory(target_cfg.max_in_flight)
            )
        except CrmConfigError as exc:
            # A secret the entry names by its variable: the message names the variable.
            raise ConfigFileError(cfg.crm_file, f"targets.{i}", str(exc)) from None
        lanes[target_cfg.name] = Lane(
            plan=TargetPlan(
                name=target_cfg.name,
                supports_pool=target.supports_pool,
                supports_erase=target.supports_erase,
                owner_ids=dict(target_cfg.owner_ids),
                pool=dict(target_cfg.pool),
            ),
            target=target,
            policy=RetryPolicy(
                base_s=cfg.retry_base_s,
                cap_s=cfg.retry_cap_s,
                max_attempts=target_cfg.max_attempts,
            ),
            max_in_flight=target_cfg.max_in_flight,
            bucket=TokenBucket(
                rate=target_cfg.rate_per_s,
                burst=max(1.0, float(target_cfg.max_in_flight)),
                now=time.monotonic(),
            ),
        )
    return lanes


def _session_factory(max_in_flight: int) -> SessionFactory:
    """A target's own HTTP session, made on its first send (aiohttp binds a session to
    the running event loop, which does not exist yet here) and closed by the target's
    ``aclose`` at shutdown. Its connection pool is as large as the target's window, so a
    slow CRM holds only its own connections. Each request carries the target's timeout;
    proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), as httpx read them."""

    def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_in_flight), trust_env=True
        )

    return make
