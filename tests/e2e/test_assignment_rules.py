"""Assignment strategies and live rule-set changes on the real broker and database.

Only the assignment service runs, as a process, with a rules file in the test's scratch
directory. The test produces ``LeadAccepted`` events to the prefixed ``leads.accepted``
as ingest would and reads ``leads.assigned`` and the PostgreSQL decision records:

- weighted rotation gives reps shares equal to their weights and a weight-0 rep nothing;
- a returning customer goes back to the previous owner in another team, and falls
  through to the next matching rule when that owner is away;
- a direct rule gives its rep the lead, and pools it in the rule's team when the rep
  is not eligible; a pool rule always pools;
- least-loaded with daily caps spreads leads and pools once every cap is reached, and
  the day's intake is counted in the team's time zone;
- a rule-set change mid-stream decides the leads that follow it, the earlier ones keep
  the version that decided them, and an invalid edit is refused.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import accepted as accepted_lead
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.events import LeadAccepted, Priority
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

RULES = """
version: "e2e-1"
teams:
  - team_id: team-w
    manager_id: mgr-w
    reps:
      - {rep_id: w-big, weight: 3, capacity: 1000}
      - {rep_id: w-small, weight: 1, capacity: 1000}
      - {rep_id: w-zero, weight: 0, capacity: 1000}
  - team_id: team-s
    manager_id: mgr-s
    reps:
      - {rep_id: s-here}
      - {rep_id: s-away, status: away}
  - team_id: team-d
    manager_id: mgr-d
    reps:
      - {rep_id: d-key}
      - {rep_id: d-off, status: away}
  - team_id: team-c
    manager_id: mgr-c
    timezone: Asia/Shanghai
    reps:
      - {rep_id: c-1, daily_cap: 2}
      - {rep_id: c-2, daily_cap: 1}
rules:
  - rule_id: returning
    when: {is_returning: {equals: true}}
    strategy: sticky
  - rule_id: key-account
    when: {campaign: {equals: vip}}
    team: team-d
    strategy: direct
    rep_id: d-key
  - rule_id: off-account
    when: {campaign: {equals: vip-off}}
    team: team-d
    strategy: direct
    rep_id: d-off
  - rule_id: partners
    when: {campaign: {equals: partner}}
    team: team-s
    strategy: pool
  - rule_id: capped
    when: {industry: {equals: retail}}
    team: team-c
    strategy: least_loaded
  - rule_id: default
    team: team-w
    strategy: weighted
"""


def rules_v(version: str, team: str, strategy: str) -> str:
    return f"""
version: "{version}"
teams:
  - team_id: team-a
    reps: [{{rep_id: a-1}}, {{rep_id: a-2}}]
  - team_id: team-b
    reps: [{{rep_id: b-1}}, {{rep_id: b-2}}, {{rep_id: b-3}}]
rules:
  - rule_id: all-{version}
    team: {team}
    strategy: {strategy}
