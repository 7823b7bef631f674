"""The event contract: committed schemas are current, examples prove them, and no
change slips through that breaks a producer or consumer (see leadloop.schemas)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from leadloop import events
from leadloop.schemas import EXAMPLES_DIR, SCHEMA_DIR, breaking_changes, check, schema_for
from leadloop.topics import REGISTRY, TopicSpec, by_name

MODELLED = [spec for spec in REGISTRY if spec.model is not None]


def test_committed_schemas_and_examples_are_current_and_valid() -> None:
    assert check() == []


@pytest.mark.parametrize("spec", MODELLED, ids=lambda s: s.name)
def test_every_modelled_topic_has_a_schema_and_examples(spec: TopicSpec) -> None:
    assert (SCHEMA_DIR / f"{spec.name}.json").is_file()
    # Two at least: a minimal and a full payload show what is optional.
    assert len(list((EXAMPLES_DIR / spec.name).glob("*.json"))) >= 2


def test_a_topic_without_a_model_has_no_schema() -> None:
    # leads.rejected carries the original bytes; a schema would claim a shape.
    assert by_name("leads.rejected").model is None
    assert not (SCHEMA_DIR / "leads.rejected.json").exists()
    assert not (EXAMPLES_DIR / "leads.rejected").exists()


# --- breaking_changes -----------------------------------------------------------


@pytest.fixture
def assigned() -> dict[str, Any]:
    return schema_for(by_name("leads.assigned"))


def test_removed_property_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    del new["properties"]["reason"]
    new["required"].remove("reason")
    assert breaking_changes(assigned, new) == ["property 'reason' removed"]


def test_newly_required_property_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["required"].append("previous_owner_id")
    assert breaking_changes(assigned, new) == ["property 'previous_owner_id' is now required"]


def test_new_required_property_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["properties"]["channel"] = {"type": "string"}
    new["required"].append("channel")
    assert breaking_changes(assigned, new) == ["property 'channel' is now required"]


def test_added_optional_property_is_compatible(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["properties"]["channel"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert breaking_changes(assigned, new) == []


def test_narrowed_type_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["properties"]["owner_id"] = {"type": "string", "minLength": 1, "maxLength": 128}
    assert breaking_changes(assigned, new) == ["owner_id: type narrowed: null no longer allowed"]


def test_removed_enum_value_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["$defs"]["Strategy"]["enum"].remove("sticky")
    assert breaking_changes(assigned, new) == ["strategy: allowed values removed: 'sticky'"]


def test_added_enum_value_and_widened_type_are_compatible(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["$defs"]["Strategy"]["enum"].append("skills_based")
    new["properties"]["rule_version"] = {"type": ["string", "integer"]}
    assert breaking_changes(assigned, new) == []


def test_tightened_bound_is_breaking(assigned: dict[str, Any]) -> None:
    new = copy.deepcopy(assigned)
    new["properties"]["lead_id"]["maxLength"] = 64
    assert breaking_changes(assigned, new) == ["lead_id: maxLength tightened from 128 to 64"]


def test_forbidding_unknown_properties_is_breaking() -> None:
    old = schema_for(by_name("crm.activities"))  # extra="ignore": unknown fields pass
    new = {**old, "additionalProperties": False}
    assert breaking_changes(old, new) == ["unknown properties are no longer allowed"]


def test_breaking_changes_between_real_models() -> None:
    class V1(BaseModel):
        lead_id: str
        score: int
        note: str | None = None

    class V2(BaseModel):
        lead_id: str
        score: float  # widened: compatible
        tags: list[str] = []  # added optional: compatible

    class V3(BaseModel):
        lead_id: str
        score: int
        note: str  # now required

    old = V1.model_json_schema()
    assert breaking_changes(old, V2.model_json_schema()) == ["property 'note' removed"]
    assert breaking_changes(old, V3.model_json_schema()) == [
        "note: type narrowed: null no longer allowed",
        "property 'note' is now required",
    ]


# --- check() finds what it must -------------------------------------------------


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, target)
    return target


def _edit(path: Path, change: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(change)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_check_reports_a_missing_schema(schema_dir: Path) -> None:
    (schema_dir / "crm.reps.json").unlink()
    assert check(schema_dir) == [
        "crm.reps: schema crm.reps.json is missing; run `leadloop schemas export`"
    ]


def test_check_reports_a_stale_schema_and_the_break_it_hides(schema_dir: Path) -> None:
    # The committed file promises a property the model no longer has.
    path = schema_dir / "leads.accepted.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    committed["properties"]["legacy_channel"] = {"type": "string"}
    path.write_text(json.dumps(committed), encoding="utf-8")

    problems = check(schema_dir)
    assert len(problems) == 2
    assert problems[0].startswith("leads.accepted: schema leads.accepted.json is stale")
    assert problems[1] == "leads.accepted: breaking change: property 'legacy_channel' removed"


def test_a_raised_schema_version_declares_an_intended_break(schema_dir: Path) -> None:
    path = schema_dir / "leads.accepted.json"
    committed = json.loads(path.read_text(encoding="utf-8"))
    committed["properties"]["legacy_channel"] = {"type": "string"}
    committed["x-schema-version"] = events.SCHEMA_VERSION - 1
    path.write_text(json.dumps(committed), encoding="utf-8")

    problems = check(schema_dir)
    assert len(problems) == 1
    assert "is stale" in problems[0]


def test_check_reports_a_topic_without_examples(schema_dir: Path) -> None:
    shutil.rmtree(schema_dir / "examples" / "sla.escalations")
    assert check(schema_dir) == ["sla.escalations: no examples in examples/sla.escalations/"]


def test_check_validates_examples_with_json_schema_and_the_model(schema_dir: Path) -> None:
    _edit(schema_dir / "examples" / "leads.accepted" / "minimal.json", {"score": 101})
    problems = check(schema_dir)
    assert len(problems) == 2
    where = "examples/leads.accepted/minimal.json"
    assert problems[0].startswith(f"{where}: JSON Schema: $.score:")
    assert problems[1].startswith(f"{where}: model LeadAccepted: score:")


def test_check_requires_an_offset_on_timestamps(schema_dir: Path) -> None:
    path = schema_dir / "examples" / "crm.activities" / "minimal-call.json"
    _edit(path, {"occurred_at": "2026-03-02T17:44:30"})
    problems = check(schema_dir)
    assert [p.split(": ")[1] for p in problems] == ["JSON Schema", "model ActivityRecorded"]
    assert "is not a 'date-time'" in problems[0]


def test_check_reports_a_schema_of_an_unregistered_topic(schema_dir: Path) -> None:
    shutil.copy(schema_dir / "crm.reps.json", schema_dir / "crm.teams.json")
    (problem,) = check(schema_dir)
    assert problem.startswith("crm.teams: schema crm.teams.json belongs to no registered topic")


# --- cross-field rules agree with the model and with ingest ----------------------


def test_lost_stage_change_needs_a_loss_reason_in_schema_and_model() -> None:
    schema = schema_for(by_name("crm.stage-changes"))
    lost = {
        "event_id": "e-1",
        "lead_id": "l-1",
        "stage": "lost",
        "occurred_at": "2026-03-20T16:30:00+01:00",
        "rep_id": "rep-1",
    }
    assert not Draft202012Validator(schema).is_valid(lost)
    with pytest.raises(ValidationError, match="loss_reason is required"):
        events.StageChanged.model_validate(lost)

    with_reason = {**lost, "loss_reason": "timing"}
    assert Draft202012Validator(schema).is_valid(with_reason)
    events.StageChanged.model_validate(with_reason)


def test_raw_lead_needs_email_or_phone_in_the_schema() -> None:
    # RawLead is shape only; ingest rejects a contact-less lead as missing_contact,
    # and the published schema says so to the channels.
    validator = Draft202012Validator(schema_for(by_name("leads.raw")))
    base = {"source": "web_form", "source_lead_id": "wf-1"}
    assert not validator.is_valid(base)
    assert not validator.is_valid({**base, "email": None})
    assert validator.is_valid({**base, "phone": "+1 202 555 0143"})
    assert validator.is_valid({**base, "email": "a@example.com", "phone": None})


# --- privacy guard ---------------------------------------------------------------

# Personal data leadloop receives: the personal fields of RawLead, plus the usual
# spellings of an identifier of a person, matched as a word of a snake_case name.
_RAW_PERSONAL_FIELDS = {"name", "email", "phone", "company", "title", "message", "attributes"}
_PII_WORDS = {
    "name", "email", "mail", "phone", "mobile", "tel", "wechat", "openid", "unionid",
    "address", "birthday", "dob", "ip", "firstname", "lastname", "fullname", "contact",
}  # fmt: skip


def _property_names(node: Any) -> set[str]:
    """Every property name anywhere in a schema, nested objects and $defs included."""
    names: set[str] = set()
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            names.update(props)
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def _personal_fields(model: type[BaseModel], spec: TopicSpec) -> set[str]:
    names = set(model.model_fields) | _property_names(schema_for(spec))
    return {
        n
        for n in names
        if n in _RAW_PERSONAL_FIELDS or _PII_WORDS & set(re.split(r"[_\W]+", n.lower()))
    }


def test_privacy_guard_recognises_personal_fields() -> None:
    spec = by_name("leads.raw")
    assert spec.model is not None
    assert {"name", "email", "phone"} <= _personal_fields(spec.model, spec)


@pytest.mark.parametrize("spec", [s for s in MODELLED if not s.contains_pii], ids=lambda s: s.name)
def test_downstream_topics_carry_no_personal_data(spec: TopicSpec) -> None:
    assert spec.model is not None
    assert _personal_fields(spec.model, spec) == set()


def test_the_downstream_topics_are_the_ones_the_design_names() -> None:
    # A topic flipped to contains_pii=True would silently escape the guard above.
    downstream = {s.name for s in MODELLED if not s.contains_pii}
    assert {"leads.accepted", "leads.assigned", "sla.escalations", "ingest.outcomes"} <= downstream


def test_satisfaction_scores_are_pii_free_and_carry_no_free_text() -> None:
    # A customer's verbatim comment could name people: crm.satisfaction has ids, codes
    # and a score only, every string short and bounded (see SatisfactionRecorded).
    spec = by_name("crm.satisfaction")
    assert not spec.contains_pii
    schema = schema_for(spec)
    strings = {
        name: alt
        for name, prop in schema["properties"].items()
        for alt in prop.get("anyOf", [prop])
        if alt.get("type") == "string" and alt.get("format") != "date-time"
    }
    assert set(strings) == {"event_id", "lead_id", "rep_id", "survey_id"}
    assert all(s.get("maxLength", 10**9) <= 128 or "pattern" in s for s in strings.values())
    assert schema["properties"]["score"] == {
        "maximum": 5,
        "minimum": 1,
        "title": "Score",
        "type": "integer",
    }
