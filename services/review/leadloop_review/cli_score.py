"""``leadloop score``: a lead score learned from closed leads."""

from __future__ import annotations

import typer

app = typer.Typer(help="a lead score learned from closed leads", no_args_is_help=True)
