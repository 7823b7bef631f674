"""CRM feedback: ``judge`` decides on a whole body (every reason code, the array limits,
all-or-nothing), and the ``Feedback`` endpoint answers as documented without a broker
(signature, client, size, busy, unavailable), publishing only what ``judge`` accepted.

Properties: whatever bytes or JSON arrive, ``judge`` returns a batch whose every value
the topic's consumers can read, or a refusal with documented codes; it never raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from leadloop.clock import FixedClock
from leadloop.events import ActivityRecorded, RepUpdated, SatisfactionRecorded, StageChanged
from leadloop.messaging import OutMessage
from leadloop_ingest.adapters.feedback_http import CLIENT, CLIENT_HEADER, Feedback
from leadloop_ingest.domain.feedback import (
    FEEDBACK_TOPICS,
    MAX_ITEMS,
    Batch,
    BodyReason,
    ItemReason,
    Refusal,
    judge,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SECRET = "crm-secret-0123456789abcdef"
MODELS: dict[str, Any] = {
    "crm.activities": ActivityRecorded,
    "crm.stage-changes": StageChanged,
    "crm.satisfaction": SatisfactionRecorded,
}
MODELS_ALL: dict[str, Any] = {**MODELS, "crm.reps": RepUpdated}


def activity(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"act-{n}",
        "lead_id": f"lead-{n}",
        "rep_id": "rep-1",
        "kind": "call",
        "occurred_at": "2025-03-14T09:00:00+08:00",
        **fields,
    }


def stage(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"stg-{n}",
        "lead_id": f"lead-{n}",
        "stage": "qualified",
        "occurred_at": "2025-03-14T09:00:00Z",
        "rep_id": "rep-1",
        **fields,
    }


def csat(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"csat-{n}",
        "lead_id": f"lead-{n}",
        "rep_id": "rep-1",
        "score": 4,
        "occurred_at": "2025-03-14T18:00:00+08:00",
        **fields,
    }


def rep(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "rep_id": f"rep-{n}",
        "team_id": "team-east",
        "updated_at": "2025-03-14T09:00:00Z",
        **fields,
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def refused(topic: str, body: bytes) -> Refusal:
    decision = judge(topic, body)
    assert isinstance(decision, Refusal), decision
    return decision


def item_reasons(topic: str, items: list[Any]) -> list[tuple[int, str]]:
    decision = refused(topic, dumps(items))
    assert decision.status == 422
    assert decision.reason is None
    return [(e.index, e.reason) for e in decision.errors]


# --- accepted ---------------------------------------------------------------------------


def test_one_object_or_an_array_is_a_batch_keyed_by_lead_or_rep() -> None:
    single = judge("crm.activities", dumps(activity(1)))
    assert isinstance(single, Batch)
    assert single.topic == "crm.activities"
    assert [i.key for i in single.items] == [b"lead-1"]

    many = judge("crm.stage-changes", dumps([stage(1), stage(2, stage="won", amount=12.5)]))
    assert isinstance(many, Batch)
    assert [i.key for i in many.items] == [b"lead-1", b"lead-2"]

    reps = judge("crm.reps", dumps([rep(1), rep(2, status="left")]))
    assert isinstance(reps, Batch)
    assert [i.key for i in reps.items] == [b"rep-1", b"rep-2"], "crm.reps is keyed by rep_id"


def test_activity_values_are_the_items_compact_utf8_with_unknown_fields_kept() -> None:
    item = activity(1, outcome="约了下周三", crm_extra={"deal": "D-9"})
    pretty = json.dumps([item], indent=4, ensure_ascii=True).encode()
    batch = judge("crm.activities", pretty)
    assert isinstance(batch, Batch)
    (value,) = [i.value for i in batch.items]
    assert json.loads(value) == item
    assert b"\n" not in value, "compact"
    assert b", " not in value, "compact"
    assert "约了下周三".encode() in value, "UTF-8, not \\u escapes"
    ActivityRecorded.model_validate_json(value)  # what sla-monitor and metrics do


def test_rep_contacts_and_external_ids_are_accepted() -> None:
    item = rep(
        1,
        contacts={"wecom": "zhangsan", "email": "zhang.san@example.com"},
        external_ids={"salesforce": "005xx000001"},
        skills=["solar"],
        timezone="Asia/Shanghai",
    )
    batch = judge("crm.reps", dumps(item))
    assert isinstance(batch, Batch)
    decoded = RepUpdated.model_validate_json(batch.items[0].value)
    assert decoded.contacts["wecom"] == "zhangsan"
    assert decoded.external_ids == {"salesforce": "005xx000001"}


def test_satisfaction_scores_are_keyed_by_lead_with_or_without_a_rep() -> None:
    no_rep = {k: v for k, v in csat(2, score=1).items() if k != "rep_id"}
    batch = judge("crm.satisfaction", dumps([csat(1, survey_id="post_call"), no_rep]))
    assert isinstance(batch, Batch)
    assert batch.topic == "crm.satisfaction"
    assert [i.key for i in batch.items] == [b"lead-1", b"lead-2"]
    assert [json.loads(i.value) for i in batch.items] == [csat(1, survey_id="post_call"), no_rep]
    scores = [SatisfactionRecorded.model_validate_json(i.value) for i in batch.items]
    assert [(e.rep_id, e.score) for e in scores] == [("rep-1", 4), (None, 1)]


def test_a_satisfaction_item_publishes_only_the_contracts_fields() -> None:
    # crm.satisfaction is PII-free: a customer's comment is not passed on.
    item = csat(1, comment="张伟 was rude, call me on 13800138000", crm_extra={"x": 1})
    batch = judge("crm.satisfaction", dumps(item))
    assert isinstance(batch, Batch)
    (value,) = [i.value for i in batch.items]
    assert json.loads(value) == csat(1)
    assert "张伟".encode() not in value
    assert b"13800138000" not in value


def test_stage_changes_and_reps_publish_only_the_contracts_fields() -> None:
    # Both topics are PII-free: a CRM's extras (a contact's name) are not passed on.
    change = stage(contact_name="张伟", contact_phone="13800138000")
    rep_item = rep(1, timezone="Asia/Shanghai", home_address="北京市朝阳区")
    for topic, item in (("crm.stage-changes", change), ("crm.reps", rep_item)):
        batch = judge(topic, dumps(item))
        assert isinstance(batch, Batch), topic
        (value,) = [i.value for i in batch.items]
        kept = {k: v for k, v in item.items() if k not in _EXTRAS}
        assert json.loads(value) == kept, topic
        assert "张伟".encode() not in value
        assert "北京".encode() not in value


_EXTRAS = frozenset({"contact_name", "contact_phone", "home_address"})


def test_a_lost_stage_with_its_reason_is_accepted() -> None:
    assert isinstance(
        judge("crm.stage-changes", dumps(stage(loss_reason="no_budget", stage="lost"))), Batch
    )


def test_exactly_max_items_is_accepted_one_more_is_413() -> None:
    body = dumps([activity(i) for i in range(MAX_ITEMS)])
    batch = judge("crm.activities", body)
    assert isinstance(batch, Batch)
    assert len(batch.items) == MAX_ITEMS
    over = refused("crm.activities", dumps([activity(i) for i in range(MAX_ITEMS + 1)]))
    assert (over.status, over.reason) == (413, BodyReason.TOO_MANY_ITEMS)
    assert over.body() == {"error": "too_many_items", "detail": over.detail}
    capped = judge("crm.activities", dumps([activity(i) for i in range(3)]), max_items=2)
    assert isinstance(capped, Refusal)
    assert capped.reason is BodyReason.TOO_MANY_ITEMS


# --- refused bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", BodyReason.INVALID_JSON),
        (b'{"event_id": ', BodyReason.INVALID_JSON),
        (b"\xff\xfe{}", BodyReason.INVALID_JSON),
        (b'{"amount": NaN}', BodyReason.INVALID_JSON),
        (b"[Infinity]", BodyReason.INVALID_JSON),
        (b"[" * 100_000 + b"]" * 100_000, BodyReason.INVALID_JSON),
        (b"1" * 5000, BodyReason.INVALID_JSON),  # past Python's int digit limit
        (b'"\\ud800"', BodyReason.INVALID_JSON),  # a lone surrogate escape
        (b'[{"event_id": "\\udc00"}]', BodyReason.INVALID_JSON),
        (b'{"a": 1} {"a": 2}', BodyReason.INVALID_JSON),
        (b"3", BodyReason.NOT_EVENTS),
        (b'"call"', BodyReason.NOT_EVENTS),
        (b"null", BodyReason.NOT_EVENTS),
        (b"[]", BodyReason.NO_ITEMS),
    ],
)
def test_whole_body_refusals(body: bytes, reason: BodyReason) -> None:
    decision = refused("crm.activities", body)
    assert (decision.status, decision.reason) == (422, reason)
    assert decision.body() == {"error": reason.value, "detail": decision.detail}
    assert decision.code == reason.value


# --- refused items: every reason, with its index, all-or-nothing ------------------------


def test_each_invalid_item_is_named_by_index_and_nothing_is_accepted() -> None:
    items = [
        stage(0),
        stage(1, stage="closed"),  # unknown_stage
        stage(2, stage="lost"),  # missing_loss_reason
        stage(3, stage="lost", loss_reason=""),  # empty is missing
        {k: v for k, v in stage(4).items() if k != "rep_id"},  # schema_violation
        "not an object",
        stage(6, stage="lost", loss_reason="bored"),  # not a loss reason code
        stage(7),
    ]
    assert item_reasons("crm.stage-changes", items) == [
        (1, "unknown_stage"),
        (2, "missing_loss_reason"),
        (3, "missing_loss_reason"),
        (4, "schema_violation"),
        (5, "schema_violation"),
        (6, "schema_violation"),
    ]


@pytest.mark.parametrize(
    ("topic", "item", "reason", "detail"),
    [
        ("crm.activities", activity(kind="fax"), "schema_violation", "invalid fields: kind"),
        (
            "crm.activities",
            activity(occurred_at="2025-03-14T09:00:00"),  # no offset
            "schema_violation",
            "invalid fields: occurred_at",
        ),
        ("crm.activities", activity(lead_id=""), "schema_violation", "invalid fields: lead_id"),
        ("crm.activities", activity(rep_id=7), "schema_violation", "invalid fields: rep_id"),
        ("crm.activities", [activity()], "schema_violation", "expected a JSON object"),
        ("crm.stage-changes", stage(stage=3), "schema_violation", "invalid fields: stage"),
        ("crm.stage-changes", stage(amount=-1), "schema_violation", "invalid fields: amount"),
        (
            "crm.satisfaction",
            csat(score=0),
            "score_out_of_range",
            "score must be from 1 to 5",
        ),
        (
            "crm.satisfaction",
            csat(score=10),
            "score_out_of_range",
            "score must be from 1 to 5",
        ),
        ("crm.satisfaction", csat(score="5"), "schema_violation", "invalid fields: score"),
        ("crm.satisfaction", csat(score=4.5), "schema_violation", "invalid fields: score"),
        ("crm.satisfaction", csat(score=True), "schema_violation", "invalid fields: score"),
        (
            "crm.satisfaction",
            {k: v for k, v in csat().items() if k != "score"},
            "schema_violation",
            "invalid fields: score",
        ),
        (
            "crm.satisfaction",
            csat(survey_id="NPS survey #3"),
            "schema_violation",
            "invalid fields: survey_id",
        ),
        ("crm.reps", rep(status="gone"), "schema_violation", "invalid fields: status"),
        ("crm.reps", rep(capacity=-1), "schema_violation", "invalid fields: capacity"),
        ("crm.reps", rep(contacts=["wecom"]), "schema_violation", "invalid fields: contacts"),
        (
            "crm.reps",
            rep(external_ids={"salesforce": 5}),
            "schema_violation",
            "invalid fields: external_ids",
        ),
        ("crm.reps", rep(timezone="Mars/Olympus"), "schema_violation", "invalid fields: timezone"),
        ("crm.reps", rep(timezone="../etc/passwd"), "schema_violation", "invalid fields: timezone"),
        ("crm.reps", {"team_id": "t"}, "schema_violation", "invalid fields: rep_id, updated_at"),
        ("crm.reps", "rep-1", "schema_violation", "expected a JSON object"),
    ],
)
def test_item_reasons(topic: str, item: Any, reason: str, detail: str) -> None:
    decision = refused(topic, dumps([item]))
    assert decision.body() == {"errors": [{"index": 0, "reason": reason, "detail": detail}]}


def test_a_number_beyond_float_range_is_invalid_json_for_that_item() -> None:
    # Read as inf, which JSON cannot carry: consumers could not read the value.
    body = dumps([stage(0), stage(1, amount=1)]).replace(b'"amount": 1', b'"amount": 1e400')
    decision = refused("crm.stage-changes", body)
    assert decision.body() == {
        "errors": [{"index": 1, "reason": "invalid_json", "detail": "cannot be written as JSON"}]
    }


def test_nesting_is_judged_by_the_consumers_parser_the_same_everywhere() -> None:
    # pydantic's JSON parser (the consumers') stops at 200 levels; Python's json would go
    # on until the stack runs out, which differs between processes.
    shallow = activity(extra=json.loads("[" * 190 + "]" * 190))
    batch = judge("crm.activities", dumps([shallow]))
    assert isinstance(batch, Batch)
    ActivityRecorded.model_validate_json(batch.items[0].value)
    deep = refused("crm.activities", dumps([activity(extra=json.loads("[" * 300 + "]" * 300))]))
    assert (deep.status, deep.reason) == (422, BodyReason.INVALID_JSON)


def test_details_name_fields_never_values() -> None:
    secret = "zhang.san@example.com"
    items = [
        rep(contacts={"email": secret * 20}),  # over ShortText
        rep(timezone=secret),
        activity(rep_id=[secret]),
    ]
    for topic, item in zip(("crm.reps", "crm.reps", "crm.activities"), items, strict=True):
        text = json.dumps(refused(topic, dumps([item])).body())
        assert "zhang" not in text, text


def test_reason_codes_are_the_documented_ones() -> None:
    assert {r.value for r in ItemReason} == {
        "schema_violation",
        "unknown_stage",
        "missing_loss_reason",
        "score_out_of_range",
        "invalid_json",
    }
    assert {r.value for r in BodyReason} == {
        "invalid_json",
        "not_events",
        "no_items",
        "too_many_items",
    }
    assert set(FEEDBACK_TOPICS) == {"activities", "stage-changes", "satisfaction", "reps"}


# --- properties -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)
topics = st.sampled_from(sorted(MODELS_ALL))
valid_items = st.sampled_from(
    [
        ("crm.activities", activity(1)),
        ("crm.stage-changes", stage(1)),
        ("crm.satisfaction", csat(1)),
        ("crm.reps", rep(1)),
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid item of some topic with one field replaced, dropped or added."""
    topic, item = draw(valid_items)
    item = dict(item)
    field = draw(st.sampled_from([*sorted(item), "stage", "loss_reason", "contacts", "score", "x"]))
    if draw(st.booleans()):
        item.pop(field, None)
    else:
        item[field] = draw(
            json_values | st.sampled_from(["lost", "won", "no_budget", "UTC", 0, 1, 5, 6])
        )
    return topic, item


