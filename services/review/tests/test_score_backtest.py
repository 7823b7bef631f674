"""The backtest's figures, and a reduced backtest the learned score must win."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from leadloop_review.domain.score_sim import auc, hand_set_score, simulate, top_share_rate
from leadloop_review.score_backtest import backtest


@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2).filter(
        lambda xs: 0 < sum(y for _, y in xs) < len(xs)
    )
)
def test_auc_is_scikit_learns(xs: list[tuple[int, bool]]) -> None:
    scores, labels = [float(s) for s, _ in xs], [y for _, y in xs]
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_top_share_takes_ties_at_the_cut_in_part() -> None:
    # Top 25 % of 4 leads is one lead; three tie at the top and one of them won.
    assert top_share_rate([5, 5, 5, 1], [True, False, False, True], 0.25) == pytest.approx(1 / 3)
    assert top_share_rate([9, 5, 5, 1], [True, False, True, False], 0.5) == pytest.approx(0.75)


def test_the_simulation_is_seeded_and_scores_like_ingest() -> None:
    a, b = simulate(5, 2026, months=1), simulate(5, 2026, months=1)
    assert [s.lead for s in a] == [s.lead for s in b]
    assert len(a) == 31 * 30
    s = random.Random(0).choice(a)
    assert 0 <= hand_set_score(s) <= 100


def test_the_learned_score_beats_the_hand_set_weights_on_held_out_months() -> None:
    doc = backtest(seed=11, year=2026, first_test_month=11)
    held = doc["held_out"]
    assert held["learned"]["auc"] > held["hand_set"]["auc"] + 0.05
    assert held["learned"]["top_20_win_rate"] > held["hand_set"]["top_20_win_rate"]
    assert held["learned"]["brier"] < held["hand_set"]["brier"]
    # Not better than the truth by more than noise.
    assert held["learned"]["auc"] < held["truth"]["auc"] + 0.02
    assert doc["contributions"][0]["attribute"] in ("source", "industry", "campaign")
