"""Lead traffic for ``leads.raw``: seeded, contract-shaped records from five channels.

Lead traffic model
------------------
Leads come from five channels, weighted web_form 35 %, lead_ads 25 %, wechat 15 %,
trade_show_csv 15 % and referral 10 %. Each record has the contract shape (``RawLead``)
with ``source`` set to the channel id; channels differ in which fields they fill, how
they write timestamps (UTC, +08:00, local time, none) and how they encode JSON. A
person's country decides the script of the name (Chinese characters or Latin), the
phone numbering plan, the cities, the time zone and the budget currency. Phones are
written the many ways people type them; a national format (``020-7946-0958``) only
appears together with ``country``, because without it no one can resolve the number.

Each record is, by one seeded draw:

- about 90 %: a new person (unique email and phone);
- about 3 %: an exact redelivery, the bytes of a recent record again (a webhook retry,
  an at-least-once producer) - same ``source`` and ``source_lead_id``;
- about 3 %: a returning person under a new ``source_lead_id``, possibly via another
  channel, with the same email or phone written differently (case, format);
- about 4 %: malformed, one of :class:`Defect` (invalid JSON, invalid UTF-8, no
  contact, bad source id, wrong types, over 64 KiB, over 50 attributes).

Nothing in a record says what it is; :class:`SimulatedRecord` carries that beside it.
Generation is pure and driven by one ``random.Random(seed)``; ``occurred_at`` lies on a
simulated timeline from a fixed start, so a seed always gives the same bytes, and the
first n records do not depend on how many follow.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from itertools import islice
from typing import Any, Final

from leadloop.simulate.defects import _CORRUPTIONS, Defect
from leadloop.simulate.people import (
    _H,
    _WECHAT_COUNTRIES,
    _ZH_PLACES,
    _Country,
    _draw_person,
    _Person,
    _phone_key,
    _render_email,
    _render_phone,
)

__all__ = [
    "CHANNELS",
    "SIMULATION_EPOCH",
    "RecordKind",
    "SimulatedRecord",
    "generate_leads",
    "generate_records",
    "iter_records",
]

CHANNELS: Final = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
_CHANNEL_WEIGHTS: Final = (35, 25, 15, 15, 10)

#: A Monday 09:00 in Beijing: business hours for the largest share of the traffic.
SIMULATION_EPOCH: Final = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)

_MALFORMED_SHARE: Final = 0.04
_REDELIVERY_SHARE: Final = 0.03
_RETURNING_SHARE: Final = 0.03
_MEAN_GAP_S: Final = 20.0  # simulated seconds between two leads
_REDELIVERY_WINDOW: Final = 200  # retries repeat something recent, not last month's lead


class RecordKind(StrEnum):
    FRESH = "fresh"
    REDELIVERY = "redelivery"
    RETURNING = "returning"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One ``leads.raw`` record and, beside it, what the simulator meant it to be."""

    channel: str
    kind: RecordKind
    key: bytes | None
    value: bytes
    defect: Defect | None = None


# --------------------------------------------------------------------------- channel content

_INDUSTRIES: Final = ("software", "manufacturing", "retail", "healthcare", "financial_services",
                      "education", "logistics", "real_estate", "energy", "hospitality")  # fmt: skip
_PRODUCTS: Final = ("crm_cloud", "analytics_suite", "marketing_automation", "service_desk",
                    "data_platform")  # fmt: skip
_MESSAGES_LATIN: Final = (
    "Interested in a demo next week.", "Please send pricing for 50 seats.",
    "Can you integrate with our ERP?", "Looking for a partner in APAC.",
    "We are replacing our current CRM this quarter.",
)  # fmt: skip
_MESSAGES_ZH: Final = ("请尽快联系我，想了解价格。", "我们想试用一下数据分析模块。",
                       "能否安排下周演示？", "需要支持企业微信集成。")  # fmt: skip
