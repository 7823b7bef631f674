"""CSV row -> contract mapping: header aliases (English, Chinese, BOM, full width), typed
cells, attributes, stable fallback ids, and rows that validate as ingest will see them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadloop.events import RawLead
from leadloop_ingest.domain.csv_rows import (
    fallback_lead_id,
    is_blank,
    normalise_header,
    plan_columns,
    row_to_raw,
)
from leadloop_ingest.domain.validation import Limits, Rejection, ValidLead, validate

LIMITS = Limits(
    sources=frozenset({"trade_show_csv", "web_form"}),
    default_phone_region={"trade_show_csv": "CN"},
)


def mapped(headers: list[str], cells: list[str], row_number: int = 2) -> dict[str, Any]:
    plan = plan_columns(headers)
    return row_to_raw(
        plan, cells, source="trade_show_csv", file_name="expo.csv", row_number=row_number
    )


def valid(record: dict[str, Any]) -> ValidLead:
    RawLead.model_validate(record)
    verdict = validate(json.dumps(record, ensure_ascii=False).encode(), LIMITS)
    assert isinstance(verdict, ValidLead), verdict
    return verdict


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("E-mail", "email"),
        ("\ufeffEmail", "email"),
        ("  EMAIL ADDRESS ", "email"),
        ("ｅｍａｉｌ", "email"),  # full-width, as Chinese input methods type it
        ("邮箱", "email"),
        ("电子邮件", "email"),
        ("Mobile", "phone"),
        ("Phone Number", "phone"),
        ("手机", "phone"),
        ("手机号码", "phone"),
        ("Name", "name"),
        ("姓名", "name"),
        ("Company", "company"),
        ("公司名称", "company"),
        ("Job Title", "title"),
        ("职位", "title"),
        ("城市", "city"),
        ("Company size", "company_size"),
        ("备注", "message"),
        ("ID", "source_lead_id"),
        ("线索ID", "source_lead_id"),
        ("提交时间", "occurred_at"),
    ],
)
def test_header_aliases(header: str, field: str) -> None:
    assert plan_columns([header]).fields == (field,)


def test_headers_are_normalised_for_matching_only() -> None:
    assert normalise_header("\ufeffE-Mail ") == normalise_header("email") == "email"
    plan = plan_columns(["\ufeff展位号", "Badge No."])
    assert plan.fields == (None, None)
    # Attribute keys keep the operator's own spelling, minus the byte-order mark.
    assert plan.attribute_keys == ("展位号", "Badge No.")


def test_a_chinese_trade_show_row_maps_and_validates() -> None:
    headers = ["姓名", "手机", "邮箱", "公司", "职位", "城市", "展位号", "意向产品", "备注"]
    cells = ["王芳", "138 0013 8000", "", "上海星云科技有限公司", "市场总监", "上海", "A-12",
             "CRM", "想看演示"]  # fmt: skip
    record = mapped(headers, cells, row_number=7)
    assert record == {
        "source": "trade_show_csv",
        "source_lead_id": fallback_lead_id("expo.csv", 7),
        "name": "王芳",
        "phone": "138 0013 8000",
        "company": "上海星云科技有限公司",
        "title": "市场总监",
        "city": "上海",
        "product": "CRM",
        "message": "想看演示",
        "attributes": {"展位号": "A-12"},
    }
    lead = valid(record)
    assert lead.contact.phone == "+8613800138000"  # the channel's default region: CN
    assert lead.contact.email is None


def test_a_file_with_a_byte_order_mark_maps_its_first_column() -> None:
    data = "邮箱,姓名,手机\r\nli.lei@example.com,李雷,+86 139 1234 5678\r\n".encode("utf-8-sig")
    for encoding in ("utf-8-sig", "utf-8"):  # also when the operator forgot utf-8-sig
        header, *rows = list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
        plan = plan_columns(header)
        assert plan.fields == ("email", "name", "phone")
        record = row_to_raw(plan, rows[0], source="trade_show_csv", file_name="f.csv", row_number=2)
        assert record["email"] == "li.lei@example.com"
        assert valid(record).contact.phone == "+8613912345678"


def test_an_id_column_is_the_source_lead_id_and_empty_cells_fall_back() -> None:
    headers = ["id", "Email"]
    assert mapped(headers, ["TS-0001", "a@example.com"])["source_lead_id"] == "TS-0001"
    assert mapped(headers, ["", "a@example.com"], row_number=9)["source_lead_id"] == (
        fallback_lead_id("expo.csv", 9)
    )


def test_fallback_ids_are_stable_per_file_name_and_row() -> None:
    assert fallback_lead_id("expo.csv", 2) == fallback_lead_id("expo.csv", 2)
    assert fallback_lead_id("expo.csv", 2) != fallback_lead_id("expo.csv", 3)
    assert fallback_lead_id("expo.csv", 2) != fallback_lead_id("expo-day2.csv", 2)
    assert len(fallback_lead_id("a" * 300 + ".csv", 10**9)) <= 128


@pytest.mark.parametrize(
    ("header", "cell", "field", "value"),
    [
        ("Company size", "1,200", "company_size", 1200),
        ("员工人数", "300", "company_size", 300),
        ("Budget", "50000", "budget", 50000.0),
        ("预算", "1,250,000.50", "budget", 1250000.5),
        ("Country", "cn", "country", "CN"),
        ("Created at", "2025-03-03T09:00:00+08:00", "occurred_at", "2025-03-03T09:00:00+08:00"),
        ("Created at", "2025-03-03T01:00:00Z", "occurred_at", "2025-03-03T01:00:00+00:00"),
    ],
)
def test_typed_cells(header: str, cell: str, field: str, value: Any) -> None:
    record = mapped(["Email", header], ["a@example.com", cell])
    assert record[field] == value
    valid(record)


@pytest.mark.parametrize(
    ("header", "cell"),
    [
        ("Company size", "50-200"),
        ("Budget", "¥50万"),
        ("国家", "中国"),
        ("Created at", "2025-03-03 09:00"),  # no offset: the moment is unknown
    ],
)
def test_cells_a_typed_field_cannot_hold_become_attributes(header: str, cell: str) -> None:
    record = mapped(["Email", header], ["a@example.com", cell])
    assert record["attributes"] == {header: cell}
    valid(record)  # the lead is kept


def test_a_second_column_for_the_same_field_is_kept_as_an_attribute() -> None:
    record = mapped(["Email", "E-mail", "Email"], ["a@example.com", "b@example.com", "c@x.cn"])
    assert record["email"] == "a@example.com"
    assert record["attributes"] == {"E-mail": "b@example.com", "Email_2": "c@x.cn"}


def test_first_and_last_name_columns_make_the_name() -> None:
    latin = mapped(["First Name", "Last Name", "Email"], ["Ada", "Lovelace", "a@x.com"])
    assert latin["name"] == "Ada Lovelace"
    assert mapped(["姓", "名", "手机"], ["王", "芳", "13800138000"])["name"] == "王芳"
    # A name column wins over first/last columns.
    record = mapped(["First Name", "Name", "Email"], ["Ada", "A. Lovelace", "a@x.com"])
    assert record["name"] == "A. Lovelace"


def test_empty_cells_are_left_out_and_extra_cells_become_numbered_attributes() -> None:
    record = mapped(["Email", "Company", "Notes"], ["a@example.com", "  ", "", "booth 7", "x"])
    assert "company" not in record
    assert "message" not in record
    assert record["attributes"] == {"column_4": "booth 7", "column_5": "x"}


def test_empty_and_long_headers_make_valid_attribute_keys() -> None:
    long = "Which of our products would you like to see at the next roadshow in your city?"
    record = mapped(["Email", "", long], ["a@example.com", "v1", "v2"])
    assert record["attributes"] == {"column_2": "v1", long[:64]: "v2"}
    valid(record)


def test_blank_rows_and_contact_columns() -> None:
    assert is_blank([])
    assert is_blank(["", "  ", "\t"])
    assert not is_blank(["", "x"])
    assert plan_columns(["姓名", "手机"]).has_contact
    assert plan_columns(["Email"]).has_contact
    assert not plan_columns(["Name", "Company"]).has_contact
    assert plan_columns(["ID", "Email"]).has_id


def test_the_plan_describes_itself_without_row_contents() -> None:
    plan = plan_columns(["邮箱", "First Name", "展位号"])
    assert plan.mapped() == {"邮箱": "email", "First Name": "first_name"}
    assert plan.unmapped() == ["展位号"]


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (["", "", "王芳"], "missing_contact"),
        (["not-an-email", "", "王芳"], "invalid_email"),
        (["", "12345", "王芳"], "invalid_phone"),
    ],
)
def test_bad_rows_are_rejected_by_validate(cells: list[str], reason: str) -> None:
    verdict = validate(json.dumps(mapped(["Email", "Mobile", "Name"], cells)).encode(), LIMITS)
    assert isinstance(verdict, Rejection)
    assert verdict.reason.value == reason
    assert "王芳" not in verdict.detail


HEADER = st.sampled_from(["Email", "手机", "姓名", "id", "预算", "Created"]) | st.text(max_size=80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(HEADER, max_size=8),
    cells=st.lists(st.text(max_size=40), max_size=10),
    row_number=st.integers(min_value=2, max_value=10**7),
)
def test_any_row_maps_to_json_that_validate_judges(
    headers: list[str], cells: list[str], row_number: int
) -> None:
    record = mapped(headers, cells, row_number)
    assert record["source"] == "trade_show_csv"
    assert record["source_lead_id"]
    assert all(0 < len(k) <= 64 for k in record.get("attributes", {}))
    verdict = validate(json.dumps(record, ensure_ascii=False).encode(), LIMITS)
    assert isinstance(verdict, ValidLead | Rejection)
