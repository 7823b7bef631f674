"""Simulated traffic: channel leads on ``leads.raw`` and reps acting on the CRM topics.

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

Rep model
---------
Every rep has a temperament fixed by (seed, rep_id): about 60 % answer fast (first
touch 0.5-5 simulated minutes after assignment), 25 % slowly (30-120 minutes) and 15 %
never. A touch moves the lead to ``contacted``; it then climbs qualified, proposal,
negotiation to won (with an amount) step by step, may stall in a stage, or is lost
with a reason. Fast answers qualify about twice as often as slow ones, as the lead
response studies quoted in DESIGN.md report. A new assignment of a lead (reassigned,
reclaimed, pooled) cancels what the previous owner had still planned.

CRM event timestamps lie on the simulated timeline, ``assigned_at`` plus the simulated
delay, so first-response times look like minutes; the run waits ``delay / time_scale``
real seconds before publishing each one.
"""

from __future__ import annotations

import asyncio
import json
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from functools import partial
from itertools import islice
from typing import Annotated, Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from rich.table import Table

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    LossReason,
    Stage,
    StageChanged,
    deterministic_id,
)
from leadloop.logging import get_logger
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = [
    "CHANNELS",
    "MAX_ATTRIBUTES",
    "MAX_RECORD_BYTES",
    "SIMULATION_EPOCH",
    "Defect",
    "PlannedEvent",
    "RecordKind",
    "Responsiveness",
    "SimulatedRecord",
    "SimulationConfig",
    "SimulationSummary",
    "generate_leads",
    "generate_records",
    "iter_records",
    "plan_followup",
    "rep_responsiveness",
    "run",
]

log = get_logger(__name__)

CHANNELS: Final = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
_CHANNEL_WEIGHTS: Final = (35, 25, 15, 15, 10)

#: Contract limits (DESIGN.md, ``leads.raw``); malformed records break them on purpose.
MAX_RECORD_BYTES: Final = 64 * 1024
MAX_ATTRIBUTES: Final = 50

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


class Defect(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    MISSING_CONTACT = "missing_contact"
    BAD_SOURCE = "bad_source"
    WRONG_TYPE = "wrong_type"
    TOO_LARGE = "too_large"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    """One ``leads.raw`` record and, beside it, what the simulator meant it to be."""

    channel: str
    kind: RecordKind
    key: bytes | None
    value: bytes
    defect: Defect | None = None


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True, slots=True)
class _NumberPlan:
    """One kind of phone number of a country and the ways people write it.

    ``groups`` lists, per digit group, alternative patterns ('#' any digit, 'N' 2-9).
    ``templates`` are ``str.format`` patterns over the groups ({0}, {1}, ...), the
    calling code {cc} and the national trunk prefix {t}.
    """

    cc: str
    trunk: str
    groups: tuple[tuple[str, ...], ...]
    templates: tuple[str, ...]

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        return tuple(_fill_digits(rng.choice(alternatives), rng) for alternatives in self.groups)

    def render(self, digits: tuple[str, ...], template: str) -> str:
        return template.format(*digits, cc=self.cc, t=self.trunk)


def _fill_digits(pattern: str, rng: random.Random) -> str:
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "N":
            out.append(str(rng.randrange(2, 10)))
        else:
            out.append(ch)
    return "".join(out)


