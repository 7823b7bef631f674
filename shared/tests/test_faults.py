"""The test-only fault switch: parsing, hit counting, refusal without the enabling
variable, and a real process killed with SIGKILL at the N-th hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from leadloop.faults import ENABLE_VARIABLE, FAULT_VARIABLE, FaultPlan, parse_plan

ARMED = {ENABLE_VARIABLE: "1"}


def test_nothing_set_is_an_empty_plan_that_never_fires() -> None:
    plan = parse_plan({})
    assert plan == FaultPlan()
    assert not plan.hit("ingest.after_commit")
    assert plan.hits == {}, "a disarmed point does not even count"


def test_a_point_without_a_count_fires_at_its_first_hit() -> None:
    plan = parse_plan({FAULT_VARIABLE: "ingest.after_commit", **ARMED})
    assert plan.fire_at == {"ingest.after_commit": 1}
    assert plan.hit("ingest.after_commit")


def test_a_point_fires_at_the_nth_hit_only_and_other_points_never() -> None:
    plan = parse_plan({FAULT_VARIABLE: "a.before_commit@3, b.after_commit@2", **ARMED})
    assert [plan.hit("a.before_commit") for _ in range(4)] == [False, False, True, False]
    assert not plan.hit("c.after_commit")
    assert [plan.hit("b.after_commit") for _ in range(2)] == [False, True]


@pytest.mark.parametrize("enabled", [None, "", "0", "true", "yes"])
def test_the_switch_alone_is_refused_without_the_enabling_variable(enabled: str | None) -> None:
    env = {FAULT_VARIABLE: "ingest.after_commit"}
    if enabled is not None:
        env[ENABLE_VARIABLE] = enabled
    plan = parse_plan(env)
    assert plan.fire_at == {}
    assert plan.refused
    assert ENABLE_VARIABLE in plan.refused
    assert not plan.hit("ingest.after_commit")


@pytest.mark.parametrize("spec", ["x@0", "x@-1", "x@two", "@3", "bad name", "a;b"])
def test_a_mistyped_switch_fails_loudly(spec: str) -> None:
    with pytest.raises(ValueError, match=FAULT_VARIABLE):
        parse_plan({FAULT_VARIABLE: spec, **ARMED})


PROGRAM = """
import sys
from leadloop.faults import fault_point
for i in range(1, 6):
    fault_point("p.after_commit")
    fault_point("p.other")
    print(i, flush=True)
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (FAULT_VARIABLE, ENABLE_VARIABLE)}
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_armed_process_is_killed_with_sigkill_at_the_nth_hit() -> None:
    done = run({FAULT_VARIABLE: "p.after_commit@3", **ARMED})
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2"], "died at the third pass, before printing 3"
    assert '"event": "test_fault_fired"' in done.stderr
    assert '"point": "p.after_commit"' in done.stderr


def test_a_process_without_the_enabling_variable_runs_through_and_says_why() -> None:
    done = run({FAULT_VARIABLE: "p.after_commit"})
    assert done.returncode == 0
    assert done.stdout.split() == ["1", "2", "3", "4", "5"]
    assert "test_fault_refused" in done.stderr


def test_a_process_without_any_switch_runs_through_silently() -> None:
    done = run({})
    assert done.returncode == 0
    assert done.stdout.split() == ["1", "2", "3", "4", "5"]
    assert done.stderr == ""
