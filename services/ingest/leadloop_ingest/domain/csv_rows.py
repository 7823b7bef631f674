"""A CSV row (trade-show lists, spreadsheet exports) mapped to the ``leads.raw`` contract.

The header row is read once into a :class:`ColumnPlan`: each column either feeds a
contract field, by a small alias table of English and Chinese names ("E-mail",
"邮箱", "Mobile", "手机", ...), or becomes an ``attributes`` key under its own name.
Each row is then mapped by :func:`row_to_raw` into a dict that ``validate`` judges;
nothing here rejects a row.

A typed field whose cell the contract cannot hold - a company size of "50-200", a
country written as "中国", a time without a UTC offset - is kept in ``attributes``
under its column name instead, so a lead with a good contact is not lost over it.
Contact cells (email, phone) are always passed on as written: they are what
``validate`` exists to judge.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from leadloop.events import deterministic_id

__all__ = [
    "FIELD_ALIASES",
    "ColumnPlan",
    "fallback_lead_id",
    "is_blank",
    "normalise_header",
    "plan_columns",
    "report_row",
    "row_to_raw",
    "spreadsheet_safe",
]

_ATTRIBUTE_KEY_MAX: Final = 64  # RawLead.attributes key limit
# Pseudo-fields combined into ``name`` when the file has no single name column.
_FIRST, _LAST = "_first_name", "_last_name"

_ALIASES: dict[str, tuple[str, ...]] = {
    "source_lead_id": ("id", "leadid", "sourceleadid", "编号", "线索编号", "线索id"),
    "email": ("email", "emailaddress", "mail", "workemail", "邮箱", "电子邮箱", "电子邮件",
              "邮件", "邮箱地址"),
    "phone": ("phone", "mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "tel",
              "telephone", "phonenumber", "手机", "手机号", "手机号码", "电话", "电话号码",
              "联系电话"),
    "name": ("name", "fullname", "contactname", "姓名", "名字", "联系人"),
    _FIRST: ("firstname", "givenname", "名"),
    _LAST: ("lastname", "surname", "familyname", "姓"),
    "company": ("company", "companyname", "organisation", "organization", "account", "公司",
                "公司名称", "单位", "企业", "企业名称"),
    "title": ("title", "jobtitle", "position", "role", "职位", "职务", "头衔"),
    "country": ("country", "countrycode", "国家"),
    "region": ("region", "state", "province", "省份", "省", "地区", "区域"),
    "city": ("city", "城市"),
    "industry": ("industry", "行业"),
    "product": ("product", "productinterest", "interest", "产品", "意向产品"),
    "company_size": ("companysize", "employees", "headcount", "公司规模", "员工人数"),
    "budget": ("budget", "预算"),
    "campaign": ("campaign", "event", "活动", "展会"),
    "message": ("message", "notes", "note", "comment", "comments", "remarks", "备注", "留言",
                "需求"),
    "occurred_at": ("occurredat", "createdat", "created", "submittedat", "timestamp", "时间",
                    "提交时间", "登记时间"),
}  # fmt: skip

#: Normalised header (see :func:`normalise_header`) -> contract field.
FIELD_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: field for field, aliases in _ALIASES.items() for alias in aliases}
)

_SEPARATORS = re.compile(r"[\s\-_.:/()（）：]+")


def normalise_header(header: str) -> str:
    """Case, width, separators and a byte-order mark do not matter: "E-mail",
    "\\ufeffEmail" and "ｅｍａｉｌ" are the same column."""
    text = unicodedata.normalize("NFKC", header).replace("\ufeff", "").casefold()
    return _SEPARATORS.sub("", text)


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """What each column of a file feeds: a contract field or an attribute key."""

    headers: tuple[str, ...]
    #: Per column: the contract field, or None for an attribute.
    fields: tuple[str | None, ...]
    #: Per column: the attribute key (used when ``fields`` is None or a cell cannot be
    #: held by its typed field).
    attribute_keys: tuple[str, ...]

    @property
    def has_contact(self) -> bool:
        """Whether any column can carry an email or phone (else every row is rejected)."""
        return "email" in self.fields or "phone" in self.fields

    @property
    def has_id(self) -> bool:
        return "source_lead_id" in self.fields

    def mapped(self) -> dict[str, str]:
        """Header -> contract field, for the operator's summary."""
        return {h: f.lstrip("_") for h, f in zip(self.headers, self.fields, strict=True) if f}

    def unmapped(self) -> list[str]:
        return [k for k, f in zip(self.attribute_keys, self.fields, strict=True) if f is None]


def plan_columns(headers: Sequence[str]) -> ColumnPlan:
    """Read the header row once. The first column for a field feeds it; a later column
    with the same meaning is kept as an attribute rather than overwriting it."""
    fields: list[str | None] = []
    keys: list[str] = []
    taken: set[str] = set()
    for i, header in enumerate(headers):
        field = FIELD_ALIASES.get(normalise_header(header))
        if field in taken:
            field = None
        if field is not None:
            taken.add(field)
        fields.append(field)
        keys.append(_unique_key(_attribute_key(header, i), keys))
    return ColumnPlan(tuple(headers), tuple(fields), tuple(keys))


