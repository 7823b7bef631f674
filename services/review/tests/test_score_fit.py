"""The fit recovers what was planted, is calibrated, and its model file round-trips;
closed leads are taken from the metrics' facts as the window says."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from leadloop_review.adapters.score_file import next_model_path, read_model, write_model
from leadloop_review.domain.score_fit import ClosedLead, FitError, FitSettings, closed_leads, fit
from leadloop_review.domain.score_model import (
    ScoreModel,
    ScoreModelError,
    model_from_json,
    model_to_json,
    probability,
    score,
    top_contributions,
)

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
WINDOW = (date(2026, 1, 1), date(2026, 10, 31))


def planted(n: int, seed: int = 7, finance: float = 1.2) -> list[ClosedLead]:
    """Finance wins with ``finance`` more log-odds; source and size matter a little,
    region not at all."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        industry = rng.choice(["finance", "retail", "software", "education"])
        source = rng.choice(["web_form", "referral", "wechat"])
        size = rng.choice([None, 5, 60, 300, 2000])
        z = (
            -1.2
            + (finance if industry == "finance" else 0.0)
            + (0.3 if source == "referral" else 0.0)
        )
        won = rng.random() < 1 / (1 + math.exp(-z))
        attrs = {
            "industry": industry,
            "source": source,
            "company_size": size,
            "region": rng.choice(["east", "west"]),
        }
        out.append(ClosedLead(f"l{i}", T0, T0 + timedelta(days=9), won, attrs))
    return out


@pytest.fixture(scope="module")
def model() -> ScoreModel:
    return fit(planted(4000), version="score-v1", fitted_at=T0, window=WINDOW)


def test_the_fit_recovers_a_planted_effect(model: ScoreModel) -> None:
    ranked = top_contributions(model)
    assert ranked[0].attribute == "industry"
    assert ranked[0].best[0].value == "finance"
    industry = next(a for a in model.attributes if a.name == "industry")
    coef = {lv.value: lv.coefficient for lv in industry.levels}
    others = [coef[v] for v in ("retail", "software", "education")]
    # exp(1.2) ≈ 3.3 against the others; shrunk a little by the regularisation.
    assert 0.8 < coef["finance"] - sum(others) / 3 < 1.6
    region = next(a for a in model.attributes if a.name == "region")
    assert region.logloss_drop < ranked[0].logloss_drop / 20  # region was planted as noise
    assert model.quality["auc"] > 0.6


def test_the_calibration_is_sane(model: ScoreModel) -> None:
    q = model.quality
    assert q["brier"] < q["brier_base_rate"]
    mean_predicted = sum(b.mean_predicted * b.leads for b in model.reliability) / model.leads
    assert abs(mean_predicted - q["base_rate"]) < 0.01
    for b in model.reliability:
        if b.leads >= 200:
            assert abs(b.mean_predicted - b.observed) < 0.06, b
    # A finance lead's probability is about the planted one (σ(-1.2 + 1.2) = 0.5, ±).
    lead = {"industry": "finance", "source": "web_form", "company_size": 60, "region": "east"}
    assert 0.4 < probability(model, lead) < 0.6


def test_a_planted_null_gives_no_lift() -> None:
    m = fit(planted(3000, seed=3, finance=0.0), version="v", fitted_at=T0, window=WINDOW)
    industry = next(c for c in top_contributions(m) if c.attribute == "industry")
    assert industry.logloss_drop < 0.003


def test_the_model_file_round_trips(model: ScoreModel, tmp_path: Path) -> None:
    path = next_model_path(tmp_path)
    assert path.name == "score-v1.json"
    write_model(path, model)
    assert next_model_path(tmp_path).name == "score-v2.json"
    assert read_model(path) == model
    assert model_from_json(json.loads(json.dumps(model_to_json(model)))) == model


def test_a_malformed_model_file_is_refused_naming_the_field(
    model: ScoreModel, tmp_path: Path
) -> None:
    doc = model_to_json(model)
    doc["attributes"][1]["levels"][0]["coefficient"] = "big"
    with pytest.raises(ScoreModelError) as err:
        model_from_json(doc)
    assert err.value.field == "attributes.1.levels.0.coefficient"
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(ScoreModelError, match="not a JSON file"):
        read_model(tmp_path / "x.json")


def test_scores_are_percent_probabilities_and_unseen_values_are_other(model: ScoreModel) -> None:
    lead = {"industry": "mining", "source": "fax", "company_size": None}
    p = probability(model, lead)
    assert score(model, lead) == math.floor(100 * p + 0.5)
    assert model.warm_at <= model.hot_at <= 100


def test_rare_levels_are_pooled_as_other() -> None:
    leads = planted(2000)
    leads += [
        ClosedLead(f"r{i}", T0, T0, i % 2 == 0, {"industry": f"rare-{i}", "source": "web_form"})
        for i in range(10)
    ]
    m = fit(leads, version="v", fitted_at=T0, window=WINDOW, settings=FitSettings(min_leads=20))
    industry = next(a for a in m.attributes if a.name == "industry")
    values = {lv.value for lv in industry.levels}
    assert "(other)" in values
    assert not any(v.startswith("rare-") for v in values)


def test_too_few_closed_leads_is_an_error() -> None:
    with pytest.raises(FitError, match="needed"):
        fit(planted(12), version="v", fitted_at=T0, window=WINDOW)


def fact(kind: str, **f: object) -> dict[str, object]:
    return {"type": kind, **f}


def test_closed_leads_take_the_last_close_up_to_the_window_end() -> None:
    acc = fact(
        "Accepted",
        accepted_at="2026-01-02T00:00:00+00:00",
        source="web_form",
        industry="retail",
        company_size=40,
    )
    facts = [
        ("a", acc),
        ("a", fact("StageMoved", stage="lost", occurred_at="2026-02-01T00:00:00+00:00")),
        ("a", fact("StageMoved", stage="won", occurred_at="2026-03-01T00:00:00+00:00")),
        ("b", acc),  # reopened and won after the window: lost within it
        ("b", fact("StageMoved", stage="won", occurred_at="2026-11-02T00:00:00+00:00")),
        ("b", fact("StageMoved", stage="lost", occurred_at="2026-05-01T00:00:00+00:00")),
        ("c", acc),  # closed before the window
        ("c", fact("StageMoved", stage="won", occurred_at="2025-12-30T00:00:00+00:00")),
        ("d", fact("StageMoved", stage="won", occurred_at="2026-03-01T00:00:00+00:00")),
        ("e", acc),  # still open
        ("e", fact("StageMoved", stage="proposal", occurred_at="2026-03-01T00:00:00+00:00")),
    ]
    got = closed_leads(facts, *WINDOW)
    assert [(c.lead_id, c.won) for c in got] == [("a", True), ("b", False)]
    assert got[0].attributes["industry"] == "retail"
    assert got[0].attributes["company_size"] == 40
    assert got[0].attributes["region"] is None
