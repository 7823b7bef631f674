"""Operator tools for assignment.

    python -m leadloop_assignment.tools dry-run proposed.yaml --since 2025-03-01T00:00:00Z

``dry-run`` replays the leads accepted in a time range through a proposed rule set (with
the current roster from crm.reps) and prints the distribution per team and rep next to
what the rules in force decided, before the proposal is switched on. It reads
PostgreSQL only and changes nothing. Output is counts, never a lead's contents.

Exit codes: 0 done, 2 bad arguments, rule set or configuration.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from leadloop.config_file import exit_on_config_error
from leadloop.events import LeadAccepted, RepStatus
from leadloop.logging import configure
from leadloop_assignment.adapters.rules_file import load_calendars, load_rules
from leadloop_assignment.domain.dry_run import Distribution, PastLead, replay
from leadloop_assignment.domain.rules import RosterEntry, with_roster
from leadloop_assignment.settings import AssignmentSettings

__all__ = ["ToolSettings", "app", "dry_run_report"]

app = typer.Typer(
    help="leadloop assignment tools: dry run of a proposed rule set over past leads",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def tools() -> None:
    """leadloop assignment tools (a command group, so that more can join dry-run)."""


class ToolSettings(BaseSettings):
    """The tools' environment (``LEADLOOP_`` prefix): the database and calendars."""

    model_config = SettingsConfigDict(env_prefix="LEADLOOP_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("DATABASE_URL", "LEADLOOP_DATABASE_URL"),
    )
    calendars_file: Path = AssignmentSettings.model_fields["calendars_file"].default


async def _past(
    url: str, since: datetime | None, until: datetime | None
) -> tuple[list[PastLead], list[RosterEntry]]:
    """The leads accepted in the range, with their first decision, and the roster."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT l.lead, l.closed_at, a.team_id, a.owner_id FROM assignment_leads l "
            "JOIN assignments a ON a.lead_id = l.lead_id AND a.kind IN ('initial', 'pooled') "
            "WHERE l.lead IS NOT NULL AND ($1::timestamptz IS NULL OR l.accepted_at >= $1) "
            "AND ($2::timestamptz IS NULL OR l.accepted_at < $2)",
            since,
            until,
        )
        roster = await conn.fetch(
            "SELECT rep_id, team_id, manager_id, status, capacity, weight FROM assignment_reps"
        )
    finally:
        await conn.close()
    past = [
        PastLead(
            lead=LeadAccepted.model_validate_json(r["lead"]),
            actual=(r["team_id"], r["owner_id"]),
            closed_at=r["closed_at"],
        )
        for r in rows
    ]
    entries = [
        RosterEntry(r["rep_id"], r["team_id"], RepStatus(r["status"]), r["capacity"], r["weight"])
        for r in roster
    ]
    return past, entries


def dry_run_report(dist: Distribution) -> dict[str, Any]:
    """The distribution as plain data (the ``--json`` output)."""
    places = sorted(set(dist.proposed) | set(dist.actual), key=lambda p: (p[0], p[1] or ""))
    proposed, actual = dist.teams(dist.proposed), dist.teams(dist.actual)
    return {
        "leads": dist.leads,
        "changed": dist.changed,
        "teams": {
            team: {"proposed": proposed[team], "actual": actual[team]}
            for team in sorted({p[0] for p in places})
        },
        "reps": [
            {
                "team": team,
                "rep": rep or "(pool)",
                "proposed": dist.proposed[(team, rep)],
                "actual": dist.actual[(team, rep)],
            }
            for team, rep in places
        ],
        "rules": dict(sorted(dist.rules.items())),
    }


@app.command("dry-run")
def dry_run(
    rules_file: Annotated[
        Path, typer.Argument(help="the proposed rule set (YAML)", exists=True, dir_okay=False)
    ],
    since: Annotated[
        datetime | None, typer.Option(help="leads accepted at or after (RFC 3339)")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="leads accepted before (RFC 3339)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Replay past leads through a proposed rule set and show where they would go."""
    configure("assignment-tools")
    console = Console()
    cfg = ToolSettings()
    url = cfg.database_url.get_secret_value()
    if not url:
        console.print("[red]DATABASE_URL is not set[/red]")
        raise typer.Exit(2)
    for bound in (since, until):
        if bound is not None and bound.tzinfo is None:
            console.print("[red]--since/--until need a UTC offset, e.g. 2025-03-01T00:00:00Z[/red]")
            raise typer.Exit(2)
    with exit_on_config_error("assignment"):
        proposed = load_rules(rules_file, load_calendars(cfg.calendars_file))
    past, roster = asyncio.run(_past(url, since, until))
    dist = replay(past, with_roster(proposed, roster))
    report = dry_run_report(dist)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(
        f"{dist.leads} leads replayed through rule set {proposed.version}; "
        f"{dist.changed} would be placed differently"
    )
    teams = Table("team", "proposed", "actual", title="per team")
    for team, counts in report["teams"].items():
        teams.add_row(team, str(counts["proposed"]), str(counts["actual"]))
    console.print(teams)
    reps = Table("team", "rep", "proposed", "actual", "change", title="per rep")
    for row in report["reps"]:
        change = row["proposed"] - row["actual"]
        reps.add_row(
            row["team"], row["rep"], str(row["proposed"]), str(row["actual"]), f"{change:+d}"
        )
    console.print(reps)
    rules = Table("rule", "leads", title="per rule (proposed)")
    for rule_id, n in report["rules"].items():
        rules.add_row(rule_id, str(n))
    console.print(rules)


if __name__ == "__main__":
    app()
