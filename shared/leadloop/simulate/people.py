"""Who the simulated leads are: countries, numbering plans, names, email addresses, phones.

A person's country decides the script of the name (Chinese characters or Latin), the
phone numbering plan, the cities, the time zone and the budget currency. Numbers
follow each country's real plans and are written the many ways people type them.
Every draw takes the caller's ``random.Random``, so the traffic generator's single
seeded PRNG decides everything (see :mod:`leadloop.simulate.traffic`).

Internal to the package: nothing here is public API.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

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
