"""CRM feedback over signed HTTP (``POST /v1/crm/activities``, ``/stage-changes``,
``/satisfaction``, ``/reps``) on a real ingest process, the real broker and PostgreSQL.

- Signed single events and arrays are answered 202 ``{"accepted": n}`` and exactly those
  items are on the prefixed topics: keyed by lead (rep for crm.reps), the posted JSON
  compactly, with the ``leadloop-client`` header. ingest's own timeline consumer then
  records the activities and stage changes of a real lead in PostgreSQL, and puts an
  event for an unknown lead on crm.rejected with ``unknown_lead``: published, never
  silently dropped.
- Satisfaction scores: a posted score is on crm.satisfaction (contract fields only, a
  comment dropped) and in the lead's ``lead_satisfaction`` rows; a score off the 1-5
  scale is refused over HTTP (422 ``score_out_of_range``, nothing published) and, when
  a CRM produces it to Kafka directly, lands on crm.rejected with its bytes and reason.
- Bad, missing or stale signatures and unknown clients (401), invalid items (422 naming
  each index), too many items and too large bodies (413) publish nothing at all.
- A hypothesis fuzz of the four endpoints: every answer is a documented status (never a
  500), a validly signed request gets exactly what the pure ``judge`` decides, ingest
  stays alive and ready, and the topics hold exactly the accepted items.

Signatures are computed here with ``hmac`` directly, as a CRM would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import running_stack
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import create_database, drop_database, running, stack_env

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified
from leadloop_ingest.domain.feedback import FEEDBACK_TOPICS, Batch, judge

pytestmark = pytest.mark.e2e

CLIENT = "acme-crm"
CRM_SECRET = "crm-" + uuid.uuid4().hex
WEB_FORM_SECRET = "wf-" + uuid.uuid4().hex
#: Every status the endpoints document.
DOCUMENTED = {202, 401, 404, 408, 413, 422, 429, 503}


def crm_env(database_url: str, kafka: KafkaSettings, tmp: Path, **extra: str) -> dict[str, str]:
    return stack_env(
        database_url,
        kafka,
        tmp,
        LEADLOOP_WEBHOOK_SECRETS=json.dumps({"web_form": WEB_FORM_SECRET}),
        LEADLOOP_CRM_SECRETS=json.dumps({CLIENT: CRM_SECRET, "other-crm": "o-" + uuid.uuid4().hex}),
        **extra,
    )


@pytest.fixture
def ingest(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    with running(crm_env(database_url, kafka_settings, tmp_path), tmp_path, "ingest") as group:
        yield group


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def signed(
    body: bytes, secret: str = CRM_SECRET, ts: int | None = None, client: str = CLIENT
) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Leadloop-Client": client,
        "X-Leadloop-Timestamp": str(ts),
        "X-Leadloop-Signature": f"sha256={mac}",
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.post(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    ) as response:
        return response.status, await response.json(content_type=None)


def activity(lead_id: str, n: int, kind: str = "call", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"act-{uuid.uuid4().hex}",
        "lead_id": lead_id,
        "rep_id": "rep-1",
        "kind": kind,
        "occurred_at": f"2025-03-14T09:{n:02d}:00+08:00",
        **fields,
    }


def stage_change(lead_id: str, n: int, stage: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"stg-{uuid.uuid4().hex}",
        "lead_id": lead_id,
        "stage": stage,
        "occurred_at": f"2025-03-14T10:{n:02d}:00+08:00",
        "rep_id": "rep-1",
        **fields,
    }


def satisfaction(lead_id: str, n: int, score: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"csat-{uuid.uuid4().hex}",
        "lead_id": lead_id,
        "rep_id": "rep-1",
        "score": score,
        "occurred_at": f"2025-03-14T11:{n:02d}:00+08:00",
        **fields,
    }


def rep(rep_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "rep_id": rep_id,
        "team_id": "team-east",
        "updated_at": "2025-03-14T08:00:00Z",
        **fields,
    }


async def a_real_lead(
    http: aiohttp.ClientSession, ingest: ServiceGroup, kafka: KafkaSettings
) -> str:
    """A lead accepted by this ingest through its own webhook; its lead_id."""
    body = dumps({"source": "web_form", "source_lead_id": "fb-1", "email": "ann@example.com"})
    url = ingest.url("ingest", "/v1/leads/web_form")
    ts = int(time.time())
    mac = hmac.new(WEB_FORM_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256)
    headers = {"X-Leadloop-Timestamp": str(ts), "X-Leadloop-Signature": f"sha256={mac.hexdigest()}"}
    assert await post(http, url, body, headers) == (202, {"status": "accepted"})
    (accepted,) = await collect(kafka, "leads.accepted", 1)
    lead_id: str = json.loads(accepted.value)["lead_id"]
    return lead_id


async def wait_for(conn: asyncpg.Connection, query: str, want: int, *args: Any) -> int:
    """The query's count once it reached ``want`` (or after a minute): ingest's consumer
    works on its own schedule."""
    deadline = time.monotonic() + 60
    while True:
        got = int(await conn.fetchval(query, *args))
        if got >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def test_signed_feedback_reaches_the_topics_and_the_timeline(
    ingest: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    http: aiohttp.ClientSession,
) -> None:
    lead_id = await a_real_lead(http, ingest, kafka_settings)
    url = {kind: ingest.url("ingest", f"/v1/crm/{kind}") for kind in FEEDBACK_TOPICS}
    unknown = activity("no-such-lead", 0, outcome="wrong number")
    posts: dict[str, list[Any]] = {
        "activities": [
            activity(lead_id, 1, outcome="约了下周三"),
            [activity(lead_id, 2, "email"), activity(lead_id, 3, "note")],
            unknown,
        ],
        "stage-changes": [
            stage_change(lead_id, 1, "qualified"),
            [
                stage_change(lead_id, 2, "proposal", amount=12000.5),
                stage_change(lead_id, 3, "lost", loss_reason="chose_competitor"),
            ],
        ],
        "satisfaction": [
            satisfaction(lead_id, 1, 5, survey_id="post_call"),
            [satisfaction(lead_id, 2, 3), satisfaction(lead_id, 3, 1, rep_id=None)],
        ],
        "reps": [
            rep("rep-1", contacts={"wecom": "zhangsan"}, external_ids={"salesforce": "005x1"}),
            [rep("rep-2", status="away"), rep("rep-3", status="left", timezone="Asia/Shanghai")],
        ],
    }
    for kind, bodies in posts.items():
        for payload in bodies:
            body = dumps(payload)
            n = len(payload) if isinstance(payload, list) else 1
            assert await post(http, url[kind], body, signed(body)) == (202, {"accepted": n}), kind

    for kind, bodies in posts.items():
        items = [i for p in bodies for i in (p if isinstance(p, list) else [p])]
        key_field = "rep_id" if kind == "reps" else "lead_id"
        records = await collect(kafka_settings, FEEDBACK_TOPICS[kind], len(items), linger_ms=1500)
        assert len(records) == len(items), kind
        canonical = [json.dumps(json.loads(r.value), sort_keys=True) for r in records]
        assert sorted(canonical) == sorted(json.dumps(i, sort_keys=True) for i in items), kind
        for record in records:
            value = json.loads(record.value)
            assert record.key == value[key_field].encode()
            assert (
                record.value
                == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            ), "compact UTF-8"
            assert dict(record.headers)["leadloop-client"] == CLIENT.encode()

    # The unknown lead cannot be judged at the edge: published, then dead-lettered.
    (rejected,) = await collect(kafka_settings, "crm.rejected", 1, linger_ms=1500)
    headers = dict(rejected.headers)
    assert headers["reject-reason"] == b"unknown_lead"
    assert (
        headers["source-topic"] == qualified("crm.activities", kafka_settings.topic_prefix).encode()
    )
    assert json.loads(rejected.value) == unknown
    assert rejected.key == b"no-such-lead"

    # The real lead's timeline is in PostgreSQL, through ingest's own consumer.
    conn = await asyncpg.connect(database_url)
    try:
        activities = "SELECT count(*) FROM lead_activities WHERE lead_id = $1"
        stages = "SELECT count(*) FROM lead_stage_changes WHERE lead_id = $1"
        scores = "SELECT count(*) FROM lead_satisfaction WHERE lead_id = $1"
        assert await wait_for(conn, activities, 3, lead_id) == 3
        assert await wait_for(conn, stages, 3, lead_id) == 3
        assert await wait_for(conn, scores, 3, lead_id) == 3
        row = await conn.fetchrow("SELECT stage FROM leads WHERE lead_id = $1", lead_id)
        assert row is not None
        assert row["stage"] == "lost"
    finally:
        await conn.close()


async def test_refused_requests_publish_nothing(
    ingest: ServiceGroup, kafka_settings: KafkaSettings, http: aiohttp.ClientSession
) -> None:
    url = ingest.url("ingest", "/v1/crm/activities")
    body = dumps(activity("lead-x", 1))
    now = int(time.time())
    invalid = dumps(
        [
            activity("lead-x", 1),
            activity("lead-x", 2, kind="fax"),
            stage_change("lead-x", 3, "won"),  # no kind: not an activity
        ]
    )
    too_many = dumps([activity("lead-x", i % 60) for i in range(501)])
    too_large = dumps([activity("lead-x", 1, outcome="x" * 200)] * 6000)
    assert len(too_large) > 1024 * 1024
    cases: list[tuple[str, bytes, dict[str, str], int, Any]] = [
        (
            "bad signature",
            body,
            {**signed(body), "X-Leadloop-Signature": "sha256=" + "0" * 64},
            401,
            {"error": "bad_signature"},
        ),
        (
            "tampered",
            body.replace(b"lead-x", b"lead-y"),
            signed(body),
            401,
            {"error": "bad_signature"},
        ),
        (
            "another client's secret",
            body,
            signed(body, client="other-crm"),
            401,
            {"error": "bad_signature"},
        ),
        ("stale timestamp", body, signed(body, ts=now - 600), 401, {"error": "stale_timestamp"}),
        ("future timestamp", body, signed(body, ts=now + 600), 401, {"error": "stale_timestamp"}),
        ("no signature", body, {"X-Leadloop-Client": CLIENT}, 401, {"error": "missing_signature"}),
        ("unknown client", body, signed(body, client="nobody"), 401, {"error": "unknown_client"}),
        (
            "no client",
            body,
            {k: v for k, v in signed(body).items() if k != "X-Leadloop-Client"},
            401,
            {"error": "unknown_client"},
        ),
        (
            "invalid items",
            invalid,
            signed(invalid),
            422,
            {
                "errors": [
                    {"index": 1, "reason": "schema_violation", "detail": "invalid fields: kind"},
                    {"index": 2, "reason": "schema_violation", "detail": "invalid fields: kind"},
                ]
            },
        ),
        (
            "not JSON",
            b"[{",
            signed(b"[{"),
            422,
            {"error": "invalid_json", "detail": "not valid UTF-8 JSON"},
        ),
        (
            "empty array",
            b"[]",
            signed(b"[]"),
            422,
            {"error": "no_items", "detail": "the array is empty"},
        ),
        (
            "501 items",
            too_many,
            signed(too_many),
            413,
            {"error": "too_many_items", "detail": "501 items; at most 500 per request"},
        ),
        ("over 1 MiB", too_large, signed(too_large), 413, {"error": "too_large"}),
    ]
    for what, payload, headers, status, reply in cases:
        assert await post(http, url, payload, headers) == (status, reply), what
    other = ingest.url("ingest", "/v1/crm/leads")
    assert (await post(http, other, body, signed(body)))[0] == 404

    # The same ingest still takes a valid request: exactly that one item is on a topic.
    assert await post(http, url, body, signed(body)) == (202, {"accepted": 1})
    records = await collect(kafka_settings, "crm.activities", 1, linger_ms=2000)
    assert [r.value for r in records] == [
        json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    ]
    for topic in ("crm.stage-changes", "crm.satisfaction", "crm.reps"):
        assert await collect(kafka_settings, topic, 0, within=1, linger_ms=1000) == []


async def test_satisfaction_scores_reach_the_topic_and_bad_ones_are_rejected_with_bytes(
    ingest: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
) -> None:
    lead_id = await a_real_lead(http, ingest, kafka_settings)
    url = ingest.url("ingest", "/v1/crm/satisfaction")

    # Posted scores are on the topic, keyed by lead; a comment is not carried along.
    good = satisfaction(lead_id, 1, 5, survey_id="post_sale")
    body = dumps({**good, "comment": "王芳 was great, call me on 13800138000"})
    assert await post(http, url, body, signed(body)) == (202, {"accepted": 1})
    (record,) = await collect(kafka_settings, "crm.satisfaction", 1, linger_ms=1500)
    assert record.key == lead_id.encode()
    assert json.loads(record.value) == good
    assert record.value == json.dumps(good, ensure_ascii=False, separators=(",", ":")).encode()
    assert dict(record.headers)["leadloop-client"] == CLIENT.encode()

    # Off the scale over HTTP: refused with the reason, nothing published.
    off_scale = dumps([satisfaction(lead_id, 2, 4), satisfaction(lead_id, 3, 6)])
    assert await post(http, url, off_scale, signed(off_scale)) == (
        422,
        {
            "errors": [
                {"index": 1, "reason": "score_out_of_range", "detail": "score must be from 1 to 5"}
            ]
        },
    )

    # Off the scale from a CRM producing to Kafka, and an unknown lead over HTTP: both
    # end on crm.rejected with their exact bytes, key and reason.
    raw = json.dumps(satisfaction(lead_id, 4, 10), separators=(", ", ": ")).encode()
    await producer.send_and_wait(
        qualified("crm.satisfaction", kafka_settings.topic_prefix), raw, key=lead_id.encode()
    )
    unknown = satisfaction("no-such-lead", 5, 2)
    body = dumps(unknown)
    assert await post(http, url, body, signed(body)) == (202, {"accepted": 1})
    rejected = await collect(kafka_settings, "crm.rejected", 2, linger_ms=1500)
    by_reason = {dict(r.headers)["reject-reason"]: r for r in rejected}
    assert sorted(by_reason) == [b"score_out_of_range", b"unknown_lead"]
    bad = by_reason[b"score_out_of_range"]
    assert (bad.key, bad.value) == (lead_id.encode(), raw)
    assert dict(bad.headers)["reject-detail"] == b"score must be from 1 to 5"
    topic = qualified("crm.satisfaction", kafka_settings.topic_prefix).encode()
    assert dict(bad.headers)["source-topic"] == topic
    assert json.loads(by_reason[b"unknown_lead"].value) == unknown
    assert dict(by_reason[b"unknown_lead"].headers)["source-topic"] == topic

    # Only the good score is the lead's, once.
    conn = await asyncpg.connect(database_url)
    try:
        scores = "SELECT count(*) FROM lead_satisfaction WHERE lead_id = $1"
        assert await wait_for(conn, scores, 1, lead_id) == 1
        row = await conn.fetchrow(
            "SELECT event_id, rep_id, score, survey_id FROM lead_satisfaction WHERE lead_id = $1",
            lead_id,
        )
        assert row is not None
        assert dict(row) == {
            "event_id": good["event_id"],
            "rep_id": "rep-1",
            "score": 5,
            "survey_id": "post_sale",
        }
    finally:
        await conn.close()
    # The topic holds what was accepted or produced, nothing of the refused request.
    on_topic = await collect(kafka_settings, "crm.satisfaction", 3, linger_ms=1500)
    compact = [
        json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode() for v in (good, unknown)
    ]
    assert sorted(r.value for r in on_topic) == sorted([*compact, raw])


# --- fuzz -----------------------------------------------------------------------------

EXAMPLES = 10
REQUESTS_PER_EXAMPLE = 25

text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(("'; DROP TABLE leads; --", "<script>", "\u202eevil", "%00", "张伟")),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
VALID = {
    "activities": lambda: activity(f"fz-{uuid.uuid4().hex[:8]}", 1),
    "stage-changes": lambda: stage_change(f"fz-{uuid.uuid4().hex[:8]}", 1, "won", amount=5),
    "satisfaction": lambda: satisfaction(f"fz-{uuid.uuid4().hex[:8]}", 1, 4),
    "reps": lambda: rep(f"rep-{uuid.uuid4().hex[:8]}", contacts={"email": "a@example.com"}),
}


@st.composite
def an_item(draw: st.DrawFn, kind: str) -> Any:
    item = VALID[kind]()
    mode = draw(st.integers(0, 4))
    if mode == 0:
        return item
    if mode == 1:
        field = draw(st.sampled_from(sorted(item)))
        return {**item, field: draw(json_values)}
    if mode == 2:
        field = draw(st.sampled_from(sorted(item)))
        return {k: v for k, v in item.items() if k != field}
    if mode == 3:
        return {
            **item,
            **draw(
                st.sampled_from(
                    [
                        {"stage": "lost"},
                        {"stage": "closed"},
                        {"stage": "lost", "loss_reason": "timing"},
                        {"timezone": "Mars/Base"},
                        {"score": 0},
                        {"score": 6},
                        {"comment": "张伟, 13800138000"},
                        {"extra": json.loads("[" * 300 + "]" * 300)},
                    ]
                )
            ),
        }
    return draw(json_values)


@st.composite
def a_request(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """(kind, body, auth) of one request."""
    kind = draw(st.sampled_from(sorted(FEEDBACK_TOPICS)))
    shape = draw(st.integers(0, 9))
    if shape == 0:
        body = draw(st.binary(max_size=200))
    elif shape == 1:
        body = dumps(draw(json_values))
    elif shape == 2:
        depth = draw(st.integers(50, 5000))
        body = ("[" * depth + "]" * depth).encode()
    elif shape == 3:
        body = dumps([VALID[kind]() for _ in range(draw(st.sampled_from((500, 501))))])
    elif shape == 4:
        body = dumps(draw(an_item(kind)))
    else:
        body = dumps(draw(st.lists(an_item(kind), min_size=0, max_size=6)))
    auth = draw(st.sampled_from(("ok", "ok", "ok", "ok", "bad", "stale", "none", "client")))
    return kind, body, auth


@dataclass
class FuzzTarget:
    group: ServiceGroup
    #: Items answered 202, per topic.
    accepted: Counter[str] = field(default_factory=Counter)

    def __repr__(self) -> str:
        # hypothesis prints its arguments on failure: not the environment's credentials.
        return f"FuzzTarget(accepted={dict(self.accepted)})"


@pytest.fixture(scope="module")
def fuzz_ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """One ingest for every example; afterwards the topics must hold exactly the items
    that were answered 202 (refused requests published nothing)."""
    stack = running_stack()
    tmp = tmp_path_factory.mktemp("crm-fuzz")
    kafka = KafkaSettings(
        bootstrap_servers=stack.bootstrap, topic_prefix=f"cf{uuid.uuid4().hex[:8]}."
    )
    url = asyncio.run(create_database(stack.admin_url))
    asyncio.run(create_topics(kafka))
    env = crm_env(url, kafka, tmp, LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0")
    try:
        with running(env, tmp, "ingest", clean_exit=False) as group:
            target = FuzzTarget(group)
            yield target
            assert group.alive("ingest"), group.log("ingest")
            assert "Traceback" not in group.log("ingest", tail=None), group.log("ingest")
        for topic, want in target.accepted.items():
            got = asyncio.run(collect(kafka, topic, want, linger_ms=2000))
            assert len(got) == want, (topic, len(got), want)
        for topic in set(FEEDBACK_TOPICS.values()) - set(target.accepted):
            assert asyncio.run(collect(kafka, topic, 0, within=1)) == [], topic
    finally:
        asyncio.run(drop_database(stack.admin_url, url))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)
@given(requests=st.lists(a_request(), min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
def test_fuzzed_requests_get_documented_answers_and_ingest_stays_ready(
    fuzz_ingest: FuzzTarget, requests: list[tuple[str, bytes, str]]
) -> None:
    asyncio.run(_run_example(fuzz_ingest.group, fuzz_ingest.accepted, requests))


async def _run_example(
    group: ServiceGroup, accepted: Counter[str], requests: list[tuple[str, bytes, str]]
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for kind, body, auth in requests:
            headers = {
                "ok": signed(body),
                "bad": signed(body, secret="not-the-secret-0123456789"),
                "stale": signed(body, ts=int(time.time()) - 3600),
                "none": {"X-Leadloop-Client": CLIENT},
                "client": signed(body, client="nobody"),
            }[auth]
            async with http.post(
                group.url("ingest", f"/v1/crm/{kind}"), data=body, headers=headers
            ) as response:
                status = response.status
                reply = await response.json(content_type=None)
            assert status in DOCUMENTED, (status, reply)
            if auth != "ok":
                assert status == 401, (auth, status, reply)
                continue
            topic = FEEDBACK_TOPICS[kind]
            decision = judge(topic, body)
            if isinstance(decision, Batch):
                assert (status, reply) == (202, {"accepted": len(decision.items)})
                accepted[topic] += len(decision.items)
            else:
                assert (status, reply) == (decision.status, decision.body())
        # Ready again within seconds: a consumer-group rebalance or a lag reading taken
        # before the first assignment may answer 503 for a moment (seen on a loaded
        # machine); a wedged or crashed ingest never comes back.
        deadline = time.monotonic() + 15
        while True:
            async with http.get(group.url("ingest", "/readyz")) as ready:
                body = await ready.text()
                if ready.status == 200:
                    break
            assert time.monotonic() < deadline, f"ingest not ready: {body}"
            await asyncio.sleep(0.3)
