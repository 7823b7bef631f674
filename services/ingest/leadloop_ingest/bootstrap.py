"""Ingest's composition root: settings, channels, stores, publisher, handlers, agents and
the webhook — wired once."""

from __future__ import annotations

import os
import sys

import asyncpg
import faust
import httpx

from leadloop import settings as settings_mod
from leadloop.clock import SystemClock
from leadloop.config_file import exit_on_config_error
from leadloop.kafka import FaustPublisher, service_timer
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage
from leadloop.runtime import ReadyContributor, run_service
from leadloop_ingest.adapters.admin import AdminApi, register_admin
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.adapters.feedback_http import Feedback, register_feedback
from leadloop_ingest.adapters.http import Webhook, register_webhook
from leadloop_ingest.adapters.http_limits import install_http_limits
from leadloop_ingest.adapters.intake_http import Replays
from leadloop_ingest.adapters.kafka import register_agents
from leadloop_ingest.adapters.meta import MetaLeadAds, register_lead_webhooks
from leadloop_ingest.adapters.metrics import IngestMetrics, serve_metrics
from leadloop_ingest.adapters.postgres import LeadStore
from leadloop_ingest.adapters.replay_cache import PostgresReplayCache
from leadloop_ingest.adapters.score_model_file import ScoreModelFile
from leadloop_ingest.adapters.timeline_store import TimelineStore
from leadloop_ingest.adapters.vendor_hooks import (
    VendorHooks,
    load_inbound,
    register_vendor_hooks,
)
from leadloop_ingest.domain.channels import Channels
from leadloop_ingest.domain.rate_limit import RateLimiter
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits, ValidLead, validate
from leadloop_ingest.handlers import IngestGuard, IngestHandler, TimelineHandler
from leadloop_ingest.settings import IngestSettings

log = get_logger(__name__)