_CAMPAIGNS: Final = {
    "web_form": ("2025-spring-webinar", "seo-organic", "baidu-sem-crm", "google-ads-analytics",
                 "pricing-page"),
    "lead_ads": ("meta-leadgen-q1-global", "meta-leadgen-q1-apac", "ig-retargeting-demo"),
    "wechat": ("wechat-article-0412", "wechat-mini-program", "wechat-live-0318"),
    "trade_show_csv": ("expo-shanghai-2025", "cebit-2025", "websummit-2025"),
    "referral": ("partner-program", "customer-referral-2025"),
}  # fmt: skip
#: Share of records of a channel that carry each optional field.
_FIELD_ODDS: Final = {
    # field:          web_form lead_ads wechat trade_show referral
    "email":          (0.97, 0.95, 0.30, 0.90, 0.80),
    "phone":          (0.70, 0.90, 0.97, 0.60, 0.80),
    "company":        (0.80, 0.50, 0.60, 0.98, 0.90),
    "title":          (0.50, 0.40, 0.50, 0.90, 0.60),
    "country":        (0.90, 1.00, 1.00, 0.95, 0.90),
    "region":         (0.50, 0.00, 0.60, 0.30, 0.40),
    "city":           (0.60, 0.70, 0.80, 0.80, 0.60),
    "industry":       (0.50, 0.30, 0.40, 0.70, 0.60),
    "product":        (0.80, 0.60, 0.60, 0.70, 0.70),
    "company_size":   (0.50, 0.30, 0.30, 0.60, 0.60),
    "budget":         (0.30, 0.10, 0.20, 0.20, 0.50),
    "campaign":       (0.80, 1.00, 0.90, 1.00, 0.60),
    "message":        (0.40, 0.05, 0.50, 0.20, 0.60),
}  # fmt: skip
_SIZE_BUCKETS: Final = ((1, 10, 20), (11, 50, 25), (51, 200, 25), (201, 1000, 18),
                        (1001, 5000, 8), (5001, 100_000, 4))  # fmt: skip


# --------------------------------------------------------------------------- records


def _occurred_at(rng: random.Random, channel: str, country: _Country, now: datetime) -> str | None:
    """Each channel writes time its own way; CSV imports and some referrals have none."""
    if channel == "web_form":
        return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if channel == "lead_ads":
        return now.isoformat(timespec="seconds")
    if channel == "wechat":
        return now.astimezone(timezone(8 * _H)).isoformat(timespec="seconds")
    if (channel == "trade_show_csv" and rng.random() < 0.3) or rng.random() < 0.1:
        return None
    return now.astimezone(timezone(country.utc_offset)).isoformat(timespec="seconds")


def _budget(rng: random.Random) -> int | float:
    amount = round(10 ** rng.uniform(3.5, 6.0), -3)
    # Some forms take cents: the field is a JSON number, not an integer.
    return amount - 0.01 if rng.random() < 0.1 else int(amount)


def _company_size(rng: random.Random) -> int:
    low, high, _ = rng.choices(_SIZE_BUCKETS, [w for _, _, w in _SIZE_BUCKETS])[0]
    return rng.randint(low, high)


def _attributes(rng: random.Random, channel: str, campaign: str) -> dict[str, str | int | bool]:
    if channel == "web_form":
        return {
            "utm_source": rng.choice(("baidu", "google", "linkedin", "newsletter")),
            "utm_medium": rng.choice(("cpc", "organic", "email")),
            "utm_campaign": campaign,
            "landing_page": rng.choice(("/pricing", "/demo", "/zh/contact", "/analytics")),
            "consent_marketing": rng.random() < 0.7,
        }
    if channel == "lead_ads":
        return {
            "platform": rng.choice(("facebook", "instagram")),
            "ad_id": str(rng.randrange(10**17, 10**18)),
            "adset_id": str(rng.randrange(10**17, 10**18)),
            "form_id": str(rng.randrange(10**14, 10**15)),
            "is_organic": False,
        }
    if channel == "wechat":
        return {
            "official_account": "leadloop_cn",
            "scene": rng.choice(("qr_code", "article", "mini_program", "live_stream")),
            "follower": rng.random() < 0.8,
        }
    if channel == "trade_show_csv":
        return {
            "event": campaign,
            "booth": f"{rng.choice('ABCDEF')}{rng.randint(1, 60)}",
            "badge_scanned": rng.random() < 0.85,
            "import_batch": f"{campaign}-batch-{rng.randint(1, 5)}",
        }
    return {
        "referrer_type": rng.choice(("customer", "partner", "employee")),
        "referrer_id": f"cust-{rng.randrange(10_000):04d}",
        "program": campaign,
    }


def _encode(channel: str, lead: dict[str, Any]) -> bytes:
    """Channels serialise differently; all of it is valid UTF-8 JSON."""
    if channel == "web_form":
        return json.dumps(lead, ensure_ascii=False).encode()
    if channel == "lead_ads":  # the ad platform's API escapes everything non-ASCII
        return json.dumps(lead, separators=(",", ":")).encode()
    return json.dumps(lead, ensure_ascii=False, separators=(",", ":")).encode()


