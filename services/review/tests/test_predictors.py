"""What predicts winning: the score model's attributes ranked in the report, in every
format, and a report without a model says how to get one."""

from __future__ import annotations

import json

from services.review.tests.sample_report import sample_report
from services.review.tests.test_score_fit import T0, WINDOW, planted

from leadloop_review.domain.score_fit import fit
from leadloop_review.domain.score_model import top_contributions
from leadloop_review.render_html import render as html
from leadloop_review.render_json import render as as_json
from leadloop_review.render_md import render as md


def test_the_report_ranks_the_models_attributes() -> None:
    model = fit(planted(3000), version="score-v7", fitted_at=T0, window=WINDOW)
    report = sample_report(model)
    p = report.predictors
    assert p.model == "score-v7"
    assert (p.leads, p.won) == (model.leads, model.won)
    assert [r.attribute for r in p.rows] == [c.attribute for c in top_contributions(model)]
    assert p.rows[0].attribute == "industry"  # planted: finance wins more often
    assert p.rows[0].best[0][0] == "finance"
    assert p.rows[0].best[0][1] > 1.5
    assert abs(sum(r.share for r in p.rows) - 1) < 1e-9
    text = md(report)
    section = text.split("## 赢单因素 What predicts winning")[1]
    assert "score-v7" in section
    assert "| industry |" in section
    assert "finance ×" in section
    assert "finance ×" in html(report)
    data = json.loads(as_json(report))
    assert data["predictors"]["rows"][0]["attribute"] == "industry"


def test_without_a_model_the_section_says_how_to_get_one() -> None:
    report = sample_report()
    assert report.predictors.rows == ()
    section = md(report).split("## 赢单因素 What predicts winning")[1]
    assert "leadloop score fit" in section
    assert "leadloop score fit" in html(report)
