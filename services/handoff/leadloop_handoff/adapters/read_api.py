"""``GET /v1/leads/{lead_id}`` for reps' tools, served by the hand-off's faust web server.

| status | body ``error`` | when |
|---|---|---|
| 200 | (the lead, ``domain.lead_view``) | authorized; ``contact`` only with the contact scope |
| 401 | ``missing_token`` / ``invalid_token`` | no bearer token / a malformed or unknown one |
| 403 | ``insufficient_scope`` | the client holds no read scope |
| 404 | ``not_found`` | no such lead, an erased one, or a lead id outside 1..128 chars |
| 429 | ``rate_limited`` | the client's rate is spent (``Retry-After``) |
| 503 | ``unavailable`` | PostgreSQL is unreachable (``Retry-After``) |
| 500 | ``internal_error`` | anything else (e.g. the audit row could not be written) |

Audit: a reply that carries contact details is audited in ``lead_reads`` (client, lead,
scope ``leads:read-contact``, time) in the same transaction as the read; the reply is
sent only after that commit, so no contact data leaves unaudited. Summary reads carry no
personal data and are not audited (only logged). Every reply says ``Cache-Control:
no-store``.

Logs carry the client id, status and code only: never a token, a header value, a lead's
contact details or its id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol, cast

import asyncpg
import faust
from aiohttp import web

from leadloop.clock import Clock, SystemClock
from leadloop.config_file import load_yaml
from leadloop.db import TRANSIENT_ERRORS
from leadloop.logging import get_logger
from leadloop_handoff.adapters.lead_reader import LeadReader
from leadloop_handoff.domain.access import (
    CONTACT,
    Client,
    Clients,
    ClientsFile,
    Refusal,
    authorize,
)
from leadloop_handoff.domain.lead_view import LeadRows, lead_view

__all__ = [
    "PATH",
    "LeadSession",
    "LeadStore",
    "ReadApi",
    "Reply",
    "build_read_api",
    "load_clients",
    "register_read_api",
]

log = get_logger(__name__)

PATH: Final = "/v1/leads/{lead_id}"
MAX_LEAD_ID: Final = 128
RETRY_AFTER_UNAVAILABLE_S: Final = 5
_NO_STORE: Final = {"Cache-Control": "no-store"}


class LeadSession(Protocol):
    """One transaction (``adapters.lead_reader.ReadSession``)."""

    async def read(self, lead_id: str, *, contact: bool) -> LeadRows | None: ...

    async def audit(self, client_id: str, lead_id: str, scope: str, at: datetime) -> None: ...


class LeadStore(Protocol):
    """Hands out sessions that commit when their block ends without an exception."""

    def session(self) -> AbstractAsyncContextManager[LeadSession]: ...


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class ReadApi:
    """The endpoint's decisions and its reads, independent of the web framework."""

    def __init__(
        self,
        *,
        store: LeadStore,
        clients: Clients,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clients = clients
        self._clock = clock
        self._monotonic = monotonic

    async def handle(self, headers: Mapping[str, str], lead_id: str) -> Reply:
        decision = authorize(headers, self._clients, self._monotonic())
        if isinstance(decision, Refusal):
            return _refuse(decision.client_id, decision.status, decision.code, decision.headers)
        client = decision
        # PostgreSQL text cannot hold NUL, so no lead has it (and asyncpg would raise).
        if not 1 <= len(lead_id) <= MAX_LEAD_ID or "\x00" in lead_id:
            return _refuse(client.client_id, 404, "not_found")
        try:
            body = await self._read(client, lead_id)
        except TRANSIENT_ERRORS as exc:
            log.warning("lead_read_unavailable", client=client.client_id, error=type(exc).__name__)
            retry_after = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}
            return _refuse(client.client_id, 503, "unavailable", retry_after)
        except Exception as exc:  # e.g. a refused grant: the type only, a message may hold data
            log.error("lead_read_failed", client=client.client_id, error=type(exc).__name__)
            return _refuse(client.client_id, 500, "internal_error")
        if body is None:
            return _refuse(client.client_id, 404, "not_found")
        log.info("lead_read", client=client.client_id, status=200, code="ok")
        return Reply(200, body, dict(_NO_STORE))

    async def _read(self, client: Client, lead_id: str) -> dict[str, Any] | None:
        contact = client.reads_contact
        async with self._store.session() as session:
            body = lead_view(await session.read(lead_id, contact=contact), contact=contact)
            if body is not None and contact:
                # Same transaction: the audit row commits with the read or neither does.
                await session.audit(client.client_id, lead_id, CONTACT, self._clock.now())
        return body


def _refuse(
    client_id: str | None, status: int, code: str, headers: Mapping[str, str] | None = None
) -> Reply:
    log.info("lead_read", client=client_id, status=status, code=code)
    return Reply(status, {"error": code}, {**_NO_STORE, **(headers or {})})


def load_clients(path: Path) -> Clients:
    """Read and validate ``config/api-clients.yaml`` once, at start-up.

    Raises ``ConfigFileError`` naming the file (and the fields) when it cannot be read
    or is not a valid clients file.
    """
    return Clients.from_file(load_yaml(path, ClientsFile))


def build_read_api(
    pool: asyncpg.Pool, clients_file: Path, *, clock: Clock | None = None
) -> ReadApi:
    """The endpoint on the service's pool, with the clients of ``clients_file``."""
    clients = load_clients(clients_file)
    log.info("read_api_clients", clients=len(clients))
    return ReadApi(store=LeadReader(pool), clients=clients, clock=clock or SystemClock())


def register_read_api(app: faust.App, api: ReadApi) -> None:
    """Serve ``GET /v1/leads/{lead_id}`` on ``app``'s web server with ``api``."""

    class LeadRead(faust.web.View):
        async def get(self, request: faust.web.Request, lead_id: str) -> faust.web.Response:
            # faust's web driver is aiohttp; its headers are case-insensitive.
            reply = await api.handle(cast(web.Request, request).headers, lead_id)
            return self.json(reply.body, status=reply.status, headers=reply.headers)

    app.page(PATH, name="lead-read")(LeadRead)
