"""Meta Lead Ads, the pure parts: the webhook's verification handshake, the ``leadgen``
change envelope, the Graph API request for one lead, and Graph errors as codes.

Docs (developers.facebook.com/docs/…): ``graph-api/webhooks/getting-started`` (the
``hub.mode=subscribe`` handshake, ``X-Hub-Signature-256``, retries for up to 36 hours
on a non-200), ``graph-api/webhooks/getting-started/webhooks-for-leadgen`` (the
``leadgen`` change value), ``marketing-api/guides/lead-ads/retrieving`` (``GET
/{leadgen_id}`` with a page token returns ``field_data``), ``graph-api/guides/secure-
requests`` (``appsecret_proof`` = hex HMAC-SHA256(app secret, access token)) and
``graph-api/guides/error-handling`` (the error body and its codes).

Nothing here does I/O or reads the clock; every function is total (property-tested).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote, urlencode

__all__ = [
    "GRAPH_LEAD_FIELDS",
    "GraphFailure",
    "GraphProblem",
    "LeadgenChange",
    "appsecret_proof",
    "challenge",
    "classify_graph_error",
    "graph_lead_url",
    "is_envelope",
    "lead_record",
    "leadgen_changes",
]

#: The Lead fields read (facebook-python-business-sdk ``adobjects/lead.py``): the ones
#: the ``lead_ads`` channel adapter maps; ``field_data`` holds the form's answers.
GRAPH_LEAD_FIELDS: Final = (
    "id",
    "created_time",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "form_id",
    "is_organic",
    "platform",
    "field_data",
)
_ID = re.compile(r"[0-9]{1,32}")
_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,2}")


def challenge(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo when Meta's subscription handshake presents our
    verify token; None (answer 403) otherwise."""
    mode, token = params.get("hub.mode"), params.get("hub.verify_token")
    echo = params.get("hub.challenge")
    if mode != "subscribe" or token is None or echo is None or not verify_token:
        return None
    if not hmac.compare_digest(token.encode("utf-8", "replace"), verify_token.encode()):
        return None
    return echo[:256]


@dataclass(frozen=True, slots=True)
class LeadgenChange:
    leadgen_id: str
    page_id: str | None
    form_id: str | None


def is_envelope(decoded: Any) -> bool:
    """Meta's webhook envelope (``{"object": "page", "entry": [...]}``) rather than a
    lead in the contract shape, which the ``lead_ads`` channel also accepts."""
    return isinstance(decoded, dict) and decoded.get("object") == "page" and "entry" in decoded


def leadgen_changes(decoded: Any) -> list[LeadgenChange] | None:
    """Every ``leadgen`` change of the envelope, once per ``leadgen_id`` (Meta may repeat
    a lead in one batch); None when the envelope's shape is not Meta's. Changes of
    other fields are skipped. IDs are accepted as numbers or strings, as Meta sends both.
    """
    if not is_envelope(decoded) or not isinstance(decoded["entry"], list):
        return None
    seen: dict[str, LeadgenChange] = {}
    for entry in decoded["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            return None
        for change in changes:
            if not isinstance(change, dict) or change.get("field") != "leadgen":
                continue
            value = change.get("value")
            lead = _id(value.get("leadgen_id")) if isinstance(value, dict) else None
            if lead is None or not isinstance(value, dict):
                return None
            seen.setdefault(
                lead, LeadgenChange(lead, _id(value.get("page_id")), _id(value.get("form_id")))
            )
    return list(seen.values())


def _id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 10**32:
        return str(value)
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        return value.strip()
    return None


def appsecret_proof(app_secret: bytes, access_token: str) -> str:
    """``appsecret_proof``: hex HMAC-SHA256 of the access token, keyed by the app secret."""
    return hmac.new(app_secret, access_token.encode(), hashlib.sha256).hexdigest()


def graph_lead_url(
    base: str, version: str, leadgen_id: str, access_token: str, app_secret: bytes | None
) -> str:
    """``GET {base}/{version}/{leadgen_id}?fields=…&access_token=…[&appsecret_proof=…]``.
    The URL holds the token: it is never logged."""
    if not _VERSION.fullmatch(version) or not _ID.fullmatch(leadgen_id):
        raise ValueError("graph version or leadgen id malformed")
    query = {"fields": ",".join(GRAPH_LEAD_FIELDS), "access_token": access_token}
    if app_secret:
        query["appsecret_proof"] = appsecret_proof(app_secret, access_token)
    return f"{base.rstrip('/')}/{version}/{quote(leadgen_id)}?{urlencode(query)}"


class GraphProblem(StrEnum):
    """What a failed Graph call means for the webhook (logged, and in the 5xx body)."""

    AUTH = "graph_auth"  # 190, 102: the page token is invalid or expired; re-authorise
    PERMISSION = "graph_permission"  # 10, 200-299: leads_retrieval etc. missing
    RATE_LIMIT = "graph_rate_limit"  # 4, 17, 32, 341, 613, 80005: throttled
    TRANSIENT = "graph_transient"  # 1, 2, a 5xx without a code: retry later
    NOT_FOUND = "graph_not_found"  # 100 (bad parameter / unknown object), 404
    UNAVAILABLE = "graph_unavailable"  # no answer at all (timeout, refused)
    INVALID = "graph_invalid_lead"  # a 200 whose body is not a lead for this id
    OTHER = "graph_error"


_RATE_LIMIT_CODES: Final = frozenset({4, 17, 32, 341, 613, 80005})


@dataclass(frozen=True, slots=True)
class GraphFailure:
    problem: GraphProblem
    status: int | None
    code: int | None = None
    subcode: int | None = None
    #: Meta's trace id, for Meta support: it names a request, not a person.
    fbtrace_id: str | None = None


def classify_graph_error(status: int, body: bytes) -> GraphFailure:
    """A non-2xx Graph answer as codes. The message, user title and user message are
    never kept: they may quote the request."""
    decoded: Any
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    if not isinstance(error, dict):
        problem = GraphProblem.TRANSIENT if status >= 500 else GraphProblem.OTHER
        if status == 404:
            problem = GraphProblem.NOT_FOUND
        return GraphFailure(problem, status)
    code, sub = _int(error.get("code")), _int(error.get("error_subcode"))
    trace = error.get("fbtrace_id")
    trace = trace[:64] if isinstance(trace, str) and trace.isascii() else None
    if code in (190, 102):
        problem = GraphProblem.AUTH
    elif code in _RATE_LIMIT_CODES:
        problem = GraphProblem.RATE_LIMIT
    elif code == 10 or (code is not None and 200 <= code <= 299):
        problem = GraphProblem.PERMISSION
    elif code in (1, 2) or status >= 500:
        problem = GraphProblem.TRANSIENT
    elif code == 100 or status == 404:
        problem = GraphProblem.NOT_FOUND
    else:
        problem = GraphProblem.OTHER
    return GraphFailure(problem, status, code, sub, trace)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def lead_record(body: bytes, leadgen_id: str) -> bytes | GraphFailure:
    """The Graph lead as the record for ``leads.raw``: Meta's JSON as sent when its ``id``
    is ``leadgen_id`` (the ``lead_ads`` adapter then takes ``id`` as source_lead_id);
    a body that is not that lead is a failure, not a guess."""
    try:
        decoded: Any = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return GraphFailure(GraphProblem.INVALID, 200)
    if not isinstance(decoded, dict) or str(decoded.get("id")) != leadgen_id:
        return GraphFailure(GraphProblem.INVALID, 200)
    return body