def assert_well_formed(topic: str, body: bytes, decision: Batch | Refusal) -> None:
    if isinstance(decision, Batch):
        assert 1 <= len(decision.items) <= MAX_ITEMS
        for item in decision.items:
            MODELS_ALL[topic].model_validate_json(item.value)  # every consumer can read it
            assert item.key
        return
    if decision.reason is not None:
        assert decision.status in (413, 422)
        assert not decision.errors
        assert decision.reason in BodyReason
        return
    assert decision.status == 422
    assert decision.errors
    indexes = [e.index for e in decision.errors]
    assert indexes == sorted(set(indexes))
    assert all(e.reason in {r.value for r in ItemReason} for e in decision.errors)
    assert all(e.detail for e in decision.errors)
    json.dumps(decision.body())  # the reply is serialisable


@given(topic=topics, body=st.binary(max_size=300))
def test_any_bytes_never_raise(topic: str, body: bytes) -> None:
    assert_well_formed(topic, body, judge(topic, body))


@given(topic=topics, value=json_values)
def test_any_json_value_never_raises(topic: str, value: Any) -> None:
    body = dumps(value)
    assert_well_formed(topic, body, judge(topic, body))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(mutated(), min_size=1, max_size=8), as_array=st.booleans())
def test_mutated_items_are_judged_per_item_and_all_or_nothing(
    items: list[tuple[str, Any]], as_array: bool
) -> None:
    topic = items[0][0]
    values = [item for _, item in items]
    body = dumps(values if as_array or len(values) > 1 else values[0])
    decision = judge(topic, body)
    assert_well_formed(topic, body, decision)
    # Each item alone gets the same verdict as inside the array.
    alone = [judge(topic, dumps([v])) for v in values]
    bad = [i for i, d in enumerate(alone) if isinstance(d, Refusal)]
    if bad:
        assert isinstance(decision, Refusal)
        assert [e.index for e in decision.errors] == bad
    else:
        assert isinstance(decision, Batch)
        assert len(decision.items) == len(values)


