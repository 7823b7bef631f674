"""The rep-behaviour model of the outcome experiment: pure, seeded, in simulated seconds.

Every number here is an assumption of the experiment, chosen to be plausible and stated
in docs/outcome.md with the studies it leans on; none is measured from leadloop's users.

- **Reps.** Each rep (fixed by seed and rep id) has a tier — fast (40 %, median first
  touch 10 min), steady (35 %, 1 h) or slow (25 %, 4 h) — a share of assignments they
  drop (never touch unless prompted, 10-40 %) and an uptake of reminders (40-80 %).
  A response time is log-normal around the tier's median (sigma 1.0), stretched by the
  rep's backlog: ``× (1 + untouched leads they own / CAPACITY)``.
- **Reminders.** A firing ``remind_owner`` (also a reclaim warning) prompts the owner,
  with their uptake, to act within an exponential delay of mean 15 min; a
  ``notify_manager`` with uptake + 0.3 (at most 0.95) within a mean of 30 min. A prompt
  only ever brings the rep's next step forward.
- **Reassignment** (``reassign``, a lead drained from the pool) gives the lead to a new
  owner, who draws a fresh response time from their own profile and carries on from
  the lead's stage.
- **Contact and qualification decay with the lead's age** (time since it was first
  assigned): P(contact on an attempt) = 0.15 + 0.55 · 2^(−age / 1 h);
  P(qualified | contacted) = 0.05 + 0.45 · 2^(−age at first contact / 2 h). At most
  three attempts, a mean of 3 h apart; the rep forgets a retry with their drop share.
- **After qualification** the lead climbs proposal (60 %), negotiation (65 %), won
  (60 %), a step every 1-5 h, or is lost; at each step the rep stalls (forgets the lead
  until prompted) with 10 %.

The draws are keyed by the seed and the event's own id (assignment, escalation, lead and
attempt), so a run's decisions do not depend on the order Kafka delivers them in; only
the backlog factor depends on what the run did before.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "CAPACITY",
    "MAX_ATTEMPTS",
    "Action",
    "RepProfile",
    "advance_odds",
    "contact_odds",
    "contacted",
    "first_touch_delay",
    "next_step_delay",
    "prompted_delay",
    "qualified",
    "qualify_odds",
    "rep_profile",
    "retry_delay",
    "stalls",
    "step_succeeds",
]

MINUTE: Final = 60.0
HOUR: Final = 3600.0
#: (share, median first touch in simulated seconds) per tier, cumulative by order.
TIERS: Final = (("fast", 0.40, 10 * MINUTE), ("steady", 0.35, HOUR), ("slow", 0.25, 4 * HOUR))
SIGMA: Final = 1.0
#: Untouched leads a rep owns that double their response time.
CAPACITY: Final = 20
MAX_ATTEMPTS: Final = 3
RETRY_MEAN_S: Final = 3 * HOUR
REMIND_MEAN_S: Final = 15 * MINUTE
MANAGER_MEAN_S: Final = 30 * MINUTE
STALL_ODDS: Final = 0.10
#: The climb after qualification: the odds of reaching each stage from the previous one.
CLIMB: Final = (("proposal", 0.60), ("negotiation", 0.65), ("won", 0.60))
STEP_GAP_S: Final = (1 * HOUR, 5 * HOUR)


class Action(StrEnum):
    """What the rep does next with a lead."""

    ATTEMPT = "attempt"  # try to reach the person (first touch or a retry)
    QUALIFY = "qualify"  # decide qualified or not, after contact
    ADVANCE = "advance"  # the next step of the climb


@dataclass(frozen=True, slots=True)
class RepProfile:
    rep_id: str
    tier: str
    median_s: float
    drop_share: float
    reminder_uptake: float


def rep_profile(seed: int, rep_id: str) -> RepProfile:
    """A rep's temperament, the same for every lead and every run of the seed."""
    rng = random.Random(f"{seed}:outcome-rep:{rep_id}")
    draw, tier, median = rng.random(), TIERS[-1][0], TIERS[-1][2]
    cumulative = 0.0
    for name, share, tier_median in TIERS:
        cumulative += share
        if draw < cumulative:
            tier, median = name, tier_median
            break
    return RepProfile(rep_id, tier, median, rng.uniform(0.10, 0.40), rng.uniform(0.40, 0.80))


def first_touch_delay(seed: int, assignment_id: str, rep: RepProfile, backlog: int) -> float | None:
    """Simulated seconds from an assignment to the owner's first step; None: dropped."""
    rng = random.Random(f"{seed}:outcome-assignment:{assignment_id}")
    if rng.random() < rep.drop_share:
        return None
    return rep.median_s * math.exp(SIGMA * rng.gauss(0.0, 1.0)) * (1 + backlog / CAPACITY)


def prompted_delay(seed: int, escalation_id: str, rep: RepProfile, action: str) -> float | None:
    """Simulated seconds until a prompted owner acts; None: the prompt is ignored (or is
    not a prompt: reassign, return_to_pool and page_oncall prompt nobody here)."""
    if action == "remind_owner":
        uptake, mean = rep.reminder_uptake, REMIND_MEAN_S
    elif action == "notify_manager":
        uptake, mean = min(0.95, rep.reminder_uptake + 0.3), MANAGER_MEAN_S
    else:
        return None
    rng = random.Random(f"{seed}:outcome-escalation:{escalation_id}")
    if rng.random() >= uptake:
        return None
    return rng.expovariate(1 / mean)


def contact_odds(age_s: float) -> float:
    """P(the person is reached on an attempt made ``age_s`` after the lead arrived)."""
    return 0.15 + 0.55 * 2 ** (-age_s / HOUR)


def qualify_odds(age_s: float) -> float:
    """P(qualified | first reached ``age_s`` after the lead arrived)."""
    return 0.05 + 0.45 * 2 ** (-age_s / (2 * HOUR))


def _rng(seed: int, lead_id: str, what: str, n: int) -> random.Random:
    return random.Random(f"{seed}:outcome-lead:{lead_id}:{what}:{n}")


def contacted(seed: int, lead_id: str, attempt: int, age_s: float) -> bool:
    return _rng(seed, lead_id, "contact", attempt).random() < contact_odds(age_s)


def qualified(seed: int, lead_id: str, contact_age_s: float) -> bool:
    return _rng(seed, lead_id, "qualify", 0).random() < qualify_odds(contact_age_s)


def retry_delay(seed: int, lead_id: str, attempt: int, rep: RepProfile) -> float | None:
    """When the owner tries again after a failed attempt; None: forgotten."""
    rng = _rng(seed, lead_id, "retry", attempt)
    if rng.random() < rep.drop_share:
        return None
    return rng.expovariate(1 / RETRY_MEAN_S)


def advance_odds(step: int) -> tuple[str, float]:
    """The stage the ``step``-th climb step reaches (0: proposal) and its odds."""
    return CLIMB[step]


def next_step_delay(seed: int, lead_id: str, step: int) -> float:
    return _rng(seed, lead_id, "gap", step).uniform(*STEP_GAP_S)


def stalls(seed: int, lead_id: str, step: int) -> bool:
    return _rng(seed, lead_id, "stall", step).random() < STALL_ODDS


def step_succeeds(seed: int, lead_id: str, step: int) -> bool:
    return _rng(seed, lead_id, "climb", step).random() < CLIMB[step][1]
