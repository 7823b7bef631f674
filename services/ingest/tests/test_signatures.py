"""Webhook signatures: both schemes verify what was signed and nothing else, the window
holds in both directions, and no header content whatsoever makes ``verify`` raise.

Expected MACs are computed here with ``hmac``/``hashlib`` directly (not with the module's
``sign_*`` helpers) so that a bug shared by signer and verifier cannot hide.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadloop_ingest.domain.signatures import (
    DEFAULT_TOLERANCE_S,
    META_SIGNATURE,
    SIGNATURE,
    TIMESTAMP,
    Failure,
    Scheme,
    Verdict,
    sign_leadloop,
    sign_meta,
    verify,
)

SECRET = b"whsec-test-0123456789abcdef"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = json.dumps(
    {"source": "web_form", "source_lead_id": "wf-1", "email": "ann@example.com"}
).encode()
CHINESE = json.dumps(
    {"source": "wechat", "source_lead_id": "wx-1", "name": "张伟", "city": "上海"},
    ensure_ascii=False,
).encode("utf-8")


def leadloop_headers(body: bytes, ts: int = TS, secret: bytes = SECRET) -> dict[str, str]:
    mac = hmac.new(secret, str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Leadloop-Timestamp": str(ts), "X-Leadloop-Signature": f"sha256={mac}"}


def meta_headers(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


def check(
    headers: dict[str, str],
    body: bytes = BODY,
    *,
    scheme: Scheme = "leadloop",
    now: datetime = NOW,
    secret: bytes | None = SECRET,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> Verdict:
    return verify(
        scheme=scheme, secret=secret, body=body, headers=headers, now=now, tolerance_s=tolerance_s
    )


# --- valid signatures ------------------------------------------------------------------


@pytest.mark.parametrize("body", [BODY, CHINESE, b"", b"\x00\xff not even JSON"])
def test_valid_leadloop_signature_passes(body: bytes) -> None:
    verdict = check(leadloop_headers(body), body)
    assert verdict.ok
    assert verdict.reason is None


@pytest.mark.parametrize("body", [BODY, CHINESE, b""])
def test_valid_meta_signature_passes(body: bytes) -> None:
    assert check(meta_headers(body), body, scheme="meta").ok


def test_known_answer_vector() -> None:
    # Computed once by hand, independently of this module, so that the construction
    # (timestamp, a dot, then the body) is pinned.
    secret, body, ts = b"key", b'{"a":1}', 1700000000
    expected = hmac.new(secret, b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    headers = {TIMESTAMP: str(ts), SIGNATURE: f"sha256={expected}"}
    now = datetime.fromtimestamp(ts, UTC)
    assert check(headers, body, secret=secret, now=now).ok
    assert sign_leadloop(secret, body, ts) == headers


def test_sign_helpers_agree_with_the_independent_construction() -> None:
    assert sign_leadloop(SECRET, CHINESE, TS) == leadloop_headers(CHINESE)
    assert sign_meta(SECRET, CHINESE) == meta_headers(CHINESE)


def test_header_names_are_case_insensitive() -> None:
    lower = {k.lower(): v for k, v in leadloop_headers(BODY).items()}
    assert check(lower).ok
    upper = {k.upper(): v for k, v in meta_headers(BODY).items()}
    assert check(upper, scheme="meta").ok


def test_hex_digits_and_algorithm_name_are_case_insensitive() -> None:
    # Some client libraries print hex in upper case (.NET's Convert.ToHexString).
    headers = leadloop_headers(BODY)
    headers[SIGNATURE] = "SHA256=" + headers[SIGNATURE].removeprefix("sha256=").upper()
    assert check(headers).ok


def test_surrounding_whitespace_is_tolerated() -> None:
    headers = {k: f" {v} " for k, v in leadloop_headers(BODY).items()}
    assert check(headers).ok


# --- non-ASCII bodies: the MAC is over the bytes as sent -------------------------------


def test_chinese_body_verifies_over_its_utf8_bytes() -> None:
    assert check(leadloop_headers(CHINESE), CHINESE).ok
    assert check(meta_headers(CHINESE), CHINESE, scheme="meta").ok


def test_the_same_text_in_another_encoding_or_normal_form_does_not_verify() -> None:
    text = CHINESE.decode("utf-8")
    headers = leadloop_headers(CHINESE)
    assert check(headers, text.encode("gb18030")).reason is Failure.BAD_SIGNATURE
    assert check(headers, text.encode("utf-16")).reason is Failure.BAD_SIGNATURE
    # Re-serialising (here: escaping non-ASCII) changes the bytes, so it must fail too.
    escaped = json.dumps(json.loads(CHINESE)).encode()
    assert escaped != CHINESE
    assert check(headers, escaped).reason is Failure.BAD_SIGNATURE


# --- any single-byte change fails ------------------------------------------------------


@given(st.data())
def test_changing_any_body_byte_fails(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from([BODY, CHINESE]))
    index = data.draw(st.integers(0, len(body) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    tampered = body[:index] + bytes([new]) + body[index + 1 :]
    assert check(leadloop_headers(body), tampered).reason is Failure.BAD_SIGNATURE
    assert check(meta_headers(body), tampered, scheme="meta").reason is Failure.BAD_SIGNATURE


@given(st.data())
def test_appending_or_dropping_body_bytes_fails(data: st.DataObject) -> None:
    extra = data.draw(st.binary(min_size=1, max_size=8))
    assert check(leadloop_headers(BODY), BODY + extra).reason is Failure.BAD_SIGNATURE
    cut = data.draw(st.integers(0, len(BODY) - 1))
    assert check(leadloop_headers(BODY), BODY[:cut]).reason is Failure.BAD_SIGNATURE


@given(st.data())
def test_changing_any_timestamp_character_fails(data: st.DataObject) -> None:
    headers = leadloop_headers(BODY)
    ts = headers[TIMESTAMP]
    index = data.draw(st.integers(0, len(ts) - 1))
    new = data.draw(st.characters().filter(lambda c: c != ts[index] and not c.isspace()))
    headers[TIMESTAMP] = ts[:index] + new + ts[index + 1 :]
    # A changed but still numeric timestamp may now also be outside the window; the MAC is
    # checked first, so the answer is bad_signature either way.
    assert check(headers).reason is Failure.BAD_SIGNATURE


def test_a_timestamp_moved_within_the_window_still_fails() -> None:
    headers = leadloop_headers(BODY)
    headers[TIMESTAMP] = str(TS + 1)
    assert check(headers).reason is Failure.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("scheme", "headers", "name"),
    [("leadloop", leadloop_headers(BODY), SIGNATURE), ("meta", meta_headers(BODY), META_SIGNATURE)],
)
@given(data=st.data())
def test_changing_any_signature_character_fails(
    scheme: Scheme, headers: dict[str, str], name: str, data: st.DataObject
) -> None:
    value = headers[name]
    index = data.draw(st.integers(0, len(value) - 1))
    old = value[index]
    # Case changes of a letter name the same digest or algorithm (see above).
    new = data.draw(st.characters().filter(lambda c: c.lower() != old.lower() and not c.isspace()))
    tampered = {**headers, name: value[:index] + new + value[index + 1 :]}
    assert check(tampered, scheme=scheme).reason is Failure.BAD_SIGNATURE


def test_another_secret_fails() -> None:
    assert check(leadloop_headers(BODY, secret=b"another-secret")).reason is Failure.BAD_SIGNATURE
    assert (
        check(meta_headers(BODY, secret=b"another-secret"), scheme="meta").reason
        is Failure.BAD_SIGNATURE
    )


# --- the timestamp window --------------------------------------------------------------


@pytest.mark.parametrize("skew", [-DEFAULT_TOLERANCE_S - 1, DEFAULT_TOLERANCE_S + 1, -86400, 86400])
def test_stale_in_both_directions_fails(skew: int) -> None:
    headers = leadloop_headers(BODY, ts=TS + skew)
    assert check(headers).reason is Failure.STALE_TIMESTAMP


@pytest.mark.parametrize("skew", [-DEFAULT_TOLERANCE_S, 0, DEFAULT_TOLERANCE_S])
def test_edges_of_the_window_pass(skew: int) -> None:
    assert check(leadloop_headers(BODY, ts=TS + skew)).ok


@given(skew=st.integers(-10_000, 10_000), tolerance=st.integers(0, 3600))
def test_window_property(skew: int, tolerance: int) -> None:
    verdict = check(leadloop_headers(BODY, ts=TS + skew), tolerance_s=tolerance)
    assert verdict.ok is (abs(skew) <= tolerance)
    if not verdict.ok:
        assert verdict.reason is Failure.STALE_TIMESTAMP


def test_now_with_sub_second_precision_and_another_offset() -> None:
    shanghai = NOW.astimezone(ZoneInfo("Asia/Shanghai"))
    assert check(leadloop_headers(BODY), now=shanghai + timedelta(milliseconds=999)).ok


def test_a_forged_stale_request_is_told_bad_signature_not_stale() -> None:
    headers = leadloop_headers(BODY, ts=TS - 3600, secret=b"forger")
    assert check(headers).reason is Failure.BAD_SIGNATURE


# --- missing and malformed headers -----------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TIMESTAMP: str(TS)},
        {SIGNATURE: "sha256=" + "0" * 64},
        {TIMESTAMP: "", SIGNATURE: "sha256=" + "0" * 64},
        {TIMESTAMP: str(TS), SIGNATURE: ""},
        # The other scheme's header is not a signature for this one.
        {META_SIGNATURE: "sha256=" + "0" * 64},
    ],
)
def test_missing_leadloop_headers(headers: dict[str, str]) -> None:
    assert check(headers).reason is Failure.MISSING_SIGNATURE


@pytest.mark.parametrize("headers", [{}, {META_SIGNATURE: ""}, leadloop_headers(BODY)])
def test_missing_meta_header(headers: dict[str, str]) -> None:
    assert check(headers, scheme="meta").reason is Failure.MISSING_SIGNATURE


GOOD_MAC = leadloop_headers(BODY)[SIGNATURE].removeprefix("sha256=")


@pytest.mark.parametrize(
    "signature",
    [
        "sha1=" + hashlib.sha1(BODY).hexdigest(),
        "sha1=" + GOOD_MAC,
        "md5=" + GOOD_MAC,
        GOOD_MAC,  # no algorithm
        "sha256=",
        "sha256",
        "=",
        "sha256=" + GOOD_MAC[:-1],  # one digit short
        "sha256=" + GOOD_MAC + "0",  # one digit long
        "sha256=" + GOOD_MAC[:-2] + "zz",  # non-hex
        "sha256=" + GOOD_MAC[:-2] + " 0",  # bytes.fromhex would skip the space
        "sha256=" + "０" * 64,  # fullwidth digits
        "sha256=" + "٣" * 64,  # Arabic-Indic digits
        "sha256=" + "é" * 64,
        "sha256=\udc80\udcff",  # undecodable bytes as aiohttp hands them over
        "sha256=" + GOOD_MAC + ",sha256=" + GOOD_MAC,
        "签名=" + GOOD_MAC,
        "\x00",
        "sha256=" + "f" * 10_000,
    ],
)
def test_malformed_signature_is_bad_not_an_exception(signature: str) -> None:
    headers = {TIMESTAMP: str(TS), SIGNATURE: signature}
    assert check(headers).reason is Failure.BAD_SIGNATURE
    assert check({META_SIGNATURE: signature}, scheme="meta").reason is Failure.BAD_SIGNATURE


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        "-1",
        "+" + str(TS),
        str(TS) + ".5",
        "1e9",
        "١٧٠٠٠٠٠٠٠٠",  # Arabic-Indic digits: int() would accept them
        "１７００００００００",  # fullwidth digits
        "9" * 13,
        "9" * 400,  # int() of this would be far outside any datetime
        "\udc80",
        "0x10",
    ],
)
def test_malformed_timestamp_is_bad_not_an_exception(timestamp: str) -> None:
    headers = leadloop_headers(BODY)
    headers[TIMESTAMP] = timestamp
    assert check(headers).reason is Failure.BAD_SIGNATURE


@given(
    timestamp=st.none() | st.text(),
    signature=st.none() | st.text(),
    meta=st.none() | st.text(),
    body=st.binary(max_size=64),
    scheme=st.sampled_from(["leadloop", "meta"]),
)
def test_arbitrary_headers_never_raise(
    timestamp: str | None, signature: str | None, meta: str | None, body: bytes, scheme: Scheme
) -> None:
    headers = {
        name: value
        for name, value in ((TIMESTAMP, timestamp), (SIGNATURE, signature), (META_SIGNATURE, meta))
        if value is not None
    }
    verdict = check(headers, body, scheme=scheme)
    assert isinstance(verdict, Verdict)
    assert not verdict.ok  # forging a MAC by chance is not a thing hypothesis finds
    assert verdict.reason in set(Failure)


@given(st.dictionaries(st.text(), st.text(), max_size=5), st.binary(max_size=64))
def test_arbitrary_header_maps_never_raise(headers: dict[str, str], body: bytes) -> None:
    schemes: tuple[Scheme, ...] = ("leadloop", "meta")
    for scheme in schemes:
        assert not check(headers, body, scheme=scheme).ok


# --- no secret -------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, b""])
@pytest.mark.parametrize("scheme", ["leadloop", "meta"])
def test_a_source_without_a_secret_is_never_accepted(secret: bytes | None, scheme: Scheme) -> None:
    empty_mac = {
        **leadloop_headers(BODY, secret=b""),
        **meta_headers(BODY, secret=b""),
    }
    assert check(empty_mac, scheme=scheme, secret=secret).reason is Failure.UNKNOWN_SOURCE


def test_reason_codes_are_stable() -> None:
    assert {f.value for f in Failure} == {
        "missing_signature",
        "bad_signature",
        "stale_timestamp",
        "unknown_source",
    }