# --- the endpoint without a broker ------------------------------------------------------


class Recorder:
    def __init__(self, fail: BaseException | None = None, delay: float = 0) -> None:
        self.sent: list[OutMessage] = []
        self.fail = fail
        self.delay = delay

    async def __call__(self, messages: Sequence[OutMessage]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.sent.extend(messages)


def signed(body: bytes, *, ts: datetime = NOW, secret: str = SECRET) -> dict[str, str]:
    stamp = int(ts.timestamp())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Leadloop-Timestamp": str(stamp),
        "X-Leadloop-Signature": f"sha256={mac}",
        CLIENT: "acme",
    }


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 1000):
        yield body[i : i + 1000]


def endpoint(publish: Recorder, **kwargs: Any) -> Feedback:
    return Feedback(
        publish=publish,
        secrets={"acme": SecretStr(SECRET)},
        clock=FixedClock(NOW),
        **kwargs,
    )


async def call(hook: Feedback, kind: str, body: bytes, headers: dict[str, str]) -> Any:
    reply = await hook.handle(kind, headers, chunks(body))
    return reply.status, reply.body, reply.headers


async def test_a_signed_valid_batch_is_published_with_keys_and_client_header() -> None:
    sent = Recorder()
    body = dumps([activity(1), activity(2)])
    status, reply, _ = await call(endpoint(sent), "activities", body, signed(body))
    assert (status, reply) == (202, {"accepted": 2})
    assert [(m.topic, m.key) for m in sent.sent] == [
        ("crm.activities", b"lead-1"),
        ("crm.activities", b"lead-2"),
    ]
    assert all(dict(m.headers)[CLIENT_HEADER] == b"acme" for m in sent.sent)
    body = dumps(rep(3))
    assert (await call(endpoint(sent), "reps", body, signed(body)))[:2] == (202, {"accepted": 1})
    assert sent.sent[-1].key == b"rep-3"
    body = dumps(csat(4))
    assert (await call(endpoint(sent), "satisfaction", body, signed(body)))[:2] == (
        202,
        {"accepted": 1},
    )
    assert (sent.sent[-1].topic, sent.sent[-1].key) == ("crm.satisfaction", b"lead-4")


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "unknown_client"),
        ({CLIENT: "other-crm"}, "unknown_client"),
        ({CLIENT: "acme"}, "missing_signature"),
        ("wrong-secret", "bad_signature"),
        ("tampered", "bad_signature"),
        ("stale", "stale_timestamp"),
        ("future", "stale_timestamp"),
    ],
)
async def test_unauthenticated_requests_get_401_and_publish_nothing(
    headers: dict[str, str] | str, error: str
) -> None:
    sent = Recorder()
    body = dumps(activity())
    chosen = (
        {
            "wrong-secret": signed(body, secret="another-secret-0123456789"),
            "tampered": signed(body.replace(b"lead-1", b"lead-2")),
            "stale": signed(body, ts=NOW - timedelta(minutes=6)),
            "future": signed(body, ts=NOW + timedelta(minutes=6)),
        }.get(headers, headers)
        if isinstance(headers, str)
        else headers
    )
    assert isinstance(chosen, dict)
    status, reply, reply_headers = await call(endpoint(sent), "activities", body, chosen)
    assert (status, reply) == (401, {"error": error})
    assert "WWW-Authenticate" in reply_headers
    assert sent.sent == []


