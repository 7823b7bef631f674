"""Resolving never points an outcome at a lead that does not exist, whatever the
interleaving of partitions in a batch (regression: a copy resolved before its original,
which was then merged into a person's open lead, referenced a lead never created)."""

from __future__ import annotations

import asyncio
import random
import zlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop.simulate import generate_records
from leadloop_ingest.domain.dedupe import Known, PersonLead, identity_keys, resolve
from leadloop_ingest.domain.intake import LeadRecord, Position, RawRecord, decide
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits
from leadloop_ingest.handlers import IngestGuard

NOW = datetime(2026, 1, 5, tzinfo=UTC)
LIMITS = Limits(
    sources=frozenset({"web_form", "lead_ads", "wechat", "trade_show_csv", "referral"}),
    default_phone_region={"wechat": "CN", "trade_show_csv": "CN"},
)
RECORDS = generate_records(20250303, 3000)
PARTITIONS = 6


def partitioned() -> dict[int, list[RawRecord]]:
    queues: dict[int, list[RawRecord]] = {p: [] for p in range(PARTITIONS)}
    for i, sim in enumerate(RECORDS):
        # Unkeyed records spread round-robin, as a keyless producer does.
        p = zlib.crc32(sim.key) % PARTITIONS if sim.key is not None else i % PARTITIONS
        queues[p].append(RawRecord(Position("leads.raw", p, i), sim.key, sim.value, NOW))
    return queues


QUEUES = partitioned()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), guard_limit=st.sampled_from([0, 3, 50]))
def test_every_outcome_points_at_a_stored_lead(seed: int, guard_limit: int) -> None:
    rnd = random.Random(seed)
    queues = {p: list(v) for p, v in QUEUES.items()}
    leads: dict[str, LeadRecord] = {}
    merged: dict[str, str] = {}  # proposed lead id → the lead it was merged into
    outcomes = 0
    guard = IngestGuard(limit=guard_limit)
    while any(queues.values()):
        batch: list[RawRecord] = []
        while len(batch) < 300 and any(queues.values()):
            p = rnd.choice([p for p in queues if queues[p]])
            take = rnd.randint(1, 120)
            batch += queues[p][:take]
            queues[p] = queues[p][take:]
        proposed = decide(batch, limits=LIMITS, weights=ScoringWeights(), pepper=b"k", now=NOW)
        allowed, held = guard.split(proposed)
        for part in (allowed, held):  # held: as after an operator's resume
            keys = set(identity_keys(part))
            ids = [o.lead_id for o, _ in part if o.lead_id is not None]
            stored = {i: i for i in ids if i in leads}
            stored.update({i: merged[i] for i in ids if i in merged})
            people = [
                PersonLead(lead.lead_id, lead.email_key, lead.phone_key, None, NOW, None, "new")
                for lead in leads.values()
                if lead.email_key in keys or lead.phone_key in keys
            ]
            for (outcome, lead, merge), (_, proposal) in zip(
                resolve(part, Known(stored=stored, people=people)), part, strict=True
            ):
                outcomes += 1
                if lead is not None:
                    assert lead.lead_id not in leads, "one lead per idempotency key"
                    leads[lead.lead_id] = lead
                if merge is not None:
                    assert proposal is not None
                    merged[proposal.lead_id] = merge.lead_id
                if outcome.lead_id is not None:
                    assert outcome.lead_id in leads, (outcome, "points at no lead")
        if held:
            assert guard.resume()
            asyncio.run(guard.wait_for_resume())  # returns at once: resumed just now
    assert outcomes == len(RECORDS)
