"""Running a service process: the part of every composition root that is the same.

A service's ``bootstrap.main`` builds its settings and its handler, then calls
``run_service`` with a ``wire`` function that registers its agents and views on the
faust app. This owns the event loop, the PostgreSQL pool, logging, ``/healthz`` and
``/readyz``, and graceful shutdown (SIGTERM/SIGINT stop the faust worker, which
finishes the batch in flight and commits only acknowledged offsets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import faust

from leadloop.db import create_pool
from leadloop.kafka import make_app, register_health
from leadloop.logging import configure, get_logger
from leadloop.settings import HttpSettings, ServiceSettings

__all__ = [
    "FAUST_PAGES_OFF",
    "ReadyContributor",
    "Wiring",
    "consumer_group_error",
    "run_service",
    "serve_no_faust_pages",
]

log = get_logger(__name__)

#: A service's own readiness condition: (ready, details for /readyz).
ReadyContributor = Callable[[], tuple[bool, dict[str, Any]]]

#: Registers agents, timers and views; may return the service's own readiness condition.
Wiring = Callable[[faust.App, asyncpg.Pool], ReadyContributor | None]

#: A worker more than this many records behind on any partition is not "caught up".
MAX_READY_LAG = 10_000


def run_service(service: str, settings: ServiceSettings, http: HttpSettings, wire: Wiring) -> None:
    configure(service, settings.log_level)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pool = loop.run_until_complete(
        create_pool(settings.database_url.get_secret_value(), max_size=8)
    )
    app = make_app(service, settings.kafka, http, data_dir=settings.data_dir)
    serve_no_faust_pages(app)
    own_ready = wire(app, pool)
    # Before its first assignment a worker has no partitions and so no lag, which
    # looks like a caught-up worker with nothing to do; a stop then lands in the
    # middle of the group join. Ready only once the group has assigned it (an empty
    # assignment included: more workers than partitions).
    joined: list[bool] = []

    async def first_assignment(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        if not joined:
            joined.append(True)

    app.on_partitions_assigned.connect(first_assignment)

    async def ready() -> tuple[bool, dict[str, Any]]:
        try:
            db_ok = bool(await pool.fetchval("SELECT true"))
        except Exception:  # any failure means "not ready", reported, never raised
            db_ok = False
        lag = await _lag(app)
        group_error = consumer_group_error(app)
        ok = (
            db_ok
            and bool(joined)
            and not app.rebalancing
            and lag is not None
            and lag <= MAX_READY_LAG
            and group_error is None
        )
        detail: dict[str, Any] = {
            "postgres": db_ok,
            "joined": bool(joined),
            "rebalancing": bool(app.rebalancing),
            "lag": lag,
        }
        if group_error is not None:
            detail["consumer_group_error"] = group_error
        if own_ready is not None:
            own_ok, own_detail = own_ready()
            ok = ok and own_ok
            detail.update(own_detail)
        return ok, detail

    register_health(app, ready)
    log.info("service_starting", port=http.port, topic_prefix=settings.kafka.topic_prefix)
    worker = faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level.upper(),
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    finally:
        if not loop.is_closed():
            loop.run_until_complete(pool.close())


#: faust's own web pages, each off: /router (which worker owns a key: the cluster's
#: worker URLs), /table (table contents), /graph (the worker's service tree), the
#: sensor statistics at / and /assignment/ (on with faust's debug), /performance. The
#: service port serves the service's own routes (/healthz, /readyz, /metrics, its API)
#: and faust's plain production index at / ({"status": "OK"}), nothing else.
FAUST_PAGES_OFF = (
    "web_router_enabled",
    "web_tables_enabled",
    "web_graph_enabled",
    "web_stats_enabled",
    "web_metrics_enabled",
)


def serve_no_faust_pages(app: faust.App) -> None:
    """Turn faust's own pages off, whatever ``APP_DEBUG``/``APP_WEB_*`` say. Call it
    before anything touches ``app.web`` (a view, a page): faust picks its pages then."""
    for setting in FAUST_PAGES_OFF:
        setattr(app.conf, setting, False)


def consumer_group_error(app: faust.App) -> str | None:
    """The error that stopped this worker's consumer group membership, if any.

    aiokafka keeps a fatal group error (GroupAuthorizationFailedError when ACLs deny the
    group, for one) for the consumer's next ``getmany``/``commit`` and stops coordinating
    until it is picked up. faust reads aiokafka's fetcher directly and commits only
    assigned partitions, so it never picks it up: the worker would sit with no
    partitions and no lag, looking ready, while it consumes nothing. The attributes are
    those of the pinned faust-streaming and aiokafka; if they move, this reports nothing
    rather than failing readiness.
    """
    try:
        aiokafka_consumer = app.consumer._thread._consumer  # type: ignore[attr-defined]
        pending = aiokafka_consumer._coordinator._pending_exception
    except AttributeError:  # not started yet, or another driver
        return None
    return None if pending is None else type(pending).__name__


async def _lag(app: faust.App) -> int | None:
    """Records not yet consumed across this worker's partitions; None before assignment."""
    consumer = app.consumer
    try:
        assigned = consumer.assignment()
    except Exception:  # the consumer is not started yet
        return None
    total = 0
    for tp in assigned:
        highwater = consumer.highwater(tp)
        position = await consumer.position(tp)
        if highwater is not None and position is not None:
            total += max(0, highwater - position)
    return total
