"""The broken-producer guard: a long run of consecutive invalid records halts ingest.

Dead-lettering is right for the odd bad record, wrong for a producer that broke and now
sends nothing but garbage: the reject topic would fill up and nobody would notice the
channel is dark. Past ``limit`` consecutive rejects on one partition, ingest stops
before the record that crossed the line and raises an alert instead.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["halt_index"]


def halt_index(
    rejected: Sequence[bool], consecutive_before: int, limit: int
) -> tuple[int | None, int]:
    """Where a partition's records must stop, and the run length after them.

    ``rejected`` says, in partition order, which records are rejects. Returns the index
    of the first record that would make the run of consecutive rejects exceed
    ``limit`` (None when none does; ``limit`` 0 disables the guard) and the run length
    after the records that are let through.
    """
    run = consecutive_before
    for i, is_reject in enumerate(rejected):
        run = run + 1 if is_reject else 0
        if limit and run > limit:
            return i, run - 1
    return None, run
