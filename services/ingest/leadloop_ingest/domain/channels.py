"""Per-channel adapters: a channel's native JSON shape mapped to the ``leads.raw`` contract.

Adding a channel is configuration (``config/channels.yaml``) plus, at most, one small
adapter function registered in :data:`ADAPTERS`. An adapter only reshapes: it maps a
decoded JSON object to a dict in the shape of :class:`leadloop.events.RawLead` and
leaves every judgement (lengths, contact, email and phone syntax) to ``validate``.

Failure mode (the contract of every adapter): a native payload whose *shape* an
adapter cannot read raises :class:`AdapterError`, whose ``detail`` names fields and
error kinds only, never a submitted value; the caller rejects the record as
``schema_violation`` with that detail. An adapter raises nothing else, whatever JSON
value it is given (property-tested). Values it can carry but not judge (an over-long
name, a malformed date string) are passed on for ``validate`` to reject.

A record that already carries ``source_lead_id`` is in the contract shape and only
goes through :func:`generic`, whatever the channel's adapter: channels may switch to
the contract shape at any time, and the simulator sends contract-shaped records for
every channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from leadloop.events import deterministic_id

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterError",
    "ChannelConfig",
    "Channels",
    "generic",
    "lead_ads",
    "map_payload",
    "wechat",
]

#: Maps a channel's decoded JSON object to the contract shape; raises only AdapterError.
Adapter = Callable[[str, dict[str, Any]], dict[str, Any]]

_ATTRIBUTE_KEY_MAX: Final = 64  # RawLead.attributes key limit


class AdapterError(ValueError):
    """A native payload whose shape the channel's adapter cannot read.

    ``detail`` names fields and error kinds, never values (it ends up in the
    ``reject-detail`` header). The caller turns it into a ``schema_violation`` reject.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


SourceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]