def _key(channel: str, lead: dict[str, Any]) -> bytes | None:
    # Keyed by the idempotency pair so a redelivery lands on the original's partition;
    # the CSV import produces unkeyed records, which the contract allows.
    if channel == "trade_show_csv":
        return None
    return f"{lead['source']}:{lead['source_lead_id']}".encode()


class _TrafficGenerator:
    """Draws records one by one from a single seeded PRNG (see the module docstring)."""

    def __init__(self, seed: int, start: datetime) -> None:
        self._rng = random.Random(seed)
        self._now = start
        self._emails: set[str] = set()
        self._phones: set[str] = set()
        self._lead_ids: set[tuple[str, str]] = set()
        self._rows: Counter[str] = Counter()
        self._people: list[_Person] = []
        self._recent: list[SimulatedRecord] = []

    def next(self) -> SimulatedRecord:
        rng = self._rng
        self._now += timedelta(seconds=round(rng.expovariate(1 / _MEAN_GAP_S), 3))
        draw = rng.random()
        if draw < _MALFORMED_SHARE:
            return self._malformed()
        draw -= _MALFORMED_SHARE
        if draw < _REDELIVERY_SHARE and self._recent:
            return self._redelivery()
        draw -= _REDELIVERY_SHARE
        if draw < _RETURNING_SHARE and self._people:
            return self._returning()
        return self._fresh()

    # -- the four kinds

    def _fresh(self) -> SimulatedRecord:
        channel = self._channel()
        person = self._new_person(channel)
        lead = self._lead(channel, person, show=None)
        person.shown_email, person.shown_phone = "email" in lead, "phone" in lead
        self._people.append(person)
        return self._remember(
            SimulatedRecord(channel, RecordKind.FRESH, _key(channel, lead), _encode(channel, lead))
        )

    def _redelivery(self) -> SimulatedRecord:
        original = self._rng.choice(self._recent[-_REDELIVERY_WINDOW:])
        return SimulatedRecord(
            original.channel, RecordKind.REDELIVERY, original.key, original.value
        )

    def _returning(self) -> SimulatedRecord:
        person = self._rng.choice(self._people)
        channel = self._channel()
        if channel == "wechat" and person.country.code not in _WECHAT_COUNTRIES:
            channel = "web_form"
        lead = self._lead(channel, person, show=(person.shown_email, person.shown_phone))
        return self._remember(
            SimulatedRecord(
                channel, RecordKind.RETURNING, _key(channel, lead), _encode(channel, lead)
            )
        )

    def _malformed(self) -> SimulatedRecord:
        rng = self._rng
        channel = self._channel()
        lead = self._lead(channel, self._new_person(channel), show=(True, True))
        defect = rng.choice(tuple(Defect))
        value = _CORRUPTIONS[defect](rng, lead)
        return SimulatedRecord(channel, RecordKind.MALFORMED, _key(channel, lead), value, defect)

    # -- helpers

    def _remember(self, record: SimulatedRecord) -> SimulatedRecord:
        self._recent.append(record)
        if len(self._recent) > 2 * _REDELIVERY_WINDOW:
            del self._recent[:_REDELIVERY_WINDOW]
        return record

    def _channel(self) -> str:
        return self._rng.choices(CHANNELS, _CHANNEL_WEIGHTS)[0]

    def _new_person(self, channel: str) -> _Person:
        # Fresh people never share an email or phone by accident, so every match
        # downstream is a deliberate returning person.
        while True:
            person = _draw_person(self._rng, channel)
            email = f"{person.email_local}@{person.email_domain}".lower()
            phone = _phone_key(person)
            if email not in self._emails and phone not in self._phones:
                self._emails.add(email)
                self._phones.add(phone)
                return person

    def _source_lead_id(self, channel: str) -> str:
        rng = self._rng
        while True:
            if channel == "web_form":
                lead_id = f"wf_{rng.getrandbits(64):016x}"
            elif channel == "lead_ads":
                lead_id = str(rng.randrange(10**15, 10**16))
            elif channel == "wechat":
                lead_id = f"wx{self._now:%Y%m%d}{rng.randrange(10**8):08d}"
            elif channel == "trade_show_csv":
                event = rng.choice(_CAMPAIGNS["trade_show_csv"])
                self._rows[event] += 1
                lead_id = f"{event}-row-{self._rows[event]:05d}"
            else:
                self._rows[channel] += 1
                lead_id = f"REF-{self._now:%Y}-{self._rows[channel]:06d}"
            if (channel, lead_id) not in self._lead_ids:
                self._lead_ids.add((channel, lead_id))
                return lead_id

    def _contacts(self, channel: str, show: tuple[bool, bool] | None) -> tuple[bool, bool]:
        if show is not None:
            return show
        odds = CHANNELS.index(channel)
        email = self._rng.random() < _FIELD_ODDS["email"][odds]
        phone = self._rng.random() < _FIELD_ODDS["phone"][odds]
        if not (email or phone):  # the contract needs one; pick what the channel favours
            email, phone = channel != "wechat", channel == "wechat"
        return email, phone

    def _lead(
        self, channel: str, person: _Person, show: tuple[bool, bool] | None
    ) -> dict[str, Any]:
        """A contract-shaped record; ``show`` forces which contacts appear."""
        rng, odds = self._rng, CHANNELS.index(channel)

        def has(field_name: str) -> bool:
            return rng.random() < _FIELD_ODDS[field_name][odds]

        with_email, with_phone = self._contacts(channel, show)
        lead: dict[str, Any] = {"source": channel, "source_lead_id": self._source_lead_id(channel)}
        occurred = _occurred_at(rng, channel, person.country, self._now)
        if occurred is not None:
            lead["occurred_at"] = occurred
        lead["name"] = person.name
        if with_email:
            lead["email"] = _render_email(rng, person)
        phone = _render_phone(rng, person) if with_phone else None
        if phone is not None:
            lead["phone"] = phone
        self._fill_company(lead, person, has)
        # A number without "+" (national, or 00 + code) is only resolvable with a country.
        national = phone is not None and not phone.startswith("+")
        self._fill_place(lead, channel, person, has, force_country=national)
        self._fill_interest(lead, channel, person, has)
        return lead

    def _fill_company(
        self, lead: dict[str, Any], person: _Person, has: Callable[[str], bool]
    ) -> None:
        if has("company"):
            lead["company"] = person.company
        if has("title"):
            lead["title"] = person.title

    def _fill_place(
        self,
        lead: dict[str, Any],
        channel: str,
        person: _Person,
        has: Callable[[str], bool],
        *,
        force_country: bool,
    ) -> None:
        region, city = person.place
        if channel == "wechat":  # WeChat forms are filled in Chinese
            region, city = _ZH_PLACES.get(region, region), _ZH_PLACES.get(city, city)
        if has("country") or force_country:
            lead["country"] = person.country.code
        if has("region"):
            lead["region"] = region
        if has("city"):
            lead["city"] = city

    def _fill_interest(
        self, lead: dict[str, Any], channel: str, person: _Person, has: Callable[[str], bool]
    ) -> None:
        rng = self._rng
        campaign = rng.choice(_CAMPAIGNS[channel])
        if has("industry"):
            lead["industry"] = rng.choice(_INDUSTRIES)
        if has("product"):
            lead["product"] = rng.choice(_PRODUCTS)
        if has("company_size"):
            lead["company_size"] = _company_size(rng)
        if has("budget"):
            lead["budget"] = _budget(rng)
        if has("campaign"):
            lead["campaign"] = campaign
        if has("message"):
            lead["message"] = rng.choice(_MESSAGES_ZH if person.chinese else _MESSAGES_LATIN)
        attributes = _attributes(rng, channel, campaign)
        if "budget" in lead:
            attributes["currency"] = person.country.currency
        lead["attributes"] = attributes


def iter_records(seed: int, *, start: datetime = SIMULATION_EPOCH) -> Iterator[SimulatedRecord]:
    """The endless traffic for ``seed``, record by record; pure and deterministic."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    generator = _TrafficGenerator(seed, start.astimezone(UTC))
    while True:
        yield generator.next()


def generate_records(
    seed: int, n: int, *, start: datetime = SIMULATION_EPOCH
) -> list[SimulatedRecord]:
    """The first ``n`` records of the traffic for ``seed``."""
    return list(islice(iter_records(seed, start=start), n))


def generate_leads(
    seed: int, n: int, *, start: datetime = SIMULATION_EPOCH
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of the first ``n`` ``leads.raw`` records for ``seed``."""
    return [(r.key, r.value) for r in generate_records(seed, n, start=start)]
