"""``leadloop review``: the review (复盘) report for a period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from leadloop import settings as settings_mod
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import Period, parse_period
from leadloop_review.render import renderer

__all__ = ["app"]

app = typer.Typer(help="the review (复盘) report for a week or a month", no_args_is_help=False)


@app.callback(invoke_without_command=True)
def review(
    period: Annotated[str, typer.Option(help="an ISO week (2026-W48) or a month (2026-11)")],
    team: Annotated[str | None, typer.Option(help="one team only (default: every team)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md or json (html once installed)")] = "md",
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="count facts up to this time (ISO 8601, default now)"),
    ] = None,
) -> None:
    """Write the report of PERIOD: funnel, losses, bottlenecks, accountability, silent
    leaks, repurchase, satisfaction, forecast, demand trends and suggested actions."""
    try:
        p = parse_period(period)
        render = renderer(fmt)
        cut = datetime.fromisoformat(until) if until else datetime.now(UTC)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if cut.tzinfo is None:
        raise typer.BadParameter("--until needs a time zone offset, e.g. 2026-12-01T00:00+00:00")
    text = render(asyncio.run(_report(p, cut, team)))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


async def _report(period: Period, until: datetime, team: str | None) -> Report:
    import asyncpg

    from leadloop_review.adapters.postgres import FactStore
    from leadloop_review.handlers import make_report
    from leadloop_review.settings import ReviewSettings

    cfg = settings_mod.load(ReviewSettings)
    conn = await asyncpg.connect(cfg.database_url.get_secret_value())
    try:
        report, _ = await make_report(FactStore(conn), period, until, team)
    finally:
        await conn.close()
    return report
