"""The outcome experiment (bench/outcome, docs/outcome.md), reduced: two seeds, a few
dozen leads, a few simulated hours, on the real stack. It must produce every figure for
both arms and their differences, the loop-on runs must have fired escalations that the
reps heard, and the loop-off runs none. The size of the effect is not asserted: that is
the experiment's result, not a property of the code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.outcome.__main__ import chart, experiment, parser, table
from bench.outcome.figures import FIGURES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_a_reduced_experiment_reports_every_figure_and_the_loop_fires(
    tmp_path: Path,
) -> None:
    args = parser().parse_args(
        [
            "--seeds", "2", "--first-seed", "11", "--leads", "40", "--arrivals-h", "2",
            "--horizon-h", "8", "--silent-days", "0.2", "--work", str(tmp_path),
        ]
    )  # fmt: skip
    result = await experiment(args)

    runs = result["runs"]
    assert sorted((r["seed"], r["arm"]) for r in runs) == [
        (11, "off"), (11, "on"), (12, "off"), (12, "on"),
    ]  # fmt: skip
    for run in runs:
        assert run["leads"] >= 30, run
        assert run["player"]["activities"] > 0, run
        fired = sum(run["escalations"].values())
        if run["arm"] == "on":
            assert run["escalations"].get("remind_owner", 0) > 0, run
            assert run["player"].get("escalation:remind_owner:firing", 0) > 0, run
        else:
            assert fired == 0, run
    for key in FIGURES:
        for arm in ("off", "on", "difference"):
            s = result["summary"][key][arm]
            assert s["n"] == 2, (key, arm, s)
            assert not math.isnan(s["mean"]), (key, arm, s)
            assert s["low"] <= s["mean"] <= s["high"], (key, arm, s)

    rendered = table(result["summary"])
    assert all(label in rendered for label, _ in FIGURES.values())
    chart(result["summary"], tmp_path / "outcome.png", "test")
    assert (tmp_path / "outcome.png").stat().st_size > 1000