async def test_invalid_items_get_422_with_indexes_and_publish_nothing() -> None:
    sent = Recorder()
    body = dumps([stage(0), stage(1, stage="lost"), stage(2)])
    status, reply, _ = await call(endpoint(sent), "stage-changes", body, signed(body))
    assert status == 422
    assert reply == {
        "errors": [
            {
                "index": 1,
                "reason": "missing_loss_reason",
                "detail": "a lost lead needs a loss_reason code",
            }
        ]
    }
    assert sent.sent == []


async def test_a_score_off_the_scale_gets_422_with_its_reason_and_publishes_nothing() -> None:
    sent = Recorder()
    body = dumps([csat(0), csat(1, score=7)])
    status, reply, _ = await call(endpoint(sent), "satisfaction", body, signed(body))
    assert (status, reply) == (
        422,
        {
            "errors": [
                {"index": 1, "reason": "score_out_of_range", "detail": "score must be from 1 to 5"}
            ]
        },
    )
    assert sent.sent == []


async def test_size_limits_and_unknown_paths() -> None:
    sent = Recorder()
    hook = endpoint(sent, max_body_bytes=2048)
    big = dumps([activity(i) for i in range(40)])
    assert len(big) > 2048
    declared = {**signed(big), "Content-Length": str(len(big))}
    assert (await call(hook, "activities", big, declared))[:2] == (413, {"error": "too_large"})
    # Chunked or understated: what actually arrives is counted.
    assert (await call(hook, "activities", big, signed(big)))[:2] == (413, {"error": "too_large"})
    many = dumps([activity(i) for i in range(MAX_ITEMS + 1)])
    status, reply, _ = await call(
        endpoint(sent, max_body_bytes=10**7), "activities", many, signed(many)
    )
    assert (status, reply["error"]) == (413, "too_many_items")
    assert (await call(hook, "leads", b"{}", signed(b"{}")))[:2] == (
        404,
        {"error": "unknown_feedback"},
    )
    assert sent.sent == []


async def test_busy_is_429_and_a_broker_failure_or_timeout_is_503_with_retry_after() -> None:
    body = dumps(activity())
    failing = endpoint(Recorder(fail=ConnectionError("broker down")))
    status, reply, headers = await call(failing, "activities", body, signed(body))
    assert (status, reply, headers["Retry-After"]) == (503, {"error": "unavailable"}, "5")

    slow = Recorder(delay=0.3)
    hook = endpoint(slow, max_in_flight=1, publish_timeout_s=0.05)
    status, reply, headers = await call(hook, "activities", body, signed(body))
    assert (status, reply) == (503, {"error": "unavailable"})
    assert hook.in_flight == 1, "the timed-out send keeps running"
    status, reply, headers = await call(hook, "activities", body, signed(body))
    assert (status, reply, headers["Retry-After"]) == (429, {"error": "busy"}, "1")
    await asyncio.sleep(0.4)
    assert hook.in_flight == 0
    assert len(slow.sent) == 1, "it arrived after all"
