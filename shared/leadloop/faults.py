"""Deterministic fault points: FOR TESTS ONLY.

A fault test needs a worker to die at an exact moment that a random ``kill -9`` hits
only by luck — after a batch's PostgreSQL commit and before its output is published
and its offsets committed, or inside the transaction just before its commit. Code marks
such moments with ``fault_point("ingest.after_commit")``; a test process started with

    LEADLOOP_TEST_FAULTS_ENABLED=1
    LEADLOOP_TEST_FAULT=ingest.after_commit@3

kills itself with SIGKILL at the third time it reaches that point (``@N`` is optional:
the first time; several points may be given, comma-separated). Nothing is flushed,
nothing is cleaned up: exactly what ``kill -9`` does from outside.

Both variables are needed. ``LEADLOOP_TEST_FAULT`` alone never arms anything: a stray
value in a production environment logs a warning once and is ignored, so a deployment
cannot be made to crash by it. Without either variable a fault point is a dictionary
lookup on a cached, empty plan.

The environment is read once, at the first fault point a process reaches, because the
switch belongs to the process (tests set it before they start the service).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ENABLE_VARIABLE", "FAULT_VARIABLE", "FaultPlan", "fault_point", "parse_plan"]

#: Names the points to fire: ``point[@N][,point[@N]...]``.
FAULT_VARIABLE = "LEADLOOP_TEST_FAULT"
#: Must be ``1`` as well, or nothing is armed. Only test harnesses set it.
ENABLE_VARIABLE = "LEADLOOP_TEST_FAULTS_ENABLED"


@dataclass
class FaultPlan:
    """Which points fire, at which hit; counts the hits seen so far."""

    #: point name → the hit (1-based) at which it fires.
    fire_at: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    #: Why a configured fault was not armed (None: nothing to say).
    refused: str | None = None

    def hit(self, name: str) -> bool:
        """Count one pass through ``name``; True when this pass is the one to die at."""
        at = self.fire_at.get(name)
        if at is None:
            return False
        n = self.hits.get(name, 0) + 1
        self.hits[name] = n
        return n == at


def parse_plan(env: Mapping[str, str]) -> FaultPlan:
    """The plan an environment asks for. Malformed specs raise ValueError (a test that
    mistyped its switch must not silently run without its fault)."""
    spec = env.get(FAULT_VARIABLE, "").strip()
    if not spec:
        return FaultPlan()
    if env.get(ENABLE_VARIABLE) != "1":
        return FaultPlan(refused=f"{FAULT_VARIABLE} is set but {ENABLE_VARIABLE} is not 1")
    fire_at: dict[str, int] = {}
    for part in spec.split(","):
        name, _, nth = part.strip().partition("@")
        if not name or not all(c.isalnum() or c in "._-" for c in name):
            raise ValueError(f"{FAULT_VARIABLE}: invalid point name {name!r}")
        at = int(nth) if nth.isdigit() else 1 if not nth else 0
        if at < 1:
            raise ValueError(f"{FAULT_VARIABLE}: {name}@{nth}: the hit count is an integer from 1")
        fire_at[name] = at
    return FaultPlan(fire_at=fire_at)


@functools.cache
def _plan() -> FaultPlan:
    plan = parse_plan(os.environ)
    if plan.refused:
        _say({"event": "test_fault_refused", "why": plan.refused})
    return plan


def _say(line: dict[str, object]) -> None:
    # Plain stderr, not the service logger: the line must be out before SIGKILL, and a
    # logger's buffering or handlers must not decide whether it is.
    sys.stderr.write(json.dumps({"level": "warning", **line}) + "\n")
    sys.stderr.flush()


def fault_point(name: str) -> None:
    """Die here with SIGKILL if this process's test switch says so; otherwise nothing."""
    plan = _plan()
    if not plan.fire_at or not plan.hit(name):
        return
    _say({"event": "test_fault_fired", "point": name, "hit": plan.hits[name]})
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # not reached: SIGKILL cannot be caught or blocked
