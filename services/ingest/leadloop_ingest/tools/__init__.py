"""Operator tools for ingest: CSV batch import, replay of rejected records, erasure.

    python -m leadloop_ingest.tools import-csv FILE --source trade_show_csv
    python -m leadloop_ingest.tools replay --reason invalid_phone --since 2025-03-03T00:00:00Z
    python -m leadloop_ingest.tools erase --email someone@example.com --phone +8613900000000

One module per command (``import_csv``, ``replay``, ``erase``); ``__main__`` dispatches
to them and ``common`` holds what they share, loaded by bootstrap's own functions.

``import-csv`` and ``replay`` produce to ``leads.raw`` with acks=all and count a record
as sent only once the broker acknowledged it. Both are safe to run twice: ingest treats
(``source``, ``source_lead_id``) as the idempotency key, so a record sent again is a
duplicate, never a second lead. Their output is counts, never a record's contents.

``erase`` removes a person's personal data from PostgreSQL (see its help); it too is
safe to run twice and prints counts only.

Exit codes: 0 done, 1 Kafka (or, for erase, PostgreSQL) failed part-way (what was
acknowledged is reported; run again), 2 bad arguments, configuration or input file
(nothing was sent).
"""

from __future__ import annotations

from leadloop_ingest.tools.common import ToolSettings
from leadloop_ingest.tools.erase import EraseSettings, erase_person
from leadloop_ingest.tools.import_csv import ImportSummary, import_rows
from leadloop_ingest.tools.replay import ReplaySelection, ReplaySummary, replay_rejected

__all__ = [
    "EraseSettings",
    "ImportSummary",
    "ReplaySelection",
    "ReplaySummary",
    "ToolSettings",
    "erase_person",
    "import_rows",
    "replay_rejected",
]
