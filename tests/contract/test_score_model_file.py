"""The score model file between its writer (``leadloop score fit``, leadloop_review) and
its reader (ingest): a fitted model, written and loaded by ingest, scores every lead as
the fitted model's predicted probability × 100, rounded half up, and the priority by
the model's thresholds."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

from leadloop.events import Priority, RawLead
from leadloop_ingest.adapters.score_model_file import load_score_model
from leadloop_review.adapters.score_file import write_model
from leadloop_review.domain.score_fit import fit
from leadloop_review.domain.score_model import probability
from leadloop_review.domain.score_sim import simulate

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def test_ingest_scores_as_the_fitted_model_predicts(tmp_path: Path) -> None:
    leads = [s.lead for s in simulate(21, 2026, months=6)]
    model = fit(leads, version="score-v1", fitted_at=T0, window=(date(2026, 1, 1), T0.date()))
    path = tmp_path / "score-v1.json"
    write_model(path, model)
    learned = load_score_model(path)
    assert learned.version == "score-v1"
    # Every lead of the window plus values the model never saw and absent ones.
    probes = [dict(lead.attributes) for lead in leads[:1500]]
    probes += [
        {"source": "fax", "industry": None, "company_size": 0, "region": "mars"},
        {"source": "web_form", "company_size": 10_000_000, "campaign": ""},
    ]
    priorities = set()
    for attrs in probes:
        raw = RawLead(
            source=str(attrs.get("source")),
            source_lead_id="x",
            **{k: v for k, v in attrs.items() if k != "source"},
        )
        value, priority = learned.score(raw)
        expected = math.floor(100 * probability(model, attrs) + 0.5)
        assert value == expected, attrs
        want = (
            Priority.HOT
            if value >= model.hot_at
            else Priority.WARM
            if value >= model.warm_at
            else Priority.COLD
        )
        assert priority is want
        priorities.add(priority)
    assert priorities == {Priority.HOT, Priority.WARM, Priority.COLD}
