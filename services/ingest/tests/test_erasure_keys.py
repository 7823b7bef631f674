"""``erasure_keys_of``: the replay tool's test of whether a rejected record holds an
erased person. The keys must be exactly those ``erase`` records for the same person,
whatever shape the channel sent."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from leadloop_ingest.domain.erasure import erasure_keys_of, subject_for

PEPPER = b"pepper-0123456789abcdef"


def keys_of(email: str | None, phone: str | None, region: str | None = None) -> set[str]:
    keys = subject_for(email, phone, region).record_keys(PEPPER)
    return {k for k in keys if k is not None}


def test_contract_shape_email_and_phone_as_erase_records_them() -> None:
    record = {"source": "web_form", "email": " Ann@Example.COM ", "phone": "+86 138 0013 8000"}
    got = erasure_keys_of(json.dumps(record).encode(), PEPPER, None)
    assert got == keys_of("ann@example.com", "+8613800138000")


def test_channel_native_shapes_and_regions() -> None:
    wechat = {"openid": "o-1", "purePhoneNumber": "13800138000"}
    assert erasure_keys_of(json.dumps(wechat).encode(), PEPPER, "CN") == keys_of(
        None, "13800138000", "CN"
    )
    meta = {"field_data": [{"name": "phone_number", "values": ["+86 138 0013 8000"]}]}
    assert erasure_keys_of(json.dumps(meta).encode(), PEPPER, None) == keys_of(
        None, "+8613800138000"
    )
    # The record's own country wins over the channel's default region.
    local = {"phone": "020 7946 0958", "country": "GB"}
    assert erasure_keys_of(json.dumps(local).encode(), PEPPER, "CN") == keys_of(
        None, "020 7946 0958", "GB"
    )
    # An address is one wherever it sits.
    nested = {"contact": {"primary": "bo@example.cn"}}
    assert erasure_keys_of(json.dumps(nested).encode(), PEPPER, None) == keys_of(
        "bo@example.cn", None
    )


def test_values_erase_could_not_name_match_nothing() -> None:
    record = {"email": "not-an-address", "phone": "12", "note": "call 13800138000"}
    assert erasure_keys_of(json.dumps(record).encode(), PEPPER, "CN") == set()


@given(st.binary(max_size=200))
def test_total_on_any_bytes(value: bytes) -> None:
    assert isinstance(erasure_keys_of(value, PEPPER, "CN"), set)
