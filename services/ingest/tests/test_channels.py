"""Channel adapters: realistic native payloads map to the contract, validate accepts them,
malformed shapes fail only with ``AdapterError``, and no adapter leaks a WeChat openid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadloop.config_file import ConfigFileError
from leadloop.events import RawLead
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.domain.channels import (
    ADAPTERS,
    AdapterError,
    ChannelConfig,
    Channels,
    generic,
    lead_ads,
    map_payload,
    wechat,
)
from leadloop_ingest.domain.validation import Limits, Rejection, RejectReason, ValidLead, validate

CHANNELS_FILE = Path(__file__).resolve().parents[3] / "config" / "channels.yaml"
CHANNELS = load_channels(CHANNELS_FILE)
LIMITS = Limits(sources=frozenset(CHANNELS.channels), default_phone_region=CHANNELS.phone_regions())

OPENID = "oVx3Q5ZrUq8xL0kJtA9bC2dE4fG6"
UNIONID = "o6_bmasdasdsad6_2sgVt7hMZOPfL"


def accepted(record: dict[str, Any]) -> ValidLead:
    """The mapped dict as ingest will see it: JSON bytes through validate."""
    RawLead.model_validate(record)
    verdict = validate(json.dumps(record, ensure_ascii=False).encode(), LIMITS)
    assert isinstance(verdict, ValidLead), verdict
    return verdict


def meta_lead(**overrides: Any) -> dict[str, Any]:
    lead: dict[str, Any] = {
        "id": "1234567890123456",
        "created_time": "2024-05-01T08:00:00+0000",
        "ad_id": "23850000000000001",
        "ad_name": "CRM demo - 华东",
        "adset_id": "23850000000000002",
        "campaign_id": "23850000000000003",
        "campaign_name": "meta-leadgen-q2-apac",
        "form_id": "987654321",
        "is_organic": False,
        "platform": "fb",
        "field_data": [
            {"name": "email", "values": ["wang.fang@example.cn"]},
            {"name": "phone_number", "values": ["+86 138 0013 8000"]},
            {"name": "full_name", "values": ["王芳"]},
            {"name": "company_name", "values": ["上海星云科技有限公司"]},
            {"name": "job_title", "values": ["市场总监"]},
            {"name": "country", "values": ["CN"]},
            {"name": "city", "values": ["上海"]},
            {"name": "which_products_interest_you", "values": ["CRM", "营销自动化"]},
            {"name": "team_size", "values": ["50-200"]},
            {"name": "skipped_question", "values": []},
        ],
    }
    lead.update(overrides)
    return lead


def mini_program(**overrides: Any) -> dict[str, Any]:
    submission: dict[str, Any] = {
        "openid": OPENID,
        "unionid": UNIONID,
        "nickName": "小芳🌸",
        "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132",
        "phoneNumber": "13800138000",
        "purePhoneNumber": "13800138000",
        "countryCode": "86",
        "formId": "wx-form-7f3a9c01",
        "scene": 1047,
        "submit_time": 1714550400,
        "form": {
            "name": "王芳",
            "company": "上海星云科技有限公司",
            "city": "上海",
            "预算": "10万",
            "interests": ["CRM", "营销自动化"],
            "agree_terms": True,
            "empty_answer": "",
        },
    }
    submission.update(overrides)
    return submission


# ----------------------------------------------------------------------------- configuration


def test_the_channels_file_configures_the_five_channels() -> None:
    assert set(CHANNELS.channels) == {
        "web_form",
        "lead_ads",
        "wechat",
        "trade_show_csv",
        "referral",
    }
    assert CHANNELS.channels["lead_ads"] == ChannelConfig(adapter="lead_ads", signature="meta")
    assert CHANNELS.channels["wechat"].adapter == "wechat"
    assert CHANNELS.phone_regions() == {"wechat": "CN", "trade_show_csv": "CN"}
    assert {c.adapter for c in CHANNELS.channels.values()} <= set(ADAPTERS)


@pytest.mark.parametrize(
    "channels",
    [
        {"Web Form": {}},  # source id syntax
        {"x" * 65: {}},
        {"web_form": {"adapter": "facebook"}},  # not in the registry
        {"web_form": {"adaptor": "generic"}},  # a typo is refused, not ignored
        {"web_form": {"default_phone_region": "cn"}},
        {"web_form": {"default_phone_region": "XX"}},  # well-formed, but no such region
        {"web_form": {"signature": "hmac"}},
    ],
)
def test_invalid_channel_configuration_is_refused(channels: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Channels.model_validate({"channels": channels})


def test_a_bare_yaml_region_that_reads_as_a_boolean_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  nordic_form:\n    default_phone_region: NO\n")
    with pytest.raises(ConfigFileError, match=r"channels\.nordic_form\.default_phone_region: "):
        load_channels(path)
    path.write_text('channels:\n  nordic_form:\n    default_phone_region: "NO"\n')
    assert load_channels(path).phone_regions() == {"nordic_form": "NO"}


def test_an_empty_channels_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigFileError, match=r"channels\.yaml: the file is empty"):
        load_channels(path)


# ----------------------------------------------------------------------------- generic


def test_generic_fills_a_missing_source_from_the_channel() -> None:
    record = {"source_lead_id": "wf-1", "email": "li.lei@example.com"}
    assert generic("web_form", record) == {**record, "source": "web_form"}
    assert generic("web_form", {**record, "source": None})["source"] == "web_form"
    accepted(generic("web_form", record))


def test_generic_leaves_a_different_source_for_validate_to_judge() -> None:
    record = {"source": "referral", "source_lead_id": "r-1", "email": "li.lei@example.com"}
    assert generic("web_form", record) == record
    unknown = {**record, "source": "partner_x"}
    verdict = validate(json.dumps(generic("web_form", unknown)).encode(), LIMITS)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectReason.UNKNOWN_SOURCE


# ----------------------------------------------------------------------------- lead ads


def test_lead_ads_maps_a_meta_lead_to_the_contract() -> None:
    mapped = lead_ads("lead_ads", meta_lead())
    assert mapped == {
        "source": "lead_ads",
        "source_lead_id": "1234567890123456",
        "occurred_at": "2024-05-01T08:00:00+00:00",
        "campaign": "meta-leadgen-q2-apac",
        "email": "wang.fang@example.cn",
        "phone": "+86 138 0013 8000",
        "name": "王芳",
        "company": "上海星云科技有限公司",
        "title": "市场总监",
        "country": "CN",
        "city": "上海",
        "attributes": {
            "ad_id": "23850000000000001",
            "ad_name": "CRM demo - 华东",
            "adset_id": "23850000000000002",
            "campaign_id": "23850000000000003",
            "form_id": "987654321",
            "platform": "fb",
            "is_organic": False,
            "which_products_interest_you": "CRM, 营销自动化",
            "team_size": "50-200",
        },
    }
    lead = accepted(mapped)
    assert lead.contact.phone == "+8613800138000"
    assert lead.contact.email == "wang.fang@example.cn"
    assert lead.raw.occurred_at is not None
    assert lead.raw.occurred_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("created_time", "expected"),
    [
        ("2024-05-01T08:00:00+0000", "2024-05-01T08:00:00+00:00"),
        ("2024-05-01T16:00:00+0800", "2024-05-01T16:00:00+08:00"),
        ("2024-05-01T08:00:00-0330", "2024-05-01T08:00:00-03:30"),
        ("2024-05-01T08:00:00+00:00", "2024-05-01T08:00:00+00:00"),
        ("2024-05-01T08:00:00Z", "2024-05-01T08:00:00Z"),
        (1714550400, "2024-05-01T08:00:00+00:00"),  # the webhook's unix time
    ],
)
def test_lead_ads_times_become_rfc3339(created_time: Any, expected: str) -> None:
    mapped = lead_ads("lead_ads", meta_lead(created_time=created_time))
    assert mapped["occurred_at"] == expected
    accepted(mapped)


def test_lead_ads_a_malformed_time_is_left_for_validate_to_reject() -> None:
    mapped = lead_ads("lead_ads", meta_lead(created_time="yesterday"))
    verdict = validate(json.dumps(mapped).encode(), LIMITS)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectReason.SCHEMA_VIOLATION
    assert "occurred_at" in verdict.detail


def test_lead_ads_builds_the_name_from_first_and_last_name() -> None:
    latin = meta_lead(
        field_data=[
            {"name": "first_name", "values": ["Ada"]},
            {"name": "last_name", "values": ["Lovelace"]},
            {"name": "work_email", "values": ["ada@example.co.uk"]},
        ]
    )
    assert lead_ads("lead_ads", latin)["name"] == "Ada Lovelace"
    chinese = meta_lead(
        field_data=[
            {"name": "first_name", "values": ["芳"]},
            {"name": "last_name", "values": ["王"]},
            {"name": "phone_number", "values": ["+8613800138000"]},
        ]
    )
    mapped = lead_ads("lead_ads", chinese)
    assert mapped["name"] == "王芳"
    assert accepted(mapped).contact.name == "王芳"


def test_lead_ads_first_answer_of_a_contract_field_wins() -> None:
    mapped = lead_ads(
        "lead_ads",
        meta_lead(
            field_data=[
                {"name": "email", "values": ["first@example.com", "second@example.com"]},
                {"name": "work_email", "values": ["work@example.com"]},
            ]
        ),
    )
    assert mapped["email"] == "first@example.com"
    assert "attributes" not in mapped or "work_email" not in mapped["attributes"]


def test_lead_ads_a_country_name_is_kept_as_an_attribute() -> None:
    mapped = lead_ads(
        "lead_ads",
        meta_lead(
            field_data=[*meta_lead()["field_data"][:2], {"name": "country", "values": ["中国"]}]
        ),
    )
    assert "country" not in mapped
    assert mapped["attributes"]["country"] == "中国"
    accepted(mapped)


def test_lead_ads_long_question_keys_are_cut_to_the_attribute_limit() -> None:
    question = "what_is_the_single_biggest_challenge_your_sales_team_faces_this_quarter"
    mapped = lead_ads(
        "lead_ads",
        meta_lead(field_data=[{"name": "email", "values": ["a@example.com"]},
                              {"name": question, "values": ["follow-up"]}]),
    )  # fmt: skip
    assert mapped["attributes"][question[:64]] == "follow-up"
    accepted(mapped)


# Personal data planted in malformed payloads; no AdapterError detail may contain it.
PLANTED = "zhang.wei.private@example.com"


@pytest.mark.parametrize(
    "payload",
    [
        meta_lead(id=None),
        meta_lead(id={"v": PLANTED}),
        meta_lead(id=True),
        meta_lead(field_data={"email": PLANTED}),
        meta_lead(field_data=[PLANTED]),
        meta_lead(field_data=[{"values": [PLANTED]}]),
        meta_lead(field_data=[{"name": "email", "values": {"0": PLANTED}}]),
        meta_lead(field_data=[{"name": "email", "values": [{"v": PLANTED}]}]),
        meta_lead(created_time=10**30),
    ],
)
def test_lead_ads_malformed_shapes_raise_adapter_error_without_values(
    payload: dict[str, Any],
) -> None:
    with pytest.raises(AdapterError) as caught:
        lead_ads("lead_ads", payload)
    assert PLANTED not in caught.value.detail
    assert caught.value.detail.startswith("lead_ads: ")


# ----------------------------------------------------------------------------- wechat


def test_wechat_maps_a_mini_program_submission_to_the_contract() -> None:
    mapped = wechat("wechat", mini_program())
    assert mapped == {
        "source": "wechat",
        "source_lead_id": "wx-form-7f3a9c01",
        "occurred_at": "2024-05-01T08:00:00+00:00",
        "phone": "+8613800138000",
        "name": "王芳",
        "company": "上海星云科技有限公司",
        "city": "上海",
        "attributes": {
            "scene": 1047,
            "预算": "10万",
            "interests": "CRM, 营销自动化",
            "agree_terms": True,
        },
    }
    lead = accepted(mapped)
    assert lead.contact.phone == "+8613800138000"
    assert lead.contact.name == "王芳"


def test_wechat_never_copies_the_openid_or_profile_data() -> None:
    echoed = mini_program(form={**mini_program()["form"], "openid": OPENID, "unionId": UNIONID})
    for payload in (mini_program(), mini_program(formId=None), echoed):
        text = json.dumps(wechat("wechat", payload), ensure_ascii=False)
        for personal in (OPENID, UNIONID, "thirdwx.qlogo.cn", "小芳"):
            assert personal not in text


def test_wechat_without_a_submission_id_derives_a_stable_id_from_the_openid() -> None:
    first = wechat("wechat", mini_program(formId=None))
    again = wechat("wechat", mini_program(formId=None, submit_time=1714560000))
    other = wechat("wechat", mini_program(formId=None, openid="oAnotherPerson0000000000000"))
    assert first["source_lead_id"].startswith("openid-")
    assert first["source_lead_id"] == again["source_lead_id"]  # the same person: a duplicate
    assert first["source_lead_id"] != other["source_lead_id"]
    accepted(first)


def test_wechat_without_any_id_is_left_for_validate_to_reject() -> None:
    mapped = wechat("wechat", mini_program(formId=None, openid=None))
    assert "source_lead_id" not in mapped
    verdict = validate(json.dumps(mapped).encode(), LIMITS)
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectReason.SCHEMA_VIOLATION
    assert verdict.detail == "source_lead_id: missing"


@pytest.mark.parametrize(
    ("overrides", "phone", "e164"),
    [
        ({"countryCode": "+86"}, "+8613800138000", "+8613800138000"),
        ({"countryCode": 86}, "+8613800138000", "+8613800138000"),
        # No country code: the channel's default region (CN) reads the national number.
        ({"countryCode": None, "phoneNumber": None}, "13800138000", "+8613800138000"),
        (
            {"purePhoneNumber": None, "countryCode": None, "phoneNumber": "+1 650-253-0000"},
            "+1 650-253-0000",
            "+16502530000",
        ),
        ({"purePhoneNumber": "6502530000", "countryCode": "1"}, "+16502530000", "+16502530000"),
    ],
)
def test_wechat_phone_numbers(overrides: dict[str, Any], phone: str, e164: str) -> None:
    mapped = wechat("wechat", mini_program(**overrides))
    assert mapped["phone"] == phone
    assert accepted(mapped).contact.phone == e164


def test_wechat_falls_back_to_the_form_phone_and_the_nickname() -> None:
    payload = mini_program(purePhoneNumber=None, phoneNumber=None, form={"手机": "139 1234 5678"})
    mapped = wechat("wechat", payload)
    assert mapped["phone"] == "139 1234 5678"
    assert mapped["name"] == "小芳🌸"
    assert accepted(mapped).contact.phone == "+8613912345678"


@pytest.mark.parametrize(
    ("submit_time", "expected"),
    [
        (1714550400, "2024-05-01T08:00:00+00:00"),
        (1714550400123, "2024-05-01T08:00:00.123000+00:00"),  # JavaScript milliseconds
        ("1714550400", "2024-05-01T08:00:00+00:00"),
    ],
)
def test_wechat_submit_time(submit_time: Any, expected: str) -> None:
    assert wechat("wechat", mini_program(submit_time=submit_time))["occurred_at"] == expected


@pytest.mark.parametrize(
    "payload",
    [
        mini_program(form=[PLANTED]),
        mini_program(form={"company": {"name": PLANTED}}),
        mini_program(submit_time="yesterday"),
        mini_program(submit_time=True),
        mini_program(submit_time=float("nan")),
        mini_program(submit_time=10**30),
    ],
)
def test_wechat_malformed_shapes_raise_adapter_error_without_values(
    payload: dict[str, Any],
) -> None:
    with pytest.raises(AdapterError) as caught:
        wechat("wechat", payload)
    assert PLANTED not in caught.value.detail


# ----------------------------------------------------------------------------- map_payload


def test_map_payload_picks_the_adapter_by_the_transport_source() -> None:
    # A native Meta lead carries no source of its own; the leadloop-source header names it.
    mapped = map_payload(CHANNELS, "lead_ads", meta_lead())
    assert mapped["source"] == "lead_ads"
    assert mapped["source_lead_id"] == "1234567890123456"
    assert map_payload(CHANNELS, "wechat", mini_program())["source"] == "wechat"


def test_map_payload_falls_back_to_the_records_own_source() -> None:
    mapped = map_payload(CHANNELS, None, {**meta_lead(), "source": "lead_ads"})
    assert mapped["source_lead_id"] == "1234567890123456"
    # Without a header or a source field the record is not the adapter's to guess.
    assert map_payload(CHANNELS, None, meta_lead()) == meta_lead()


def test_map_payload_passes_contract_shaped_records_of_any_channel() -> None:
    # What the simulator and most channels send: already the contract shape.
    record = {"source": "lead_ads", "source_lead_id": "la-1", "email": "a@example.com"}
    assert map_payload(CHANNELS, "lead_ads", record) == record
    assert map_payload(CHANNELS, None, record) == record
    without_source = {"source_lead_id": "wx-1", "phone": "13800138000"}
    assert map_payload(CHANNELS, "wechat", without_source) == {**without_source, "source": "wechat"}


@pytest.mark.parametrize("decoded", [[1, 2], "text", 3, None, {"source": 7}])
def test_map_payload_returns_what_it_cannot_place_unchanged(decoded: Any) -> None:
    assert map_payload(CHANNELS, None, decoded) == decoded
    assert map_payload(CHANNELS, "partner_x", decoded) == decoded
    assert map_payload(Channels(), "lead_ads", meta_lead()) == meta_lead()


# ----------------------------------------------------------------------------- totality

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
ANSWER = st.fixed_dictionaries(
    {"name": st.sampled_from(["email", "full_name", "first_name", "country", "q"]) | SCALAR,
     "values": st.lists(SCALAR, max_size=3) | JSON},
)  # fmt: skip
NATIVE_META = st.fixed_dictionaries(
    {"id": SCALAR, "field_data": st.lists(ANSWER, max_size=5) | JSON},
    optional={"created_time": SCALAR, "campaign_name": SCALAR, "ad_id": JSON},
)
NATIVE_WECHAT = st.fixed_dictionaries(
    {"openid": SCALAR, "form": st.dictionaries(st.text(max_size=8), JSON, max_size=5) | JSON},
    optional={
        "formId": SCALAR,
        "submit_time": SCALAR,
        "purePhoneNumber": SCALAR,
        "countryCode": SCALAR,
        "phoneNumber": SCALAR,
        "nickName": SCALAR,
    },
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(adapter=st.sampled_from(sorted(ADAPTERS)), payload=JSON | NATIVE_META | NATIVE_WECHAT)
def test_adapters_raise_nothing_but_adapter_error(adapter: str, payload: Any) -> None:
    error: AdapterError | None = None
    try:
        mapped = ADAPTERS[adapter]("some_channel", payload)
    except AdapterError as exc:
        error = exc
    if error is not None:
        assert error.detail
        return
    assert isinstance(mapped, dict)
    json.dumps(mapped)  # still JSON: ingest re-encodes nothing, but tools do


@FAST
@given(
    source=st.sampled_from([None, "partner_x", *sorted(CHANNELS.channels)]),
    payload=JSON | NATIVE_META | NATIVE_WECHAT,
)
def test_map_payload_then_validate_is_total(source: str | None, payload: Any) -> None:
    try:
        mapped = map_payload(CHANNELS, source, payload)
    except AdapterError:
        return
    verdict = validate(json.dumps(mapped).encode(), LIMITS)
    assert isinstance(verdict, ValidLead | Rejection)