"""


def write_atomically(path: Path, text: str) -> None:
    """As an editor or a config deployment does: the service never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def assignment(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, rules_file: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(database_url, kafka_settings, tmp_path, LEADLOOP_RULES_FILE=str(rules_file))
    with running(env, tmp_path, "assignment") as group:
        yield group


def accepted(lead_id: str, **fields: Any) -> LeadAccepted:
    return accepted_lead(
        lead_id,
        datetime.now(UTC),
        event_id=f"ev-{lead_id}",
        source="web_form",
        source_lead_id=lead_id,
        score=40,
        priority=Priority.WARM,
        **fields,
    )


async def send(producer: AIOKafkaProducer, kafka: KafkaSettings, leads: list[LeadAccepted]) -> None:
    topic = qualified("leads.accepted", kafka.topic_prefix)
    for lead in leads:
        await producer.send(topic, lead.model_dump_json().encode(), key=lead.lead_id.encode())
    await producer.flush()


async def assigned(kafka: KafkaSettings, want: int) -> dict[str, dict[str, Any]]:
    records = await collect(kafka, "leads.assigned", want)
    events = [json.loads(r.value) for r in records]
    assert len(events) == want, f"{len(events)} assignments for {want} leads"
    by_lead = {e["lead_id"]: e for e in events}
    assert len(by_lead) == want, "one assignment per lead"
    return by_lead


async def test_strategies_decide_end_to_end(
    assignment: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    producer: AIOKafkaProducer,
) -> None:
    weighted = [accepted(f"w-{i:02d}") for i in range(40)]
    sticky = accepted("back", is_returning=True, previous_owner_id="s-here", campaign="partner")
    fell = accepted("back-away", is_returning=True, previous_owner_id="s-away", campaign="vip")
    direct = accepted("vip-1", campaign="vip")
    direct_off = accepted("vip-2", campaign="vip-off")
    pooled = accepted("partner-1", campaign="partner")
    capped = [accepted(f"retail-{i}", industry="retail") for i in range(5)]
    batch = [*weighted, sticky, fell, direct, direct_off, pooled, *capped]
    shanghai = ZoneInfo("Asia/Shanghai")
    shanghai_days = {datetime.now(shanghai).date()}
    await send(producer, kafka_settings, batch)
    events = await assigned(kafka_settings, len(batch))
    shanghai_days.add(datetime.now(shanghai).date())  # in case the run straddled midnight
    assert {e["rule_version"] for e in events.values()} == {"e2e-1"}

    # Weighted 3:1 over 40 leads is exactly 30:10; weight 0 gets nothing.
    shares = Counter(events[lead.lead_id]["owner_id"] for lead in weighted)
    assert shares == {"w-big": 30, "w-small": 10}
    assert {events[lead.lead_id]["strategy"] for lead in weighted} == {"weighted"}
    assert "w-zero (weight_zero)" in events["w-00"]["reason"]

    # Sticky: back to the previous owner, even though the lead's campaign would pool it.
    back = events["back"]
    assert (back["owner_id"], back["team_id"], back["strategy"], back["rule_id"]) == (
        "s-here",
        "team-s",
        "sticky",
        "returning",
    )
    assert back["previous_owner_id"] == "s-here"
    # Previous owner away: the next matching rule (direct, by campaign) decides.
    away = events["back-away"]
    assert (away["owner_id"], away["rule_id"], away["strategy"]) == (
        "d-key",
        "key-account",
        "direct",
    )
    assert "rule returning (sticky) did not apply: previous owner s-away away" in away["reason"]

    assert (events["vip-1"]["owner_id"], events["vip-1"]["strategy"]) == ("d-key", "direct")
    off = events["vip-2"]
    assert (off["owner_id"], off["team_id"], off["strategy"], off["kind"]) == (
        None,
        "team-d",
        "pool",
        "pooled",
    )
    assert "d-off (away)" in off["reason"]
    partner = events["partner-1"]
    assert (partner["owner_id"], partner["team_id"], partner["kind"]) == (None, "team-s", "pooled")

    # Least-loaded under daily caps of 2 and 1: three leads assigned, two pooled.
    retail = Counter(events[lead.lead_id]["owner_id"] for lead in capped)
    assert retail == {"c-1": 2, "c-2": 1, None: 2}

    conn = await asyncpg.connect(database_url)
    try:
        rows = {
            r["lead_id"]: json.loads(r["reason"])
            for r in await conn.fetch("SELECT lead_id, reason FROM assignments")
        }
        assert len(rows) == len(batch)
        record = rows["back-away"]
        assert record["text"] == away["reason"]
        assert record["rule_id"] == "key-account"
        assert record["candidates"] == [{"rep_id": "d-key", "skipped": None}]
        assert record["passed"][0]["candidates"] == [{"rep_id": "s-away", "skipped": "away"}]
        pooled_retail = [
            rows[lead.lead_id] for lead in capped if not events[lead.lead_id]["owner_id"]
        ]
        for rec in pooled_retail:
            assert rec["rule_id"] == "capped"
            assert {(c["rep_id"], c["skipped"]) for c in rec["candidates"]} == {
                ("c-1", "daily_cap"),
                ("c-2", "daily_cap"),
            }
        # The day's intake is counted in the team's time zone; the weighted counts in
        # PostgreSQL are the shares above.
        intake = await conn.fetch(
            "SELECT rep_id, day, assigned FROM rep_daily_intake WHERE rep_id LIKE 'c-%'"
        )
        assert {r["day"] for r in intake} <= shanghai_days
        per_rep = Counter({r["rep_id"]: r["assigned"] for r in intake})
        assert per_rep == {"c-1": 2, "c-2": 1}
        counts = {
            r["rep_id"]: r["assigned"]
            for r in await conn.fetch("SELECT rep_id, assigned FROM weighted_counts")
        }
        assert counts == {"w-big": 30, "w-small": 10}
        load = dict(await conn.fetch("SELECT rep_id, open_leads FROM rep_load"))
        assert load["w-big"] == 30
        assert load["s-here"] == 1
        assert load["d-key"] == 2
    finally:
        await conn.close()


async def test_a_rule_set_change_mid_stream_decides_the_leads_after_it(
    assignment: ServiceGroup,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    rules_file: Path,
) -> None:
    # The service started with the strategies rule set (e2e-1) and has decided nothing
    # yet: the first batch already finds v1.
    write_atomically(rules_file, rules_v("v1", "team-a", "round_robin"))
    before = [accepted(f"before-{i}") for i in range(6)]
    await send(producer, kafka_settings, before)
    events = await assigned(kafka_settings, 6)
    for lead in before:
        e = events[lead.lead_id]
        assert (e["rule_version"], e["rule_id"], e["team_id"]) == ("v1", "all-v1", "team-a")
    assert Counter(events[lead.lead_id]["owner_id"] for lead in before) == {"a-1": 3, "a-2": 3}

    # Live change: another team and strategy, without a restart.
    write_atomically(rules_file, rules_v("v2", "team-b", "weighted"))
    after = [accepted(f"after-{i}") for i in range(6)]
    await send(producer, kafka_settings, after)
    events = await assigned(kafka_settings, 12)
    for lead in after:
        e = events[lead.lead_id]
        assert (e["rule_version"], e["rule_id"], e["team_id"], e["strategy"]) == (
            "v2",
            "all-v2",
            "team-b",
            "weighted",
        )
    assert Counter(events[lead.lead_id]["owner_id"] for lead in after) == {
        "b-1": 2,
        "b-2": 2,
        "b-3": 2,
    }
    # The earlier decisions keep the version that made them.
    assert {events[lead.lead_id]["rule_version"] for lead in before} == {"v1"}

    # An invalid edit is refused: v2 stays in force.
    write_atomically(rules_file, rules_v("v3", "team-ghost", "round_robin"))
    await send(producer, kafka_settings, [accepted("after-invalid")])
    events = await assigned(kafka_settings, 13)
    assert events["after-invalid"]["rule_version"] == "v2"
    assert assignment.alive("assignment")
    assert "rules_reload_refused" in assignment.log("assignment", tail=None)
