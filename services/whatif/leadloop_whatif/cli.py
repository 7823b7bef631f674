"""``leadloop whatif``: what a candidate rule set or SLA ladder would have done.

    leadloop whatif --rules candidate.yaml [--sla sla.yaml] [--calendars calendars.yaml]
                    --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z [--format json|html]

Reads PostgreSQL only (``DATABASE_URL``, a login of ``leadloop_whatif``) and changes
nothing. Exit codes: 0 done, 2 bad arguments or configuration.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from leadloop.calendar import CalendarSet
from leadloop.config_file import exit_on_config_error, load_yaml
from leadloop_assignment.domain.rules import RuleSet
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_whatif.adapters.postgres import read_history
from leadloop_whatif.domain.compare import compare
from leadloop_whatif.domain.replay import Configuration, replay
from leadloop_whatif.render import as_dict, print_tables

__all__ = ["WhatifSettings", "app"]

app = typer.Typer(help="what a candidate configuration would have done to past leads")

#: Said with every report: what the replay cannot know.
NOTES = (
    "the roster is today's (assignment keeps the latest crm.reps entry per rep, not its "
    "history): every moment of the range is replayed with it",
    "leads are decided at the moment assignment first decided them; escalations fire at "
    "their due time and move their lead at once",
)


class WhatifSettings(BaseSettings):
    """The environment (``LEADLOOP_`` prefix): the database and the files in force."""

    model_config = SettingsConfigDict(env_prefix="LEADLOOP_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("DATABASE_URL", "LEADLOOP_DATABASE_URL"),
    )
    policies_file: Path = Path("config/sla.yaml")
    calendars_file: Path = Path("config/calendars.yaml")


def _instant(value: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name}: not an ISO 8601 time: {value!r}") from None
    if at.tzinfo is None:
        raise typer.BadParameter(f"{name} needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    return at


@app.callback(invoke_without_command=True)
def whatif(
    rules: Annotated[
        Path, typer.Option(help="the candidate rule set (YAML)", exists=True, dir_okay=False)
    ],
    start: Annotated[str, typer.Option("--from", help="first decisions at or after (ISO 8601)")],
    end: Annotated[str, typer.Option("--to", help="... and before; the replay ends here")],
    sla: Annotated[
        Path | None, typer.Option(help="candidate SLA policies (default: the ones in force)")
    ] = None,
    calendars: Annotated[
        Path | None, typer.Option(help="business calendars (default: the ones in force)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or html")] = "table",
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Replay the leads first decided in [FROM, TO) — their touches, stage changes and
    the roster — through the candidate configuration, and show it next to what
    actually happened."""
    if fmt not in ("table", "json", "html"):
        raise typer.BadParameter("--format is table, json or html")
    since, until = _instant(start, "--from"), _instant(end, "--to")
    cfg = WhatifSettings()
    url = cfg.database_url.get_secret_value()
    if not url:
        Console(stderr=True).print("[red]DATABASE_URL is not set[/red]")
        raise typer.Exit(2)
    with exit_on_config_error("whatif"):
        config = Configuration(
            rules=load_yaml(rules, RuleSet),
            policies=load_yaml(sla or cfg.policies_file, PolicySet),
            calendars=load_yaml(calendars or cfg.calendars_file, CalendarSet),
        )
    began = time.perf_counter()
    history, actual = asyncio.run(read_history(url, since, until))
    read_s = time.perf_counter() - began
    # Everything read, and nearly everything the replay makes, lives until the report is
    # written, and none of it forms reference cycles: the collector would only scan the
    # growing heap again and again (a month is millions of objects). Frozen and paused.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        outcome = replay(history, config)
    finally:
        gc.enable()
    result = compare(actual, outcome, history, NOTES)
    meta = {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "rule_version": config.rules.version,
        "seconds": {"read": round(read_s, 2), "total": round(time.perf_counter() - began, 2)},
    }
    if fmt in ("json", "html"):
        report = as_dict(result, meta)
        if fmt == "html":
            from leadloop_whatif.render_html import render  # matplotlib loads only here

            text = render(report)
        else:
            text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
        return
    console = Console(file=out.open("w", encoding="utf-8") if out else None)
    print_tables(
        result,
        console,
        f"what-if of rule set {config.rules.version} over {since.isoformat()} .. "
        f"{until.isoformat()}: {result.actual.leads} leads",
    )
