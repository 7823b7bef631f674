"""Vendor CRM webhooks, ``POST /v1/crm/hooks/{hubspot|jiandaoyun|salesforce}/{target}``:
authenticity checked, each item mapped (``domain/vendors/``) and published with
acks=all to ``crm.activities`` / ``crm.stage-changes`` (key: lead_id), unusable items to
``crm.rejected``, before the vendor gets its 2xx (or Salesforce its ``<Ack>true</Ack>``).

| status | when |
|---|---|
| 200 | every item published, rejected onto ``crm.rejected`` or ignored |
| 401 | HubSpot / 简道云 signature missing, wrong or stale (body ``fail`` for 简道云) |
| 403 | Salesforce message from another ``OrganizationId`` |
| 404 | no target of that name and kind |
| 409 | HubSpot / 简道云: this signed request came before (``replayed``; ``fail`` for 简道云) |
| 400 / 413 | not the vendor's format / body over 1 MiB |
| 503 | the broker, HubSpot's CRM API or the replay cache did not answer: the vendor retries |

``crm.rejected`` gets a PII-free reference, not the vendor's body (a 简道云 push or a
Salesforce sObject holds every field of the record, contact data included): value
``{"reason", "detail", "reference": {vendor ids}}``, headers ``reject-reason``,
``reject-detail``, ``source-endpoint``, ``rejected-at``.

Replays: a HubSpot or 简道云 request whose signature verified is reserved in ingest's
replay cache (``Replays``, scope ``crm-hook:<vendor>:<target>``) before its items are
looked up or published; HubSpot's until its signed timestamp + 5 minutes (after which
it no longer verifies), 简道云's for the retention (its timestamp has no window). A 503
of ours releases it, so the vendor's retry is taken. Salesforce signs nothing: no key.

Redelivery: every event id is derived from the vendor's ids, so a redelivered item is
the same event and consumers dedupe it (ingest's timeline keys rows by event_id); this
process also remembers the last 10,000 ids it published and does not send them again.
Logs carry target names, counts and codes only.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import faust
import httpx
from aiohttp import web

from leadloop.clock import Clock
from leadloop.config_file import ConfigFileError, load_yaml
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage, Publisher, event_message
from leadloop_ingest.adapters.intake_http import Replays, Reply, TooLarge, read_body, refusal
from leadloop_ingest.domain.replays import REPLAYED, Reservation
from leadloop_ingest.domain.vendor_signatures import (
    HUBSPOT_TOLERANCE_S,
    JDY_SIGNATURE,
    hubspot_replay_parts,
    verify_hubspot_v3,
    verify_jiandaoyun,
)
from leadloop_ingest.domain.vendors.hubspot import (
    HubSpotLookup,
    HubSpotRecord,
    hubspot_events,
    hubspot_lookup,
    map_hubspot,
)
from leadloop_ingest.domain.vendors.jiandaoyun import map_jiandaoyun
from leadloop_ingest.domain.vendors.mapping import Emit, Ignore, Outcome, Reject
from leadloop_ingest.domain.vendors.salesforce import (
    map_salesforce,
    parse_outbound,
    same_org,
    soap_ack,
)
from leadloop_ingest.domain.vendors.targets import Inbound, Target

__all__ = [
    "PATH",
    "HookReply",
    "InboundSetup",
    "VendorHooks",
    "load_inbound",
    "register_vendor_hooks",
]

log = get_logger(__name__)

PATH = "/v1/crm/hooks/{vendor}/{target}"
MAX_BODY_BYTES = 1024 * 1024
RECENT_IDS = 10_000
RETRY_AFTER_S = 30


@dataclass(frozen=True, slots=True)
class InboundSetup:
    inbound: Inbound
    secrets: dict[str, bytes]
    api_tokens: dict[str, str]


def load_inbound(path: Path, environ: Mapping[str, str]) -> InboundSetup:
    """Read and validate ``path`` once, at start-up, and the secrets its targets name.

    Raises ``ConfigFileError`` naming the file and the field (or the environment
    variable a field names), never a secret or a value.
    """
    inbound = load_yaml(path, Inbound)
    secrets: dict[str, bytes] = {}
    tokens: dict[str, str] = {}
    for name, target in inbound.targets.items():
        for key, env in (
            ("secret_env", target.secret_env),
            ("api_token_env", target.api_token_env),
        ):
            if env is None:
                continue
            value = environ.get(env, "").strip()
            if len(value) < 16:
                raise ConfigFileError(
                    path,
                    f"targets.{name}.{key}",
                    f"environment variable {env} is unset or shorter than 16 characters",
                )
            if key == "secret_env":
                secrets[name] = value.encode()
            else:
                tokens[name] = value
    return InboundSetup(inbound, secrets, tokens)


@dataclass(frozen=True, slots=True)
class HookReply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(reply: Reply) -> HookReply:
    return HookReply(reply.status, json.dumps(reply.body).encode(), headers=reply.headers)


class _Unavailable(Exception):
    """A dependency (HubSpot's CRM API, the broker) did not answer: the vendor retries."""


class VendorHooks:
    """The endpoints' decisions and their Kafka hand-off, independent of the web framework."""

    def __init__(
        self,
        *,
        inbound: Inbound,
        secrets: Mapping[str, bytes],
        api_tokens: Mapping[str, str],
        publisher: Publisher,
        clock: Clock,
        http: httpx.AsyncClient,
        publish_timeout_s: float = 10.0,
        replays: Replays | None = None,
    ) -> None:
        self._replays = replays
        self._targets = inbound.targets
        self._secrets = dict(secrets)
        self._tokens = dict(api_tokens)
        self._publisher = publisher
        self._clock = clock
        self._http = http
        self._publish_timeout_s = publish_timeout_s
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def handle(
        self,
        vendor: str,
        name: str,
        *,
        method: str,
        uri: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        chunks: AsyncIterator[bytes],
    ) -> HookReply:
        target = self._targets.get(name)
        if target is None or target.kind != vendor:
            return self._refuse(404, "unknown_target", vendor, "other")
        try:
            body = await read_body(chunks, max_bytes=MAX_BODY_BYTES)
        except TooLarge:
            return self._refuse(413, "too_large", vendor, name)
        try:
            if vendor == "hubspot":
                return await self._hubspot(name, target, method, uri, headers, body)
            if vendor == "jiandaoyun":
                return await self._jiandaoyun(name, target, query, headers, body)
            return await self._salesforce(name, target, body)
        except _Unavailable as exc:
            log.warning("vendor_hook_unavailable", vendor=vendor, target=name, cause=str(exc))
            return _json_reply(refusal(503, "unavailable", retry_after=RETRY_AFTER_S))

    # ------------------------------------------------------------------------ HubSpot

    async def _hubspot(
        self,
        name: str,
        target: Target,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> HookReply:
        if target.public_base_url is not None:
            # The URI HubSpot signed is the public one, not what a proxy forwarded.
            path = uri.split("://", 1)[-1].partition("/")[2]
            uri = f"{target.public_base_url}/{path}"
        failure = verify_hubspot_v3(
            secret=self._secrets[name],
            method=method,
            uri=uri,
            body=body,
            headers=headers,
            now=self._clock.now(),
        )
        if failure is not None:
            return self._refuse(401, failure.value, "hubspot", name)
        events = hubspot_events(body)
        if events is None:
            return self._refuse(400, "invalid_payload", "hubspot", name)
        signature, signed_at = hubspot_replay_parts(headers)
        held = await self._reserve("hubspot", name, signature, signed_at, HUBSPOT_TOLERANCE_S)
        if isinstance(held, Reply):
            return _json_reply(held)
        return await self._kept(held, self._hubspot_deliver(name, target, events))

    async def _hubspot_deliver(
        self, name: str, target: Target, events: Sequence[dict[str, Any]]
    ) -> HookReply:
        lookups = [hubspot_lookup(e, target) for e in events]
        gate = asyncio.Semaphore(8)

        async def resolve(lookup: HubSpotLookup | Ignore) -> HubSpotRecord | Reject | None:
            if isinstance(lookup, Ignore):
                return None
            async with gate:
                return await self._hubspot_record(name, target, lookup)

        records = await asyncio.gather(*(resolve(lk) for lk in lookups))
        now = self._clock.now()
        outcomes: list[Outcome] = []
        for event, lookup, record in zip(events, lookups, records, strict=True):
            if isinstance(lookup, Ignore) or record is None:
                outcomes.append(lookup if isinstance(lookup, Ignore) else Ignore("lookup"))
            elif isinstance(record, Reject):
                outcomes.append(record)
            else:
                outcomes.append(map_hubspot(event, record, target, name, now))
        counts = await self._publish(outcomes, "hubspot", name)
        return _json_reply(Reply(200, {"status": "ok", **counts}))

    async def _hubspot_record(
        self, name: str, target: Target, lookup: HubSpotLookup
    ) -> HubSpotRecord | Reject:
        found = await self._hubspot_get(
            name, target, lookup.object_type, lookup.object_id, lookup.properties
        )
        if found is None:
            return Reject(
                "record_not_found",
                f"{name}: HubSpot has no {lookup.object_type} with this id",
                {
                    "vendor": "hubspot",
                    "target": name,
                    "object_type": lookup.object_type,
                    "object_id": lookup.object_id,
                },
            )
        properties, contacts = found
        lead_field = target.fields.lead_id
        lead_id = properties.get(lead_field)
        if not (isinstance(lead_id, str) and lead_id.strip()) and contacts:
            contact = await self._hubspot_get(name, target, "contacts", contacts[0], (lead_field,))
            lead_id = contact[0].get(lead_field) if contact else None
        lead = lead_id.strip() if isinstance(lead_id, str) and lead_id.strip() else None
        return HubSpotRecord(properties, lead)

    async def _hubspot_get(
        self, name: str, target: Target, object_type: str, object_id: str, props: Sequence[str]
    ) -> tuple[dict[str, Any], list[str]] | None:
        """(properties, associated contact ids) of one CRM record; None when HubSpot says
        it does not exist. Raises ``_Unavailable`` on anything that a retry may cure."""
        url = f"{target.api_url.rstrip('/')}/crm/v3/objects/{object_type}/{quote(object_id)}"
        params = {"properties": ",".join(props), "associations": "contacts"}
        try:
            response = await self._http.get(
                url, params=params, headers={"Authorization": f"Bearer {self._tokens[name]}"}
            )
        except httpx.HTTPError as exc:
            raise _Unavailable(f"hubspot_api_{type(exc).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _Unavailable(f"hubspot_api_status_{response.status_code}")
        try:
            decoded = response.json()
        except ValueError:
            raise _Unavailable("hubspot_api_invalid_json") from None
        props_out = decoded.get("properties") if isinstance(decoded, dict) else None
        assoc = decoded.get("associations") if isinstance(decoded, dict) else None
        results = (
            (assoc or {}).get("contacts", {}).get("results", []) if isinstance(assoc, dict) else []
        )
        contacts = [str(r["id"]) for r in results if isinstance(r, dict) and "id" in r]
        return (props_out if isinstance(props_out, dict) else {}), contacts

    # ------------------------------------------------------------------------- 简道云

    async def _jiandaoyun(
        self,
        name: str,
        target: Target,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> HookReply:
        failure = verify_jiandaoyun(
            secret=self._secrets[name],
            body=body,
            nonce=query.get("nonce"),
            timestamp=query.get("timestamp"),
            headers=headers,
        )
        if failure is not None:
            log.info("vendor_hook_refused", vendor="jiandaoyun", target=name, reason=failure.value)
            # The vendor's demo answers "fail"; the status says why to a human.
            return HookReply(401, b"fail", "text/plain")
        lowered = {k.lower(): v for k, v in headers.items()}
        # The signature covers nonce and timestamp, but no window applies to them (none is
        # documented): the key is kept for the retention, as for Meta's untimed signature.
        held = await self._reserve("jiandaoyun", name, lowered[JDY_SIGNATURE.lower()], None, 0)
        if isinstance(held, Reply):
            if held.status == 409:
                return HookReply(409, b"fail", "text/plain")
            return _json_reply(held)
        return await self._kept(held, self._jiandaoyun_deliver(name, target, lowered, body))

    async def _jiandaoyun_deliver(
        self, name: str, target: Target, lowered: Mapping[str, str], body: bytes
    ) -> HookReply:
        outcome = map_jiandaoyun(
            body, lowered.get("x-jdy-deliverid"), target, name, self._clock.now()
        )
        await self._publish([outcome], "jiandaoyun", name)
        return HookReply(200, b"success", "text/plain")

    # ----------------------------------------------------------------------- Salesforce

    async def _salesforce(self, name: str, target: Target, body: bytes) -> HookReply:
        # No replay cache here: an Outbound Message carries no signature (its authenticity
        # is the OrganizationId, TLS and Salesforce's IP ranges), so there is no signed
        # request to hold a key for; a replayed message is its Notification Ids again, the
        # same event ids, deduped downstream.
        message = parse_outbound(body)
        if isinstance(message, Reject):
            return self._refuse(400, message.reason, "salesforce", name)
        assert target.organization_id is not None  # by Target's validator
        if not same_org(target.organization_id, message.organization_id):
            return self._refuse(403, "wrong_organization", "salesforce", name)
        now = self._clock.now()
        outcomes = [map_salesforce(n, target, name, now) for n in message.notifications]
        await self._publish(outcomes, "salesforce", name)
        # Only now, after acks=all: an Ack tells Salesforce to drop the message for good.
        return HookReply(200, soap_ack(True), "text/xml")

    # --------------------------------------------------------------------------- shared

    async def _reserve(
        self,
        vendor: str,
        name: str,
        signature: str,
        signed_at: datetime | None,
        tolerance_s: int,
    ) -> Reservation | Reply | None:
        """Hold a verified request's replay key: the reservation; a 409 ``replayed``
        (counted as endpoint ``crm-hook``) or 503 (cache unreachable) for the vendor's
        format; None when no replay cache is wired.

        A replay is refused 409, not answered 2xx: the key may belong to a first delivery
        still in flight that can yet fail (503) and be released, and a 2xx would tell the
        vendor to drop what no later retry could then repair. The refusal's retries are
        bounded: HubSpot retries a 4xx at most 10 times over 24 hours (and a retry with
        the same signature is stale after 5 minutes); 简道云 documents no retry schedule,
        and its key expires after the retention, when a redelivery is taken again and
        deduped by event id.
        """
        if self._replays is None:
            return None
        held = await self._replays.reserve(
            scope=f"crm-hook:{vendor}:{name}",
            signature=signature,
            signed_at=signed_at,
            tolerance_s=tolerance_s,
        )
        if isinstance(held, Reply) and held.status == 409:
            log.info("vendor_hook_refused", status=409, reason=REPLAYED, vendor=vendor, target=name)
        return held

    async def _kept(self, held: Reservation | None, delivery: Awaitable[HookReply]) -> HookReply:
        """``delivery``'s reply. Any failure of ours (``_Unavailable``, answered 503, or a
        bug) releases ``held`` first: the vendor's retry of the request is not a replay."""
        try:
            return await delivery
        except BaseException:
            if held is not None and self._replays is not None:
                await self._replays.release(held)
            raise

    async def _publish(self, outcomes: Sequence[Outcome], vendor: str, name: str) -> dict[str, int]:
        now = self._clock.now()
        endpoint = f"/v1/crm/hooks/{vendor}/{name}"
        fresh: list[str] = []
        messages: list[OutMessage] = []
        counts = {"published": 0, "rejected": 0, "ignored": 0, "repeated": 0}
        for outcome in outcomes:
            if isinstance(outcome, Emit):
                event_id = outcome.event.event_id
                if event_id in self._recent or event_id in fresh:
                    counts["repeated"] += 1
                    continue
                fresh.append(event_id)
                messages.append(event_message(outcome.event, key=outcome.event.lead_id))
                counts["published"] += 1
            elif isinstance(outcome, Reject):
                counts["rejected"] += 1
                value = {
                    "reason": outcome.reason,
                    "detail": outcome.detail,
                    "reference": outcome.reference,
                }
                messages.append(
                    OutMessage(
                        topic="crm.rejected",
                        key=name.encode(),
                        value=json.dumps(value).encode(),
                        headers=(
                            ("reject-reason", outcome.reason.encode()),
                            ("reject-detail", outcome.detail.encode()),
                            ("source-endpoint", endpoint.encode()),
                            ("rejected-at", now.isoformat().encode()),
                        ),
                    )
                )
            else:
                counts["ignored"] += 1
        if messages:
            try:
                await asyncio.wait_for(self._publisher.publish(messages), self._publish_timeout_s)
            except Exception as exc:  # broker down, timeout: the vendor retries
                raise _Unavailable(f"publish_{type(exc).__name__}") from None
        for event_id in fresh:
            self._recent[event_id] = None
            if len(self._recent) > RECENT_IDS:
                self._recent.popitem(last=False)
        log.info("vendor_hook_handled", vendor=vendor, target=name, **counts)
        return counts

    def _refuse(self, status: int, reason: str, vendor: str, name: str) -> HookReply:
        return _json_reply(
            refusal(status, reason, log_as="vendor_hook_refused", vendor=vendor, target=name)
        )


def register_vendor_hooks(app: faust.App, hooks: VendorHooks) -> None:
    """Serve ``POST /v1/crm/hooks/{vendor}/{target}`` on ``app``'s web server."""

    class VendorHook(faust.web.View):
        async def post(
            self, request: faust.web.Request, vendor: str, target: str
        ) -> faust.web.Response:
            req = cast(web.Request, request)
            reply = await hooks.handle(
                vendor,
                target,
                method=req.method,
                uri=str(req.url),
                query=req.query,
                headers=req.headers,
                chunks=req.content.iter_any(),
            )
            return self.bytes(
                reply.body,
                content_type=reply.content_type,
                status=reply.status,
                headers=dict(reply.headers),
            )

    app.page(PATH, name="crm-vendor-hooks")(VendorHook)