def is_blank(cells: Sequence[str]) -> bool:
    """An empty line or a row of empty cells (spreadsheets leave them at the end)."""
    return not any(c.strip() for c in cells)


def fallback_lead_id(file_name: str, row_number: int) -> str:
    """A ``source_lead_id`` for a file without an id column: stable for the same file
    name and row, so importing the same file again sends the same idempotency keys.
    (A file whose rows were re-sorted in between gets new ids.)"""
    return "csv-" + deterministic_id("csv-import", file_name, row_number)


def row_to_raw(
    plan: ColumnPlan,
    cells: Sequence[str],
    *,
    source: str,
    file_name: str,
    row_number: int,
) -> dict[str, Any]:
    """One data row in the ``leads.raw`` shape; ``validate`` then judges it.

    ``row_number`` counts the header as row 1, as a spreadsheet shows it. Empty cells
    are left out. Cells beyond the header become ``column_<n>`` attributes.
    """
    out: dict[str, Any] = {"source": source}
    attributes: dict[str, Any] = {}
    first = last = None
    for i, raw_cell in enumerate(cells):
        cell = raw_cell.strip()
        if not cell:
            continue
        if i >= len(plan.fields):
            attributes[_unique_key(f"column_{i + 1}", list(attributes))] = cell
            continue
        field, key = plan.fields[i], plan.attribute_keys[i]
        if field == _FIRST:
            first = cell
        elif field == _LAST:
            last = cell
        elif field is None:
            attributes[key] = cell
        else:
            value = _typed(field, cell)
            if value is None:
                attributes[key] = cell  # see the module docstring
            else:
                out[field] = value
    if "name" not in out and (first or last):
        out["name"] = _join_name(first, last)
    out.setdefault("source_lead_id", fallback_lead_id(file_name, row_number))
    if attributes:
        out["attributes"] = attributes
    return out


def _typed(field: str, cell: str) -> Any:
    """The cell as its field's type, or None when the field cannot hold it."""
    if field == "company_size":
        digits = _without_grouping(cell)
        return int(digits) if digits.isdecimal() and len(digits) <= 9 else None
    if field == "budget":
        number = _without_grouping(cell)
        return float(number) if re.fullmatch(r"\d{1,13}(\.\d{1,4})?", number) else None
    if field == "country":
        return cell.upper() if re.fullmatch(r"[A-Za-z]{2}", cell) else None
    if field == "occurred_at":
        try:
            when = datetime.fromisoformat(cell)
        except ValueError:
            return None
        # Without an offset the moment is unknown; the broker time stands in instead.
        return when.isoformat() if when.tzinfo is not None else None
    return cell


def _without_grouping(cell: str) -> str:
    # "1,000", "1 000" and "1_000" as people and spreadsheets write them.
    return re.sub(r"(?<=\d)[,\s_'](?=\d{3})", "", cell)


def _attribute_key(header: str, index: int) -> str:
    key = unicodedata.normalize("NFC", header).replace("\ufeff", "").strip()
    return key[:_ATTRIBUTE_KEY_MAX] if key else f"column_{index + 1}"


def _unique_key(key: str, taken: Sequence[str]) -> str:
    candidate, n = key, 2
    while candidate in taken:
        suffix = f"_{n}"
        candidate, n = key[: _ATTRIBUTE_KEY_MAX - len(suffix)] + suffix, n + 1
    return candidate


def _join_name(first: str | None, last: str | None) -> str:
    parts = [p for p in (first, last) if p]
    # Chinese names read family name first, without a space: 姓 "王" + 名 "芳" = "王芳".
    if len(parts) == 2 and all(_is_cjk(p) for p in parts):
        return parts[1] + parts[0]
    return " ".join(parts)


def _is_cjk(text: str) -> bool:
    return all("\u2e80" <= ch <= "\u9fff" for ch in text)


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); the full-width forms are included because spreadsheets in
# Chinese locales convert them. Tab and carriage return start a formula after the
# application strips them.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` as a spreadsheet will show it, never as a formula it would evaluate.

    A cell that starts like a formula gets a leading apostrophe, which every spreadsheet
    takes as "text" and does not display; every other cell is returned unchanged.
    """
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def report_row(row_number: int, reason: str, detail: str, cells: Sequence[str]) -> list[str]:
    """One line of the rejected-rows report, every cell formula-safe.

    The cells come from the imported file and the detail may quote them, so any of them
    can be a spreadsheet formula (``=HYPERLINK(...)``) planted in a lead form.
    """
    return [str(row_number), reason, *(spreadsheet_safe(c) for c in (detail, *cells))]