class ChannelConfig(BaseModel):
    """How one channel's records are read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Name of the adapter in :data:`ADAPTERS`.
    adapter: str = "generic"
    #: ISO 3166 alpha-2 region for phone numbers written without a country code.
    default_phone_region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    #: Webhook signature scheme: leadloop's own HMAC header or Meta's X-Hub-Signature-256.
    signature: Literal["leadloop", "meta"] = "leadloop"

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, v: str) -> str:
        if v not in ADAPTERS:
            raise ValueError(f"unknown adapter {v!r}; known: {', '.join(sorted(ADAPTERS))}")
        return v

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, v: str | None) -> str | None:
        # Well-formed is not enough: an unknown region would make every national number
        # of the channel an invalid_phone reject, so it fails at start-up instead.
        if v is not None and v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region phone numbers can be read for")
        return v


class Channels(BaseModel):
    """Every configured channel by source id (``config/channels.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: dict[SourceId, ChannelConfig] = Field(default_factory=dict)

    def phone_regions(self) -> dict[str, str]:
        """Default phone region per source, for ``Limits.default_phone_region``."""
        return {
            source: cfg.default_phone_region
            for source, cfg in self.channels.items()
            if cfg.default_phone_region is not None
        }


def map_payload(channels: Channels, source: str | None, decoded: Any) -> Any:
    """The decoded record in the contract shape, by its channel's adapter.

    ``source`` is the channel as the transport says it (the ``leadloop-source`` Kafka
    header, or the webhook's path); when it is None, the record's own ``source`` field
    is used. A record of an unknown channel, or one that is not a JSON object, is
    returned unchanged for ``validate`` to judge. Raises :class:`AdapterError` only.
    """
    if source is None and isinstance(decoded, dict):
        own = decoded.get("source")
        source = own if isinstance(own, str) else None
    if source is None or not isinstance(decoded, dict):
        return decoded
    config = channels.channels.get(source)
    if config is None:
        return decoded
    if "source_lead_id" in decoded:
        return generic(source, decoded)
    return ADAPTERS[config.adapter](source, decoded)


# ----------------------------------------------------------------------------- adapters


def generic(source: str, record: dict[str, Any]) -> dict[str, Any]:
    """The contract shape already: only a missing ``source`` is filled from the channel.

    A ``source`` that differs from the channel is left as sent; ``validate`` judges it.
    """
    _require_object(record)
    if record.get("source") is None:
        return {**record, "source": source}
    return record


# Meta's standard lead-form question keys -> contract fields. Several keys may feed one
# field; the first non-empty answer wins.
_LEAD_ADS_FIELDS: Final = MappingProxyType(
    {
        "email": "email",
        "work_email": "email",
        "phone_number": "phone",
        "phone": "phone",
        "work_phone_number": "phone",
        "full_name": "name",
        "name": "name",
        "company_name": "company",
        "company": "company",
        "job_title": "title",
        "country": "country",
        "state": "region",
        "province": "region",
        "city": "city",
        "industry": "industry",
        "product": "product",
        "message": "message",
    }
)
# Top-level ad identifiers worth keeping for attribution (they identify an ad, not a person).
_LEAD_ADS_ATTRIBUTES: Final = (
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "form_id",
    "form_name",
    "page_id",
    "platform",
    "is_organic",
)


def lead_ads(source: str, record: dict[str, Any]) -> dict[str, Any]:
    """A Meta lead-ads lead (Graph API ``leadgen`` object) in the contract shape.

    ``id`` -> ``source_lead_id``; ``created_time`` (``+0000`` offsets or a unix time)
    -> ``occurred_at`` in RFC 3339; ``campaign_name`` -> ``campaign``; standard
    ``field_data`` questions -> contract fields (first value); ``first_name`` and
    ``last_name`` -> ``name`` when there is no full name; any other question ->
    ``attributes`` under its key (cut to 64 characters), several values joined with
    ", ". Ad identifiers go to ``attributes``.
    """
    _require_object(record)
    lead_id = record.get("id")
    if isinstance(lead_id, bool) or not isinstance(lead_id, str | int):
        raise AdapterError("lead_ads: id is missing or not a string")
    out: dict[str, Any] = {"source": source, "source_lead_id": _text(lead_id, "lead_ads: id")}
    if "created_time" in record:
        out["occurred_at"] = _meta_time(record["created_time"])
    campaign = record.get("campaign_name")
    if isinstance(campaign, str) and campaign.strip():
        out["campaign"] = campaign
    attributes: dict[str, Any] = {}
    for key in _LEAD_ADS_ATTRIBUTES:
        value = record.get(key)
        if isinstance(value, str | bool | int | float) and value != "":
            attributes[key] = value
    answers = _field_data(record.get("field_data"))
    first_last: dict[str, str] = {}
    for name, values in answers:
        target = _LEAD_ADS_FIELDS.get(name)
        if target is not None:
            out.setdefault(target, values[0])
        elif name in ("first_name", "last_name"):
            first_last.setdefault(name, values[0])
        else:
            attributes.setdefault(name[:_ATTRIBUTE_KEY_MAX], ", ".join(values))
    if "name" not in out and first_last:
        out["name"] = _join_name(first_last.get("first_name"), first_last.get("last_name"))
    if "country" in out:
        _country_or_attribute(out, attributes)
    if attributes:
        out["attributes"] = attributes
    return out


def _field_data(value: Any) -> list[tuple[str, list[str]]]:
    """``[(question key, non-empty answers)]``; questions left blank are skipped."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdapterError("lead_ads: field_data is not a list")
    answers: list[tuple[str, list[str]]] = []
    for i, entry in enumerate(value):
        where = f"lead_ads: field_data[{i}]"
        if not isinstance(entry, dict):
            raise AdapterError(f"{where} is not an object")
        name, values = entry.get("name"), entry.get("values")
        if not isinstance(name, str) or not name.strip():
            raise AdapterError(f"{where}.name is missing or not a string")
        if isinstance(values, str):  # a single answer not wrapped in a list
            values = [values]
        if not isinstance(values, list):
            raise AdapterError(f"{where}.values is not a list")
        texts = [_text(v, f"{where}.values") for v in values]
        texts = [t for t in texts if t.strip()]
        if texts:
            answers.append((name.strip(), texts))
    return answers


_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def _meta_time(value: Any) -> Any:
    """RFC 3339 from Meta's ``2024-05-01T08:00:00+0000`` or a unix time; any other
    value is passed on as sent, for ``validate`` to reject."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_unix(value, "lead_ads: created_time")
    if isinstance(value, str):
        return _COMPACT_OFFSET.sub(r"\1:\2", value.strip())
    return value


# WeChat form keys (as mini-programs commonly name them, English or Chinese) -> fields.
_WECHAT_FORM_FIELDS: Final = MappingProxyType(
    {
        "name": "name",
        "姓名": "name",
        "company": "company",
        "公司": "company",
        "title": "title",
        "job_title": "title",
        "职位": "title",
        "email": "email",
        "邮箱": "email",
        "phone": "phone",
        "mobile": "phone",
        "手机": "phone",
        "country": "country",
        "province": "region",
        "region": "region",
        "省份": "region",
        "city": "city",
        "城市": "city",
        "industry": "industry",
        "行业": "industry",
        "product": "product",
        "产品": "product",
        "message": "message",
        "留言": "message",
        "备注": "message",
    }
)
# Identifiers of a person or a session; dropped even when a form repeats them.
_WECHAT_NEVER_COPIED: Final = frozenset(
    {"openid", "unionid", "openId", "unionId", "session_key", "sessionKey", "avatarUrl"}
)
# Per-submission ids a mini-program may send (WeChat's formId is issued per submit).
_WECHAT_SUBMISSION_IDS: Final = ("submission_id", "formId", "form_id")


def wechat(source: str, record: dict[str, Any]) -> dict[str, Any]:
    """A WeChat mini-program form submission in the contract shape.

    ``source_lead_id``: the per-submission id (``submission_id``, ``formId`` or
    ``form_id``); without one, an id derived from ``openid`` - so, by the idempotency
    key, that person's next submission is a duplicate. The ``openid`` and ``unionid``
    identify a person and are never copied (not even as the id: it reaches the PII-free
    ``leads.accepted``). ``phone``: ``+countryCode`` + ``purePhoneNumber``, else
    ``phoneNumber``, else the form's phone. ``name``: the form's name, else
    ``nickName``. ``occurred_at``: ``submit_time`` (unix seconds or milliseconds).
    Other form fields go to ``attributes``; other top-level keys (profile data such as
    ``avatarUrl``, session data) are ignored.
    """
    _require_object(record)
    form = record.get("form", {})
    if form is None:
        form = {}
    if not isinstance(form, dict):
        raise AdapterError("wechat: form is not an object")
    out: dict[str, Any] = {"source": source}
    lead_id = _wechat_lead_id(record)
    if lead_id is not None:
        out["source_lead_id"] = lead_id
    if "submit_time" in record:
        out["occurred_at"] = _wechat_time(record["submit_time"])
    phone = _wechat_phone(record)
    if phone is not None:
        out["phone"] = phone
    campaign = record.get("campaign")
    if isinstance(campaign, str) and campaign.strip():
        out["campaign"] = campaign
    attributes: dict[str, Any] = {}
    scene = record.get("scene")  # the mini-program entry point (QR code, article, ...)
    if isinstance(scene, str | int) and not isinstance(scene, bool):
        attributes["scene"] = scene
    for raw_key, value in form.items():
        key = raw_key.strip()
        scalar = _form_value(value)
        if scalar is None or not key or key in _WECHAT_NEVER_COPIED:
            continue
        target = _WECHAT_FORM_FIELDS.get(key)
        if target is not None:
            if target not in out:
                out[target] = _text(scalar, "wechat: form")
        else:
            attributes.setdefault(key[:_ATTRIBUTE_KEY_MAX], scalar)
    nick = record.get("nickName")
    if "name" not in out and isinstance(nick, str) and nick.strip():
        out["name"] = nick
    if "country" in out:
        _country_or_attribute(out, attributes)
    if attributes:
        out["attributes"] = attributes
    return out


def _wechat_lead_id(record: dict[str, Any]) -> str | None:
    for key in _WECHAT_SUBMISSION_IDS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return _text(value, f"wechat: {key}")
    openid = record.get("openid")
    if isinstance(openid, str) and openid.strip():
        # Derived, not copied: stable for idempotency, yet the openid stays out of
        # leads.accepted (where source_lead_id travels) and out of PostgreSQL.
        return "openid-" + deterministic_id("wechat.openid", openid.strip())
    return None  # validate rejects the record: source_lead_id is required


def _wechat_phone(record: dict[str, Any]) -> str | None:
    pure, code = record.get("purePhoneNumber"), record.get("countryCode")
    if isinstance(code, int) and not isinstance(code, bool):
        code = _text(code, "wechat: countryCode")
    if isinstance(pure, str) and pure.strip():
        if isinstance(code, str) and code.strip().lstrip("+").isdigit():
            return f"+{code.strip().lstrip('+')}{pure.strip()}"
        return pure
    full = record.get("phoneNumber")
    if isinstance(full, str) and full.strip():
        return full
    return None


def _wechat_time(value: Any) -> str:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdapterError("wechat: submit_time is not a unix timestamp")
    # WeChat APIs mix seconds and JavaScript's milliseconds; no lead is from 1973 or 5138.
    if abs(value) >= 100_000_000_000:
        value = value / 1000
    return _from_unix(value, "wechat: submit_time")


def _form_value(value: Any) -> str | int | float | bool | None:
    """A form answer as an attribute value; None when blank. Lists of answers (a
    multiple choice) are joined with ", "."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        texts = [_text(v, "wechat: form") for v in value if v is not None]
        texts = [t for t in texts if t.strip()]
        return ", ".join(texts) if texts else None
    raise AdapterError("wechat: a form value is an object, not text, a number or a list")


# ----------------------------------------------------------------------------- helpers


def _require_object(record: Any) -> None:
    # The signature says dict, but the input is whatever JSON a channel sent.
    if not isinstance(record, dict):
        raise AdapterError(f"expected a JSON object, got {type(record).__name__}")


def _text(value: Any, where: str) -> str:
    """A scalar as text; anything else is a shape error."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        try:
            return str(value)
        except ValueError:  # an int beyond Python's str() digit limit
            raise AdapterError(f"{where}: number too long") from None
    raise AdapterError(f"{where}: expected text, got {type(value).__name__}")


def _from_unix(value: float, where: str) -> str:
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # out of range, NaN, infinity
        raise AdapterError(f"{where} is out of range") from None


def _join_name(first: str | None, last: str | None) -> str:
    parts = [p.strip() for p in (first, last) if p and p.strip()]
    # Chinese, Japanese and Korean names read family name first, without a space.
    if len(parts) == 2 and all(_is_cjk(p) for p in parts):
        return parts[1] + parts[0]
    return " ".join(parts)


def _is_cjk(text: str) -> bool:
    return all("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


def _country_or_attribute(out: dict[str, Any], attributes: dict[str, Any]) -> None:
    """Keep ``country`` when it is an ISO alpha-2 code (case aside); a country *name*
    ("中国", "Germany") cannot be routed on, so it is kept in ``attributes`` rather
    than costing the lead."""
    value = out["country"]
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{2}", value.strip()):
        out["country"] = value.strip().upper()
    else:
        attributes.setdefault("country", out.pop("country"))


ADAPTERS: Mapping[str, Adapter] = MappingProxyType(
    {"generic": generic, "lead_ads": lead_ads, "wechat": wechat}
)
