"""Simulated traffic: channel leads on ``leads.raw`` and reps acting on the CRM topics.

Everything is deterministic by seed: the same seed gives the same records, byte for
byte, and the same rep plans. Each module describes its part of the model:

- :mod:`leadloop.simulate.traffic`: the lead traffic model, the records of
  ``leads.raw`` (fresh, redelivered, returning, malformed) drawn from one seeded PRNG;
- :mod:`leadloop.simulate.people`: who the leads are, namely countries, numbering
  plans, names, email addresses and phones as people write them;
- :mod:`leadloop.simulate.defects`: the malformed records, one kind per :class:`Defect`;
- :mod:`leadloop.simulate.reps`: the rep model, each rep's temperament and the CRM
  events the owner of an assignment plans;
- :mod:`leadloop.simulate.roster`: the ``crm.reps`` roster of the rules file, with an
  address per demo channel, that the run publishes first when asked to;
- :mod:`leadloop.simulate.runner`: :func:`run`, which sends the traffic to Kafka and
  plays the reps against the real clock.

The names re-exported here are the public API; the modules' private helpers are not.
"""

from __future__ import annotations

from leadloop.simulate.defects import MAX_ATTRIBUTES, MAX_RECORD_BYTES, Defect
from leadloop.simulate.reps import PlannedEvent, Responsiveness, plan_followup, rep_responsiveness
from leadloop.simulate.roster import DEMO_CONTACTS, RosterError, load_rules, roster_from_rules
from leadloop.simulate.runner import ROSTER_ENV, SimulationConfig, SimulationSummary, run
from leadloop.simulate.traffic import (
    CHANNELS,
    SIMULATION_EPOCH,
    RecordKind,
    SimulatedRecord,
    generate_leads,
    generate_records,
    iter_records,
)

__all__ = [
    "CHANNELS",
    "DEMO_CONTACTS",
    "MAX_ATTRIBUTES",
    "MAX_RECORD_BYTES",
    "ROSTER_ENV",
    "SIMULATION_EPOCH",
    "Defect",
    "PlannedEvent",
    "RecordKind",
    "Responsiveness",
    "RosterError",
    "SimulatedRecord",
    "SimulationConfig",
    "SimulationSummary",
    "generate_leads",
    "generate_records",
    "iter_records",
    "load_rules",
    "plan_followup",
    "rep_responsiveness",
    "roster_from_rules",
    "run",
]