_P = _NumberPlan
_CN_MOBILE = _P(
    "86", "0",
    (("135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "187", "188"),
     ("####",), ("####",)),
    ("+{cc} {0} {1} {2}", "{0}{1}{2}", "+{cc}{0}{1}{2}", "+{cc}-{0}-{1}-{2}",
     "00{cc} {0}{1}{2}", "{0} {1} {2}", "{0}-{1}-{2}"),
)  # fmt: skip
_CN_LANDLINE = _P(
    "86", "0", (("10", "21"), ("5###", "6###"), ("####",)),
    ("{t}{0}-{1} {2}", "{t}{0}-{1}{2}", "+{cc} {0} {1} {2}", "({t}{0}) {1}-{2}"),
)  # fmt: skip
_US = _P(
    "1", "1", (("212", "415", "646", "312", "206", "617", "512"), ("N##",), ("####",)),
    ("({0}) {1}-{2}", "+{cc} {0} {1} {2}", "+{cc} ({0}) {1}-{2}", "{0}.{1}.{2}",
     "{0}-{1}-{2}", "{t}-{0}-{1}-{2}", "+{cc}{0}{1}{2}"),
)  # fmt: skip
_GB_MOBILE = _P(
    "44", "0", (("7400", "7412", "7534", "7712", "7780", "7825", "7950", "7968"), ("######",)),
    ("+{cc} {0} {1}", "{t}{0} {1}", "+{cc}{0}{1}", "+{cc} ({t}){0} {1}"),
)  # fmt: skip
_GB_LONDON = _P(
    "44", "0", (("20",), ("7###", "3###", "8###"), ("####",)),
    ("+{cc} {0} {1} {2}", "{t}{0} {1} {2}", "{t}{0}-{1}-{2}", "+{cc} ({t}){0} {1} {2}",
     "+{cc}{0}{1}{2}"),
)  # fmt: skip
_DE_MOBILE = _P(
    "49", "0", (("151", "152", "176"), ("####",), ("####",)),
    ("+{cc} {0} {1}{2}", "{t}{0} {1} {2}", "{t}{0}/{1}{2}", "+{cc}{0}{1}{2}"),
)  # fmt: skip
_DE_BERLIN = _P(
    "49", "0", (("30",), ("N###",), ("####",)),
    ("+{cc} {0} {1}{2}", "{t}{0} {1} {2}", "{t}{0}/{1}{2}", "+{cc} ({t}){0} {1} {2}"),
)  # fmt: skip
_JP_MOBILE = _P(
    "81", "0", (("90", "80", "70"), ("N###",), ("####",)),
    ("+{cc} {0}-{1}-{2}", "{t}{0}-{1}-{2}", "{t}{0}{1}{2}"),
)  # fmt: skip
_JP_TOKYO = _P(
    "81", "0", (("3",), ("N###",), ("####",)),
    ("+{cc} {0}-{1}-{2}", "{t}{0}-{1}-{2}", "({t}{0}) {1}-{2}"),
)  # fmt: skip
_SG = _P(
    "65", "", (("61##", "62##", "63##", "64##", "65##", "67##", "68##", "81##", "83##", "87##",
                 "88##", "91##", "92##", "93##", "96##", "97##", "98##"), ("####",)),
    ("+{cc} {0} {1}", "{0} {1}", "+{cc}{0}{1}", "+{cc}-{0}-{1}"),
)  # fmt: skip
_FR_MOBILE = _P(
    "33", "0", (("6",), ("1#", "2#", "4#", "5#", "6#", "7#", "8#"), ("##",), ("##",), ("##",)),
    ("+{cc} {0} {1} {2} {3} {4}", "{t}{0} {1} {2} {3} {4}", "{t}{0}.{1}.{2}.{3}.{4}",
     "+{cc}{0}{1}{2}{3}{4}"),
)  # fmt: skip
_FR_PARIS = _P(
    "33", "0", (("1",), ("4#", "5#"), ("##",), ("##",), ("##",)),
    ("+{cc} {0} {1} {2} {3} {4}", "{t}{0} {1} {2} {3} {4}", "{t}{0}.{1}.{2}.{3}.{4}"),
)  # fmt: skip
_IN_MOBILE = _P(
    "91", "0", (("98###", "99###", "97###", "94###"), ("#####",)),
    ("+{cc} {0} {1}", "{t}{0} {1}", "{0}{1}", "+{cc}-{0}{1}"),
)  # fmt: skip
_AU_MOBILE = _P(
    "61", "0", (("40#", "41#", "42#", "43#"), ("###",), ("###",)),
    ("+{cc} {0} {1} {2}", "{t}{0} {1} {2}", "+{cc}{0}{1}{2}"),
)  # fmt: skip
_AU_SYDNEY = _P(
    "61", "0", (("2",), ("9###", "8###"), ("####",)),
    ("+{cc} {0} {1} {2}", "({t}{0}) {1} {2}", "{t}{0} {1} {2}"),
)  # fmt: skip
_HK = _P(
    "852", "", (("21##", "23##", "25##", "27##", "28##", "29##", "61##", "64##", "69##", "94##",
                  "96##", "97##"), ("####",)),
    ("+{cc} {0} {1}", "{0} {1}", "+{cc}-{0}-{1}", "+{cc}{0}{1}"),
)  # fmt: skip
_TW_MOBILE = _P(
    "886", "0", (("91#", "93#", "95#", "98#"), ("###",), ("###",)),
    ("+{cc} {0} {1} {2}", "{t}{0}-{1}-{2}", "{t}{0}{1}{2}"),
)  # fmt: skip
_BR_MOBILE = _P(
    "55", "0", (("11", "21", "31"), ("9####",), ("####",)),
    ("+{cc} {0} {1}-{2}", "({0}) {1}-{2}", "+{cc}{0}{1}{2}"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    weight: int
    chinese_names: float  # share of people whose name is written in Chinese characters
    places: tuple[tuple[str, str], ...]  # (region, city)
    phones: tuple[_NumberPlan, ...]  # the first is the most common (mobile)
    mail_domains: tuple[str, ...]
    tld: str
    company_suffix: str
    utc_offset: timedelta
    currency: str


_H = timedelta(hours=1)
_COUNTRIES: Final = (
    _Country("CN", 40, 1.0,
             (("Beijing", "Beijing"), ("Shanghai", "Shanghai"), ("Guangdong", "Shenzhen"),
              ("Guangdong", "Guangzhou"), ("Zhejiang", "Hangzhou"), ("Sichuan", "Chengdu"),
              ("Jiangsu", "Suzhou")),
             (_CN_MOBILE, _CN_LANDLINE),
             ("163.com", "126.com", "qq.com", "sina.com", "foxmail.com"),
             ".com.cn", "有限公司", 8 * _H, "CNY"),
    _Country("US", 14, 0.05,
             (("CA", "San Francisco"), ("NY", "New York"), ("WA", "Seattle"), ("TX", "Austin"),
              ("IL", "Chicago"), ("MA", "Boston")),
             (_US,), ("gmail.com", "outlook.com", "yahoo.com"), ".com", "Inc.", -5 * _H, "USD"),
    _Country("GB", 8, 0.03,
             (("England", "London"), ("England", "Manchester"), ("Scotland", "Edinburgh")),
             (_GB_MOBILE, _GB_LONDON), ("gmail.com", "outlook.com", "hotmail.co.uk"),
             ".co.uk", "Ltd", 0 * _H, "GBP"),
    _Country("DE", 7, 0.02,
             (("Berlin", "Berlin"), ("Bavaria", "Munich"), ("Hamburg", "Hamburg")),
             (_DE_MOBILE, _DE_BERLIN), ("web.de", "gmx.de", "gmail.com", "t-online.de"),
             ".de", "GmbH", 1 * _H, "EUR"),
    _Country("SG", 5, 0.7, (("Central", "Singapore"),), (_SG,),
             ("gmail.com", "yahoo.com.sg"), ".com.sg", "Pte. Ltd.", 8 * _H, "SGD"),
    _Country("JP", 5, 0.0, (("Tokyo", "Tokyo"), ("Osaka", "Osaka")), (_JP_MOBILE, _JP_TOKYO),
             ("gmail.com", "yahoo.co.jp", "docomo.ne.jp"), ".co.jp", "K.K.", 9 * _H, "JPY"),
    _Country("FR", 4, 0.02, (("Île-de-France", "Paris"), ("Auvergne-Rhône-Alpes", "Lyon")),
             (_FR_MOBILE, _FR_PARIS), ("orange.fr", "gmail.com", "free.fr"), ".fr", "SAS",
             1 * _H, "EUR"),
    _Country("IN", 4, 0.0, (("Karnataka", "Bengaluru"), ("Maharashtra", "Mumbai")),
             (_IN_MOBILE,), ("gmail.com", "rediffmail.com"), ".in", "Pvt Ltd",
             timedelta(hours=5, minutes=30), "INR"),
    _Country("AU", 3, 0.05, (("NSW", "Sydney"), ("VIC", "Melbourne")), (_AU_MOBILE, _AU_SYDNEY),
             ("gmail.com", "bigpond.com"), ".com.au", "Pty Ltd", 10 * _H, "AUD"),
    _Country("HK", 3, 0.9, (("Hong Kong Island", "Hong Kong"),), (_HK,),
             ("gmail.com", "yahoo.com.hk", "netvigator.com"), ".com.hk", "有限公司", 8 * _H, "HKD"),
    _Country("TW", 2, 1.0, (("Taipei", "Taipei"),), (_TW_MOBILE,),
             ("gmail.com", "yahoo.com.tw"), ".com.tw", "股份有限公司", 8 * _H, "TWD"),
    _Country("BR", 3, 0.0, (("SP", "São Paulo"), ("RJ", "Rio de Janeiro")), (_BR_MOBILE,),
             ("gmail.com", "uol.com.br"), ".com.br", "Ltda", -3 * _H, "BRL"),
)  # fmt: skip
_BY_CODE: Final = {c.code: c for c in _COUNTRIES}
#: WeChat reaches the Chinese-speaking markets only.
_WECHAT_COUNTRIES: Final = ("CN", "HK", "TW", "SG")
_WECHAT_WEIGHTS: Final = (85, 6, 5, 4)

_ZH_PLACES: Final = {
    "Beijing": "北京", "Shanghai": "上海", "Guangdong": "广东", "Shenzhen": "深圳",
    "Guangzhou": "广州", "Zhejiang": "浙江", "Hangzhou": "杭州", "Sichuan": "四川",
    "Chengdu": "成都", "Jiangsu": "江苏", "Suzhou": "苏州", "Taipei": "台北",
    "Hong Kong": "香港", "Hong Kong Island": "香港岛", "Singapore": "新加坡", "Central": "中区",
}  # fmt: skip

_ZH_SURNAMES: Final = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"),
    ("徐", "xu"), ("孙", "sun"), ("胡", "hu"), ("朱", "zhu"), ("高", "gao"), ("林", "lin"),
    ("何", "he"), ("郭", "guo"), ("马", "ma"), ("罗", "luo"), ("欧阳", "ouyang"),
)  # fmt: skip
_ZH_GIVEN: Final = (
    ("伟", "wei"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("强", "qiang"),
    ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"),
    ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("欣怡", "xinyi"),
    ("子轩", "zixuan"), ("浩然", "haoran"), ("雨涵", "yuhan"), ("思远", "siyuan"),
    ("嘉怡", "jiayi"), ("志强", "zhiqiang"),
)  # fmt: skip
_LATIN_FIRST: Final = (
    "James", "Mary", "Olivia", "Liam", "Sophie", "Lukas", "Emma", "Noah", "Chloé", "José",
    "Zoë", "François", "Søren", "Ana", "Mateo", "Priya", "Arjun", "Yuki", "Hiroshi", "Ravi",
    "João", "Camila", "Lena", "Jürgen", "Aoife", "Björn", "Élodie", "Grace", "Daniel", "Mei",
)  # fmt: skip
_LATIN_LAST: Final = (
    "Smith", "Johnson", "Brown", "Müller", "Schmidt", "García", "Martínez", "Dubois",
    "Rossi", "O'Brien", "Nguyen", "Kim", "Tanaka", "Sato", "Patel", "Khan", "Jensen",
    "Silva", "Santos", "Weber", "Lefèvre", "Murphy", "Taylor", "Sharma", "Suzuki", "Tan",
)  # fmt: skip
# Letters that NFKD does not decompose into an ASCII base letter.
_ASCII_FOLD: Final = str.maketrans({"ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "ł": "l", "'": ""})

_ZH_BRANDS: Final = (
    ("星辰", "xingchen"), ("云帆", "yunfan"), ("华信", "huaxin"), ("恒通", "hengtong"),
    ("博远", "boyuan"), ("智达", "zhida"), ("鼎盛", "dingsheng"), ("锐思", "ruisi"),
)  # fmt: skip
_ZH_SECTORS: Final = (("科技", "tech"), ("信息技术", "it"), ("贸易", "trading"),
                      ("制造", "mfg"), ("物流", "logistics"))  # fmt: skip
_LATIN_BRANDS: Final = ("Northwind", "Bluepeak", "Ironbridge", "Silverline", "Brightwater",
                        "Redwood", "Keystone", "Lumen", "Cobalt", "Harbor")  # fmt: skip
_LATIN_SECTORS: Final = ("Analytics", "Logistics", "Systems", "Foods", "Health", "Robotics",
                         "Capital", "Retail")  # fmt: skip
_TITLES_LATIN: Final = ("CTO", "Head of Sales", "IT Director", "Marketing Manager",
                        "Procurement Lead", "Founder", "Operations Manager",
                        "VP Engineering")  # fmt: skip
_TITLES_ZH: Final = ("采购经理", "运营总监", "技术总监", "总经理", "市场经理", "IT负责人")
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


# --------------------------------------------------------------------------- people


@dataclass(slots=True)
class _Person:
    country: _Country
    name: str
    chinese: bool
    email_local: str
    email_domain: str
    phone_plan: _NumberPlan
    phone_digits: tuple[str, ...]
    company: str
    title: str
    place: tuple[str, str]
    # Which contacts the person's first record showed: a returning record repeats at
    # least one of them, otherwise nobody (ingest included) could recognise the person.
    shown_email: bool = True
    shown_phone: bool = True


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum()).lower()


def _chinese_name(rng: random.Random) -> tuple[str, str, str]:
    """(display name, pinyin given, pinyin surname); most often in characters."""
    surname, surname_py = rng.choice(_ZH_SURNAMES)
    given, given_py = rng.choice(_ZH_GIVEN)
    style = rng.random()
    if style < 0.8:
        display = surname + given
    elif style < 0.9:
        display = f"{surname_py.title()} {given_py.title()}"
    else:
        display = f"{given_py.title()} {surname_py.title()}"
    return display, given_py, surname_py


def _latin_name(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(_LATIN_FIRST), rng.choice(_LATIN_LAST)
    return f"{first} {last}", _ascii_slug(first), _ascii_slug(last)


def _email_local(rng: random.Random, first: str, last: str) -> str:
    style = rng.randrange(7)
    number = str(rng.choice((rng.randrange(10, 100), rng.randrange(1960, 2006))))
    return (
        f"{first}.{last}",
        f"{first}{last}",
        f"{first[0]}.{last}",
        f"{first}_{last}{number}",
        f"{last}.{first}",
        f"{first}.{last}{number}",
        f"{first}{number}",
    )[style]


def _company(rng: random.Random, country: _Country, chinese: bool) -> tuple[str, str]:
    """(company name, company mail domain)."""
    if chinese and country.code in ("CN", "HK", "TW"):
        brand, brand_py = rng.choice(_ZH_BRANDS)
        sector, sector_py = rng.choice(_ZH_SECTORS)
        city = _ZH_PLACES.get(rng.choice(country.places)[1], "")
        return f"{city}{brand}{sector}{country.company_suffix}", f"{brand_py}-{sector_py}"
    brand, sector = rng.choice(_LATIN_BRANDS), rng.choice(_LATIN_SECTORS)
    return f"{brand} {sector} {country.company_suffix}", f"{brand}{sector}".lower()


def _weighted_country(rng: random.Random, channel: str) -> _Country:
    if channel == "wechat":
        return _BY_CODE[rng.choices(_WECHAT_COUNTRIES, _WECHAT_WEIGHTS)[0]]
    return rng.choices(_COUNTRIES, [c.weight for c in _COUNTRIES])[0]


def _draw_person(rng: random.Random, channel: str) -> _Person:
    country = _weighted_country(rng, channel)
    chinese = rng.random() < country.chinese_names
    name, first, last = _chinese_name(rng) if chinese else _latin_name(rng)
    company, company_slug = _company(rng, country, chinese)
    plan = (
        country.phones[0]
        if len(country.phones) == 1 or rng.random() < 0.75
        else rng.choice(country.phones[1:])
    )
    work_address = rng.random() < 0.35  # at the company's own domain
    domain = company_slug + country.tld if work_address else rng.choice(country.mail_domains)
    local = (
        str(rng.randrange(10**5, 10**10))  # QQ mail addresses are the QQ number
        if domain == "qq.com"
        else _email_local(rng, first, last)
    )
    return _Person(
        country=country,
        name=name,
        chinese=chinese,
        email_local=local,
        email_domain=domain,
        phone_plan=plan,
        phone_digits=plan.draw(rng),
        company=company,
        title=rng.choice(_TITLES_ZH if chinese and rng.random() < 0.7 else _TITLES_LATIN),
        place=rng.choice(country.places),
    )


def _render_email(rng: random.Random, person: _Person) -> str:
    """The address as typed: mostly lower case, sometimes Title.Case or SHOUTED."""
    local, domain = person.email_local, person.email_domain
    style = rng.random()
    if style < 0.65:
        return f"{local}@{domain}"
    if style < 0.85:
        return f"{'.'.join(p.capitalize() for p in local.split('.'))}@{domain}"
    if style < 0.95:
        return f"{local.upper()}@{domain}"
    return f"{local}@{domain.upper()}"


def _render_phone(rng: random.Random, person: _Person) -> str:
    return person.phone_plan.render(person.phone_digits, rng.choice(person.phone_plan.templates))


def _phone_key(person: _Person) -> str:
    return person.phone_plan.cc + "".join(person.phone_digits)


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


# --------------------------------------------------------------------------- defects


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _invalid_json(rng: random.Random, lead: dict[str, Any]) -> bytes:
    text = json.dumps(lead, ensure_ascii=False)
    variant = rng.randrange(3)
    if variant == 0:  # cut off mid-transfer: an object that never closes
        return text[: rng.randrange(1, len(text) - 1)].encode()
    if variant == 1:  # a Python dict printed instead of serialised
        return repr(lead).encode()
    # a CSV row pushed where JSON belongs
    return ",".join(str(v) for v in lead.values() if not isinstance(v, dict)).encode()


def _invalid_utf8(rng: random.Random, lead: dict[str, Any]) -> bytes:
    """Bytes a legacy export writes: GB18030 (Chinese Excel), Latin-1 or UTF-16."""
    text = json.dumps(lead, ensure_ascii=False)
    encoding = rng.choice(("gb18030", "latin-1", "utf-16"))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-16")
    # Pure ASCII (or a lucky byte sequence) would still decode: UTF-16's byte order
    # mark (FF FE) never does.
    return data if not _is_utf8(data) else text.encode("utf-16")


def _missing_contact(rng: random.Random, lead: dict[str, Any]) -> bytes:
    for contact in ("email", "phone"):
        if rng.random() < 0.5:
            lead.pop(contact, None)
        else:
            lead[contact] = None
    return json.dumps(lead, ensure_ascii=False).encode()


def _bad_source(rng: random.Random, lead: dict[str, Any]) -> bytes:
    lead["source"] = rng.choice(
        ("Web Form", "LEAD_ADS", "wechat mini program", "trade-show/2025", "", "微信", "r" * 65)
    )
    return json.dumps(lead, ensure_ascii=False).encode()


def _wrong_type(rng: random.Random, lead: dict[str, Any]) -> bytes:
    field_name, wrong = rng.choice(
        (
            ("company_size", "51-200"),
            ("budget", "10k-50k"),
            ("occurred_at", "yesterday afternoon"),
            ("attributes", {"utm": {"source": "baidu", "medium": "cpc"}}),
            ("source_lead_id", rng.randrange(10**6)),
            ("email", [f"{rng.randrange(10**6)}@qq.com", "sales@163.com"]),
            ("country", "China"),
        )
    )
    lead[field_name] = wrong
    return json.dumps(lead, ensure_ascii=False).encode()


def _too_large(rng: random.Random, lead: dict[str, Any]) -> bytes:
    paragraph = "> Forwarded thread: please see the requirements below and call back. "
    lead["message"] = paragraph * (MAX_RECORD_BYTES // len(paragraph) + rng.randint(1, 400))
    return json.dumps(lead, ensure_ascii=False).encode()


def _too_many_attributes(rng: random.Random, lead: dict[str, Any]) -> bytes:
    count = rng.randint(MAX_ATTRIBUTES + 1, 3 * MAX_ATTRIBUTES)
    lead["attributes"] = {f"custom_field_{i}": f"value {rng.randrange(1000)}" for i in range(count)}
    return json.dumps(lead, ensure_ascii=False).encode()


_CORRUPTIONS: Final[dict[Defect, Callable[[random.Random, dict[str, Any]], bytes]]] = {
    Defect.INVALID_JSON: _invalid_json,
    Defect.INVALID_UTF8: _invalid_utf8,
    Defect.MISSING_CONTACT: _missing_contact,
    Defect.BAD_SOURCE: _bad_source,
    Defect.WRONG_TYPE: _wrong_type,
    Defect.TOO_LARGE: _too_large,
    Defect.TOO_MANY_ATTRIBUTES: _too_many_attributes,
}


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


# --------------------------------------------------------------------------- rep behaviour


class Responsiveness(StrEnum):
    FAST = "fast"
    SLOW = "slow"
    NEVER = "never"


_FAST_SHARE: Final = 0.60
_SLOW_SHARE: Final = 0.25
_FIRST_TOUCH_S: Final = {Responsiveness.FAST: (30.0, 300.0), Responsiveness.SLOW: (1800.0, 7200.0)}
_QUALIFY_ODDS: Final = {Responsiveness.FAST: 0.55, Responsiveness.SLOW: 0.28}
_STALL_ODDS: Final = 0.10
_STAGE_GAP_S: Final = (20 * 60.0, 6 * 3600.0)
#: The climb after ``contacted``: next stage and the odds of reaching it.
_LADDER: Final = ((Stage.PROPOSAL, 0.60), (Stage.NEGOTIATION, 0.65), (Stage.WON, 0.60))
_LOSS_REASONS: Final = {
    Stage.CONTACTED: (LossReason.NO_RESPONSE, LossReason.INVALID_CONTACT, LossReason.NOT_A_FIT,
                      LossReason.TIMING),
    Stage.QUALIFIED: (LossReason.NO_BUDGET, LossReason.TIMING, LossReason.NOT_A_FIT),
    Stage.PROPOSAL: (LossReason.NO_BUDGET, LossReason.CHOSE_COMPETITOR, LossReason.TIMING),
    Stage.NEGOTIATION: (LossReason.CHOSE_COMPETITOR, LossReason.NO_BUDGET, LossReason.OTHER),
}  # fmt: skip
_FIRST_TOUCH: Final = (
    (ActivityKind.CALL, ("connected", "voicemail", "no_answer")),
    (ActivityKind.EMAIL, ("sent",)),
    (ActivityKind.MESSAGE, ("delivered", "replied")),
)
_LATER_TOUCH: Final = (ActivityKind.MEETING, ActivityKind.VISIT, ActivityKind.CALL,
                       ActivityKind.EMAIL)  # fmt: skip


def rep_responsiveness(seed: int, rep_id: str) -> Responsiveness:
    """A rep's temperament, the same for every lead of the run (and every run of the seed)."""
    # A string seed is hashed with SHA-512 by ``random``, so this is stable across
    # processes (unlike ``hash()``).
    draw = random.Random(f"{seed}:rep:{rep_id}").random()
    if draw < _FAST_SHARE:
        return Responsiveness.FAST
    if draw < _FAST_SHARE + _SLOW_SHARE:
        return Responsiveness.SLOW
    return Responsiveness.NEVER


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """A CRM event the owner will publish ``delay_s`` simulated seconds after assignment."""

    delay_s: float
    topic: str  # registry name, not yet prefixed
    key: bytes
    value: bytes
    stage: Stage | None = None  # set for stage changes


class _PlanBuilder:
    def __init__(
        self, seed: int, assignment_id: str, lead_id: str, owner_id: str, assigned_at: datetime
    ) -> None:
        self.rng = random.Random(f"{seed}:assignment:{assignment_id}")
        self.events: list[PlannedEvent] = []
        self._ids = (str(seed), assignment_id)
        self._lead_id, self._owner_id, self._assigned_at = lead_id, owner_id, assigned_at

    def _event_id(self) -> str:
        # Derived from the assignment, so replaying the same assignment yields the same
        # ids and consumers can drop the repeats.
        return deterministic_id("leadloop-simulator", *self._ids, len(self.events))

    def activity(self, delay_s: float, kind: ActivityKind, outcome: str | None) -> None:
        at = self._assigned_at + timedelta(seconds=delay_s)
        follow_up = at + timedelta(days=self.rng.randint(1, 3)) if self.rng.random() < 0.4 else None
        event = ActivityRecorded(
            event_id=self._event_id(),
            lead_id=self._lead_id,
            rep_id=self._owner_id,
            kind=kind,
            occurred_at=at,
            outcome=outcome,
            next_followup_at=follow_up,
        )
        self._add(delay_s, ActivityRecorded.topic, event.model_dump_json(exclude_none=True), None)

    def stage(
        self,
        delay_s: float,
        stage: Stage,
        *,
        amount: float | None = None,
        loss_reason: LossReason | None = None,
    ) -> None:
        at = self._assigned_at + timedelta(seconds=delay_s)
        closing = stage in (Stage.PROPOSAL, Stage.NEGOTIATION)
        event = StageChanged(
            event_id=self._event_id(),
            lead_id=self._lead_id,
            stage=stage,
            occurred_at=at,
            rep_id=self._owner_id,
            amount=amount,
            expected_close_date=(at + timedelta(days=self.rng.randint(7, 60))).date()
            if closing
            else None,
            loss_reason=loss_reason,
        )
        self._add(delay_s, StageChanged.topic, event.model_dump_json(exclude_none=True), stage)

    def _add(self, delay_s: float, topic: str, value: str, stage: Stage | None) -> None:
        self.events.append(
            PlannedEvent(delay_s, topic, self._lead_id.encode(), value.encode(), stage)
        )


def plan_followup(
    seed: int, *, assignment_id: str, lead_id: str, owner_id: str, assigned_at: datetime
) -> list[PlannedEvent]:
    """What the owner of one assignment will do, in order; empty for a rep who never answers.

    Pure: the same arguments give the same events (values, ids, delays).
    """
    temper = rep_responsiveness(seed, owner_id)
    if temper is Responsiveness.NEVER:
        return []
    plan = _PlanBuilder(seed, assignment_id, lead_id, owner_id, assigned_at)
    rng = plan.rng
    t = rng.uniform(*_FIRST_TOUCH_S[temper])
    kind, outcomes = rng.choice(_FIRST_TOUCH)
    plan.activity(t, kind, rng.choice(outcomes))
    t += rng.uniform(30, 600)
    plan.stage(t, Stage.CONTACTED)
    deal = round(10 ** rng.uniform(3.7, 5.7), -2)
    current = Stage.CONTACTED
    for target, odds in ((Stage.QUALIFIED, _QUALIFY_ODDS[temper]), *_LADDER):
        t += rng.uniform(*_STAGE_GAP_S)
        if rng.random() < _STALL_ODDS:
            break  # left in its stage: what stage-stall escalations are for
        plan.activity(t, rng.choice(_LATER_TOUCH), None)
        t += rng.uniform(60, 1800)
        if rng.random() >= odds:
            plan.stage(t, Stage.LOST, loss_reason=rng.choice(_LOSS_REASONS[current]))
            break
        plan.stage(t, target, amount=_amount(rng, target, deal))
        current = target
    return plan.events


def _amount(rng: random.Random, stage: Stage, deal: float) -> float | None:
    """The deal size the CRM shows: estimated from proposal on, final (discounted) when won."""
    if stage is Stage.WON:
        return round(deal * rng.uniform(0.85, 1.0), 2)
    if stage in (Stage.PROPOSAL, Stage.NEGOTIATION):
        return deal
    return None


# --------------------------------------------------------------------------- the run


class SimulationConfig(BaseModel):
    """What to simulate. Built once (CLI, tests); invalid values fail at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    leads: Annotated[int, Field(ge=0)] = 1000
    #: Leads per real second; 0 sends as fast as the broker acknowledges, in batches.
    rate: Annotated[float, Field(ge=0)] = 50.0
    seed: int = 7
    #: Also play the reps: answer assignments on ``crm.activities`` / ``crm.stage-changes``.
    reps: bool = True
    #: Simulated seconds per real second for the reps' delays.
    time_scale: Annotated[float, Field(gt=0)] = 60.0
    #: Real seconds from the start after which the reps stop (sending always finishes
    #: first). None: the reps play until the run is cancelled (Ctrl-C).
    duration_s: Annotated[float, Field(ge=0)] | None = None
    #: Only these reps are played (empty: every owner); others are left to real people.
    rep_ids: tuple[str, ...] = ()
    #: Start of the simulated timeline of ``occurred_at``; fixed so a seed is reproducible.
    start: AwareDatetime = SIMULATION_EPOCH


@dataclass(slots=True)
class SimulationSummary:
    """Counts of what a run sent; no personal data. Printable with rich."""

    leads_planned: int = 0
    sent_by_source: Counter[str] = field(default_factory=Counter)
    malformed_by_defect: Counter[str] = field(default_factory=Counter)
    redeliveries: int = 0
    returning: int = 0
    assignments_played: int = 0
    assignments_unreadable: int = 0
    activities: int = 0
    stage_changes: Counter[str] = field(default_factory=Counter)
    rep_events_failed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.sent_by_source.values())

    @property
    def malformed(self) -> int:
        return sum(self.malformed_by_defect.values())

    @property
    def duplicates(self) -> int:
        return self.redeliveries + self.returning

    def count_sent(self, record: SimulatedRecord) -> None:
        self.sent_by_source[record.channel] += 1
        if record.defect is not None:
            self.malformed_by_defect[record.defect] += 1
        elif record.kind is RecordKind.REDELIVERY:
            self.redeliveries += 1
        elif record.kind is RecordKind.RETURNING:
            self.returning += 1

    def count_rep_event(self, event: PlannedEvent) -> None:
        if event.stage is None:
            self.activities += 1
        else:
            self.stage_changes[event.stage] += 1

    def rows(self) -> list[tuple[str, str]]:
        status = "interrupted" if self.interrupted else "completed"
        rows = [("status", status), ("leads sent", f"{self.sent} of {self.leads_planned}")]
        rows += [(f"  {source}", str(n)) for source, n in sorted(self.sent_by_source.items())]
        rows.append(("malformed sent", str(self.malformed)))
        rows += [(f"  {defect}", str(n)) for defect, n in sorted(self.malformed_by_defect.items())]
        rows += [
            ("duplicates sent", str(self.duplicates)),
            ("  redeliveries (same source_lead_id)", str(self.redeliveries)),
            ("  returning people (new source_lead_id)", str(self.returning)),
            ("assignments played", str(self.assignments_played)),
            ("activities produced", str(self.activities)),
            ("stage changes produced", str(sum(self.stage_changes.values()))),
        ]
        rows += [(f"  {s}", str(self.stage_changes[s])) for s in Stage if s in self.stage_changes]
        if self.assignments_unreadable or self.rep_events_failed:
            rows.append(("assignments unreadable", str(self.assignments_unreadable)))
            rows.append(("rep events failed", str(self.rep_events_failed)))
        rows.append(("elapsed", f"{self.elapsed_s:.1f} s"))
        return rows

    def __rich__(self) -> Table:
        table = Table("simulation", "count", title="leadloop simulate")
        for label, value in self.rows():
            table.add_row(label, value)
        return table

    def __str__(self) -> str:
        return "\n".join(f"{label}: {value}" for label, value in self.rows())


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _Outbox:
    """Records handed to the producer; counted once the broker acknowledged them."""

    def __init__(self, summary: SimulationSummary) -> None:
        self._summary = summary
        self._pending: list[tuple[SimulatedRecord, asyncio.Future[Any]]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, record: SimulatedRecord, ack: asyncio.Future[Any]) -> None:
        self._pending.append((record, ack))

    async def settle(self) -> None:
        """Wait for every acknowledgement; a failed send fails the run."""
        if not self._pending:
            return
        # asyncio.wait, not gather: cancelling the run must not cancel the producer's
        # own futures; its flush on stop still resolves them.
        await asyncio.wait([ack for _, ack in self._pending])
        failures = [
            error
            for _, ack in self._pending
            if not ack.cancelled() and (error := ack.exception()) is not None
        ]
        self.count_acknowledged()
        if failures:
            raise failures[0]

    def count_acknowledged(self) -> None:
        """Count what the broker acknowledged and forget the rest (after the producer
        stopped, nothing is still in flight)."""
        for record, ack in self._pending:
            if ack.done() and not ack.cancelled() and ack.exception() is None:
                self._summary.count_sent(record)
        self._pending.clear()


async def _send_leads(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[SimulatedRecord],
    cfg: SimulationConfig,
    outbox: _Outbox,
    batch_size: int,
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i, record in enumerate(records):
        if cfg.rate > 0:
            # Paced against the start, not the previous send, so delays do not add up.
            await _sleep_until(loop, began + i / cfg.rate)
        outbox.add(record, await producer.send(topic, record.value, key=record.key))
        if len(outbox) >= batch_size:
            await outbox.settle()
    await outbox.settle()


# The contract's id limits, so that an id the CRM events could not carry is refused here.
_Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _AssignmentView(BaseModel):
    """What the reps read from a ``leads.assigned`` event. Unknown fields are ignored so
    that an extension of the contract does not stop the simulator."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    assignment_id: _Id
    lead_id: _Id
    owner_id: _Id | None
    assigned_at: AwareDatetime


class _RepPlayer:
    """Reads assignments and plays each owner's plan against the real clock."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        cfg: SimulationConfig,
        summary: SimulationSummary,
    ) -> None:
        self._consumer, self._producer = consumer, producer
        self._prefix, self._cfg, self._summary = kafka.topic_prefix, cfg, summary
        self._plans: dict[str, asyncio.Task[None]] = {}
        self._seen: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        kafka: KafkaSettings,
        cfg: SimulationConfig,
        producer: AIOKafkaProducer,
        summary: SimulationSummary,
    ) -> _RepPlayer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=f"{kafka.topic_prefix}leadloop-simulator",
            enable_auto_commit=True,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            topic = qualified("leads.assigned", kafka.topic_prefix)
            await _assign_from_end(consumer, producer, topic)
        except BaseException:
            await consumer.stop()
            raise
        player = cls(consumer, producer, kafka, cfg, summary)
        player.task = asyncio.create_task(player._consume(), name="simulator-reps")
        return player

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self._consumer:
            self._handle(message.value, loop.time(), message.partition, message.offset)

    def _handle(self, value: bytes, received_at: float, partition: int, offset: int) -> None:
        try:
            view = _AssignmentView.model_validate_json(value)
        except ValidationError as exc:
            self._summary.assignments_unreadable += 1
            log.warning(
                "simulate.assignment_unreadable",
                partition=partition,
                offset=offset,
                errors=exc.error_count(),
            )
            return
        if view.assignment_id in self._seen:
            return  # a redelivered assignment: its plan is already playing
        self._seen.add(view.assignment_id)
        previous = self._plans.pop(view.lead_id, None)
        if previous is not None:
            previous.cancel()  # the previous owner no longer owns the lead
        owner = view.owner_id
        if owner is None or (self._cfg.rep_ids and owner not in self._cfg.rep_ids):
            return
        self._summary.assignments_played += 1
        plan = plan_followup(
            self._cfg.seed,
            assignment_id=view.assignment_id,
            lead_id=view.lead_id,
            owner_id=owner,
            assigned_at=view.assigned_at,
        )
        if plan:
            task = asyncio.create_task(self._play(plan, received_at))
            self._plans[view.lead_id] = task
            task.add_done_callback(partial(self._forget, view.lead_id))

    def _forget(self, lead_id: str, task: asyncio.Task[None]) -> None:
        if self._plans.get(lead_id) is task:
            del self._plans[lead_id]

    async def _play(self, plan: list[PlannedEvent], received_at: float) -> None:
        loop = asyncio.get_running_loop()
        for event in plan:
            await _sleep_until(loop, received_at + event.delay_s / self._cfg.time_scale)
            try:
                await self._producer.send_and_wait(
                    qualified(event.topic, self._prefix), event.value, key=event.key
                )
            except KafkaError as exc:
                # The rest of this lead's plan would contradict what the CRM topics show.
                self._summary.rep_events_failed += 1
                log.warning(
                    "simulate.rep_event_failed", topic=event.topic, error=type(exc).__name__
                )
                return
            self._summary.count_rep_event(event)

    async def stop(self) -> None:
        tasks = [*self._plans.values(), *([self.task] if self.task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._consumer.stop()


async def _assign_from_end(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str
) -> None:
    """Read only assignments made from now on, whatever the group committed before."""
    # The producer's lookup waits for the topic's metadata; the consumer's does not.
    partitions = await producer.partitions_for(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic!r} does not exist; run `leadloop topics create`")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        # Resolve the end offsets now, before the first lead is sent; a lazy seek
        # could skip the assignments of the first leads.
        await consumer.position(tp)


async def _reps_until_done(reps: _RepPlayer | None, cfg: SimulationConfig, started: float) -> None:
    """After the last lead: let the reps play until ``duration_s`` or cancellation."""
    if reps is None or reps.task is None:
        return
    loop = asyncio.get_running_loop()
    timeout = None if cfg.duration_s is None else max(0.0, started + cfg.duration_s - loop.time())
    await asyncio.wait([reps.task], timeout=timeout)
    if reps.task.done() and not reps.task.cancelled():
        reps.task.result()  # the consumer failed: surface it rather than idle


async def run(kafka: KafkaSettings, cfg: SimulationConfig) -> SimulationSummary:
    """Send the generated leads to ``leads.raw`` and, with ``cfg.reps``, play the reps.

    Returns what was sent. Cancellation (Ctrl-C under ``asyncio.run``) ends the run
    early and still returns the summary so far, marked interrupted, instead of
    re-raising: the CLI prints it either way. Kafka errors propagate.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    summary = SimulationSummary(leads_planned=cfg.leads)
    # Drawn lazily: a long run does not hold all its records in memory.
    records = islice(iter_records(cfg.seed, start=cfg.start), cfg.leads)
    log.info(
        "simulate.started",
        leads=cfg.leads,
        rate=cfg.rate,
        seed=cfg.seed,
        reps=cfg.reps,
        time_scale=cfg.time_scale,
        topic_prefix=kafka.topic_prefix,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,  # broker-side retries must not add copies we did not plan
        linger_ms=5,
    )
    outbox = _Outbox(summary)
    reps: _RepPlayer | None = None
    await producer.start()
    try:
        if cfg.reps:
            reps = await _RepPlayer.start(kafka, cfg, producer, summary)
        topic = qualified("leads.raw", kafka.topic_prefix)
        await _send_leads(producer, topic, records, cfg, outbox, kafka.batch_size)
        log.info(
            "simulate.leads_sent",
            sent=summary.sent,
            malformed=summary.malformed,
            duplicates=summary.duplicates,
        )
        await _reps_until_done(reps, cfg, started)
    except asyncio.CancelledError:
        summary.interrupted = True
        log.info("simulate.interrupted")
    finally:
        if reps is not None:
            await reps.stop()
        await producer.stop()  # flushes what was handed over
        outbox.count_acknowledged()
        summary.elapsed_s = loop.time() - started
    log.info(
        "simulate.finished",
        sent=summary.sent,
        activities=summary.activities,
        stage_changes=sum(summary.stage_changes.values()),
        interrupted=summary.interrupted,
    )
    return summary