def main() -> None:
    cfg = settings_mod.load(IngestSettings)
    assert cfg.identity_pepper is not None  # enforced by the settings validator
    pepper = cfg.identity_pepper.get_secret_value().encode()
    with exit_on_config_error("ingest"):
        channels = _channels(cfg)
        # The vendor webhooks' mapping and the secrets its targets name.
        inbound = (
            None if cfg.crm_inbound_file is None else load_inbound(cfg.crm_inbound_file, os.environ)
        )
    limits = build_limits(channels, cfg.max_record_bytes)
    score_model = None if cfg.score_model_file is None else ScoreModelFile(cfg.score_model_file)

    def wire(app: faust.App, pool: asyncpg.Pool) -> ReadyContributor:
        publisher = FaustPublisher(app, cfg.kafka.topic_prefix)
        clock = SystemClock()
        guard = IngestGuard(limit=cfg.consecutive_invalid_limit)
        handler = IngestHandler(
            store=LeadStore(pool),
            publisher=publisher,
            clock=clock,
            limits=limits,
            weights=ScoringWeights(),
            pepper=pepper,
            guard=guard,
            score_model=(lambda: None) if score_model is None else score_model.current,
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
        admin_token = cfg.admin_token
        admin = (
            None
            if admin_token is None
            else AdminApi(guard, admin_token.get_secret_value().encode())
        )
        register_admin(app, admin, cfg.admin)

        async def publish_raw(
            key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
        ) -> None:
            await publisher.publish(
                [OutMessage(topic="leads.raw", key=key, value=value, headers=tuple(headers))]
            )

        def precheck(source: str, body: bytes) -> str | None:
            """The webhook's 422: the body is judged at once, as the agent would judge it
            (a channel-native shape through its channel's adapter)."""
            verdict = validate(body, limits, source_hint=source)
            if not isinstance(verdict, ValidLead):
                return verdict.reason.value
            # One channel's secret cannot speak for another channel.
            return None if verdict.raw.source == source else "source_mismatch"

        install_http_limits(
            app,
            limiter=RateLimiter(rate_per_s=cfg.http_rate_per_s, burst=cfg.http_burst),
            max_connections=cfg.http_max_connections,
        )
        metrics = IngestMetrics()
        serve_metrics(app, metrics)
        replay_cache = PostgresReplayCache(pool)
        # One cache for every signed endpoint and every worker behind the URL.
        replays = Replays(
            replay_cache,
            clock,
            retention_s=cfg.webhook_replay_retention_s,
            counted=metrics.replayed,
        )

        async def purge_replays() -> None:
            try:
                metrics.purged(await replay_cache.purge(clock.now()))
            except Exception as exc:  # PostgreSQL away: the next pass purges
                log.warning("replay_purge_failed", error=type(exc).__name__)

        service_timer(
            app, interval=cfg.webhook_replay_purge_s, name="ingest-replay-purge", run=purge_replays
        )
        webhook = Webhook(
            replays=replays,
            publish_raw=publish_raw,
            secrets=cfg.webhook_secrets,
            schemes={s: c.signature for s, c in channels.channels.items()},
            sources=frozenset(channels.channels),
            prevalidate=precheck,
            clock=clock,
            tolerance_s=cfg.webhook_tolerance_s,
            max_body_bytes=cfg.max_record_bytes,
            max_in_flight=cfg.webhook_max_in_flight,
            publish_timeout_s=cfg.webhook_publish_timeout_s,
        )
        # Vendor webhooks and Meta's Graph API: one HTTP client for the process's life.
        vendor_http = httpx.AsyncClient(timeout=cfg.meta_graph_timeout_s)
        if cfg.meta_verify_token is not None and cfg.meta_access_token is not None:
            meta = MetaLeadAds(
                webhook=webhook,
                sources=frozenset(
                    s
                    for s, c in channels.channels.items()
                    if c.adapter == "lead_ads" and c.signature == "meta"
                ),
                app_secrets=cfg.webhook_secrets,
                verify_token=cfg.meta_verify_token,
                access_token=cfg.meta_access_token,
                graph_url=cfg.meta_graph_url,
                graph_version=cfg.meta_graph_version,
                http=vendor_http,
                publish_raw=publish_raw,
                clock=clock,
                publish_timeout_s=cfg.webhook_publish_timeout_s,
                replays=replays,
            )
            register_lead_webhooks(app, webhook, meta)
        else:
            register_webhook(app, webhook)
        if inbound is not None:
            hooks = VendorHooks(
                inbound=inbound.inbound,
                secrets=inbound.secrets,
                api_tokens=inbound.api_tokens,
                publisher=publisher,
                clock=clock,
                http=vendor_http,
                publish_timeout_s=cfg.webhook_publish_timeout_s,
                replays=replays,
            )
            register_vendor_hooks(app, hooks)
        feedback = Feedback(
            replays=replays,
            publish=publisher.publish,
            secrets=cfg.crm_secrets,
            clock=clock,
            tolerance_s=cfg.webhook_tolerance_s,
            max_body_bytes=cfg.crm_max_body_bytes,
            max_in_flight=cfg.webhook_max_in_flight,
            publish_timeout_s=cfg.webhook_publish_timeout_s,
        )
        register_feedback(app, feedback)

        def ready() -> tuple[bool, dict[str, object]]:
            halted = guard.halted_at
            if halted is None:
                return True, {"halted": False}
            return False, {"halted": True, "partition": halted.partition, "offset": halted.offset}

        return ready

    run_service("ingest", cfg, cfg.http, wire)


def _channels(cfg: IngestSettings) -> Channels:
    """The channel set; ``ConfigFileError`` names the file and the field (never its contents)."""
    channels = load_channels(cfg.channels_file)
    unknown = sorted(set(cfg.webhook_secrets) - set(channels.channels))
    if unknown:
        sys.stderr.write(f"leadloop: LEADLOOP_WEBHOOK_SECRETS names unknown channels {unknown}\n")
        raise settings_mod.ConfigError(2)
    return channels


def build_limits(channels: Channels, max_record_bytes: int) -> Limits:
    """What every record is judged by: the channels file decides. Ingest's operator
    tools validate with the same limits (leadloop_ingest.tools)."""
    return Limits(
        max_record_bytes=max_record_bytes,
        sources=frozenset(channels.channels),
        default_phone_region=channels.phone_regions(),
        channels=channels,
    )
