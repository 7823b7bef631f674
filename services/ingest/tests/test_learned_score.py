"""The learned score in ingest: the model file's math, its refusal of files that are not
models (naming the field), the watcher keeping the hand-set weights or the model in
force, and intake scoring with the model when one is given."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadloop.events import Priority, RawLead
from leadloop_ingest.adapters.score_model_file import ScoreModelFile, load_score_model
from leadloop_ingest.domain.intake import Position, RawRecord, decide
from leadloop_ingest.domain.learned_score import ScoreModelInvalid, parse_learned_score
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIMITS = Limits(sources=frozenset({"web_form", "referral"}))


def model_json(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "leadloop.score-model/1",
        "version": "score-v7",
        "fitted_at": "2026-11-01T08:00:00+00:00",
        "window": {"from": "2026-01-01", "to": "2026-10-31"},
        "intercept": -1.0,
        "calibration": {"method": "platt", "slope": 1.2, "intercept": 0.1},
        "size_bands": [0, 10, 50, 200, 1000],
        "attributes": [
            {
                "name": "industry",
                "kind": "category",
                "logloss_drop": 0.02,
                "levels": [
                    {"value": "finance", "coefficient": 0.8, "leads": 40, "won": 20},
                    {"value": "retail", "coefficient": -0.5, "leads": 40, "won": 5},
                    {"value": "(other)", "coefficient": 0.1, "leads": 9, "won": 2},
                    {"value": "(missing)", "coefficient": -0.2, "leads": 30, "won": 6},
                ],
            },
            {
                "name": "company_size",
                "kind": "size_band",
                "logloss_drop": 0.01,
                "levels": [
                    {"value": "1000+", "coefficient": 0.4, "leads": 30, "won": 12},
                    {"value": "0-9", "coefficient": -0.3, "leads": 30, "won": 4},
                ],
            },
        ],
        "priority": {"hot_at": 40, "warm_at": 20},
    }
    doc.update(over)
    return doc


def expected(z: float) -> int:
    return math.floor(100 / (1 + math.exp(-(1.2 * z + 0.1))) + 0.5)


def lead(**fields: Any) -> RawLead:
    return RawLead(source="web_form", source_lead_id="wf-1", **fields)


def test_the_score_is_the_calibrated_probability_of_the_levels_in_percent() -> None:
    m = parse_learned_score(model_json())
    assert m.score(lead(industry="finance", company_size=5000)) == (
        expected(-1.0 + 0.8 + 0.4),
        Priority.HOT,
    )
    # An unseen industry is (other); no size is (missing), which this attribute lacks: 0.
    assert m.score(lead(industry="mining"))[0] == expected(-1.0 + 0.1)
    assert m.score(lead(company_size=3))[0] == expected(-1.0 - 0.2 - 0.3)
    # 50-199 is no level of company_size and it has no (other): 0.
    assert m.score(lead(industry="retail", company_size=60)) == (
        expected(-1.0 - 0.5),
        Priority.COLD,
    )


def test_priority_follows_the_models_thresholds() -> None:
    m = parse_learned_score(model_json(priority={"hot_at": 48, "warm_at": 47}))
    value, priority = m.score(lead(industry="finance"))  # z = -0.2, p = σ(-0.14)
    assert (value, priority) == (expected(-0.2), Priority.WARM) == (47, Priority.WARM)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "leadloop.score-model/2"}, "format"),
        ({"intercept": "high"}, "intercept"),
        ({"intercept": float("nan")}, "intercept"),
        ({"calibration": {"method": "isotonic"}}, "calibration.method"),
        ({"calibration": {"method": "platt", "slope": 1.0}}, "calibration.intercept"),
        ({"size_bands": [10, 0]}, "size_bands"),
        ({"attributes": [{"name": "email", "levels": []}]}, "attributes.0.name"),
        (
            {"attributes": [{"name": "source", "levels": [{"value": "x"}]}]},
            "attributes.0.levels.0.coefficient",
        ),
        ({"priority": {"hot_at": 20, "warm_at": 40}}, "priority"),
        ({"priority": {"hot_at": True, "warm_at": 0}}, "priority.hot_at"),
    ],
)
def test_a_malformed_model_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ScoreModelInvalid) as err:
        parse_learned_score(model_json(**change))
    assert err.value.field == field


def test_not_a_json_object_is_refused() -> None:
    with pytest.raises(ScoreModelInvalid, match="JSON object"):
        parse_learned_score([1, 2])


def write(path: Path, doc: object, mtime_ns: int) -> None:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_watcher_keeps_the_hand_set_default_then_the_model_in_force(tmp_path: Path) -> None:
    path = tmp_path / "score.json"
    missing = ScoreModelFile(path)
    assert missing.current() is None  # no file: the hand-set weights

    write(path, "{not json", 1_000)
    watch = ScoreModelFile(path)
    assert watch.current() is None  # refused at start: the hand-set weights stay
    write(path, model_json(), 2_000)
    loaded = watch.current()
    assert loaded is not None
    assert loaded.version == "score-v7"
    write(path, model_json(intercept=None), 3_000)
    model = watch.current()
    assert model is loaded  # the refused file changes nothing
    write(path, model_json(version="score-v8"), 4_000)
    newer = watch.current()
    assert newer is not None
    assert newer.version == "score-v8"


def test_load_names_what_is_wrong_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScoreModelInvalid, match="cannot read"):
        load_score_model(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(ScoreModelInvalid, match="not a JSON file"):
        load_score_model(tmp_path / "bad.json")


def record(**fields: Any) -> RawRecord:
    body = {"source": "web_form", "source_lead_id": "wf-9", "email": "a@example.com", **fields}
    return RawRecord(Position("leads.raw", 0, 1), None, json.dumps(body).encode(), NOW)


def test_intake_scores_with_the_model_when_given_else_the_weights() -> None:
    rec = record(industry="finance", company_size=5000)
    m = parse_learned_score(model_json())
    [(_, learned)] = decide([rec], limits=LIMITS, weights=m, pepper=b"p", now=NOW)
    [(_, hand)] = decide([rec], limits=LIMITS, weights=ScoringWeights(), pepper=b"p", now=NOW)
    assert learned is not None
    assert hand is not None
    assert (learned.score, learned.priority) == (expected(0.2), Priority.HOT)
    assert hand.score == 15 + 25 + 4  # web_form, 1000+ employees, one contact field
