"""``leadloop review``: the review (复盘) report for a period."""

from __future__ import annotations

import typer

app = typer.Typer(help="the review (复盘) report for a week or a month", no_args_is_help=True)
