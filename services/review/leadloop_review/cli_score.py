"""``leadloop score``: a lead score learned from closed leads.

leadloop score fit --from 2026-01-01 --to 2026-10-31 [--out models/score-v3.json]
leadloop score show models/score-v3.json
leadloop score backtest [--seed 20261208]

``fit`` reads the closed leads' facts from PostgreSQL (``LEADLOOP_REVIEW_DATABASE_URL``,
else ``DATABASE_URL``), fits, prints each attribute's contribution and the calibration,
and writes the model file that ingest loads with ``LEADLOOP_SCORE_MODEL_FILE``
(docs/scoring.md).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from leadloop_review.adapters.score_facts import read_close_facts
from leadloop_review.adapters.score_file import next_model_path, read_model, write_model
from leadloop_review.domain.score_fit import FitError, FitSettings, closed_leads, fit
from leadloop_review.domain.score_model import ScoreModel, ScoreModelError, top_contributions

app = typer.Typer(help="a lead score learned from closed leads", no_args_is_help=True)
console = Console()


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected a date, YYYY-MM-DD") from None


@app.command("fit")
def fit_command(
    start: Annotated[str, typer.Option("--from", help="first close date (UTC), YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last close date (UTC), included")],
    out: Annotated[
        Path | None, typer.Option(help="model file; default the next models/score-v<N>.json")
    ] = None,
    models_dir: Annotated[Path, typer.Option(help="where numbered models are kept")] = Path(
        "models"
    ),
    version: Annotated[str | None, typer.Option(help="default: the file's name")] = None,
    min_leads: Annotated[int, typer.Option(help="rarer levels are pooled as (other)")] = 20,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar=["LEADLOOP_REVIEW_DATABASE_URL", "DATABASE_URL"],
            show_envvar=True,
            show_default=False,
            help="PostgreSQL with the metrics' facts",
        ),
    ] = None,
) -> None:
    """Learn win odds by lead attribute from the leads that closed in the window."""
    lo, hi = _date(start), _date(end)
    if hi < lo:
        raise typer.BadParameter("--to is before --from")
    if database_url is None:
        console.print("[red]LEADLOOP_REVIEW_DATABASE_URL or DATABASE_URL is not set[/red]")
        raise typer.Exit(2)
    facts = asyncio.run(read_close_facts(database_url, lo, hi))
    leads = closed_leads(facts, lo, hi)
    path = out or next_model_path(models_dir)
    try:
        model = fit(
            leads,
            version=version or path.stem,
            fitted_at=datetime.now(UTC),
            window=(lo, hi),
            settings=FitSettings(min_leads=min_leads),
        )
    except FitError as exc:
        console.print(f"[red]cannot fit: {exc}[/red]")
        raise typer.Exit(1) from None
    _print_model(model)
    write_model(path, model)
    console.print(f"model {model.version} written to {path}")


@app.command("show")
def show_command(model_file: Annotated[Path, typer.Argument(help="a score model file")]) -> None:
    """Print a model's attribute contributions and calibration."""
    try:
        model = read_model(model_file)
    except ScoreModelError as exc:
        console.print(f"[red]{model_file}: {exc}[/red]")
        raise typer.Exit(2) from None
    _print_model(model)


@app.command(
    "backtest", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def backtest_command(ctx: typer.Context) -> None:
    """The learned score against the hand-set weights over a simulated year
    (options: python -m leadloop_review.score_backtest --help)."""
    from leadloop_review.score_backtest import main

    raise typer.Exit(main(list(ctx.args)))


def _print_model(model: ScoreModel) -> None:
    q = model.quality
    console.print(
        f"model {model.version}: {model.leads} closed leads ({model.won} won, "
        f"{model.window_from} to {model.window_to}), regularisation C={q.get('c', 0):g}"
    )
    table = Table(title="which attributes predict winning (cross-validated)")
    for col in ("attribute", "log-loss drop", "share", "raises the odds", "lowers the odds"):
        table.add_column(col)
    for c in top_contributions(model):
        table.add_row(
            c.attribute,
            f"{c.logloss_drop:.4f}",
            f"{c.share:.0%}",
            ", ".join(f"{x.value} ×{x.odds_ratio:.2f} ({x.leads})" for x in c.best),
            ", ".join(f"{x.value} ×{x.odds_ratio:.2f} ({x.leads})" for x in c.worst),
        )
    console.print(table)
    cal = Table(title="calibration (cross-validated)")
    for col in ("predicted", "leads", "mean predicted", "won"):
        cal.add_column(col, justify="right")
    for b in model.reliability:
        cal.add_row(
            f"{b.low:.1f}–{b.high:.1f}",
            str(b.leads),
            f"{b.mean_predicted:.3f}",
            f"{b.observed:.3f}",
        )
    console.print(cal)
    console.print(
        f"AUC {q.get('auc', 0):.3f}, Brier {q.get('brier', 0):.4f} (win rate alone "
        f"{q.get('brier_base_rate', 0):.4f}), log-loss {q.get('log_loss', 0):.4f}; "
        f"priority hot ≥ {model.hot_at}, warm ≥ {model.warm_at}"
    )
