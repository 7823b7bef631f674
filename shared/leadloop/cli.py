"""The ``leadloop`` command: operator tools around the services.

leadloop migrate            apply pending PostgreSQL migrations
leadloop logins             create or update each service's own PostgreSQL login
leadloop topics create      create every registered topic that is missing
leadloop topics list        print the topic registry
leadloop schemas export     write JSON Schemas of the events to shared/leadloop/schemas
leadloop schemas check      fail if the committed schemas or examples are stale/invalid
leadloop simulate           feed realistic simulated traffic (deterministic with --seed)
leadloop watch              live terminal view of the funnel (reads /metrics)

Installed service packages add their own commands through the ``leadloop.commands``
entry-point group (``leadloop review``, ``leadloop score`` from leadloop-review): the
shared library knows no service, so it finds them by name at start.
"""

from __future__ import annotations

import asyncio
import signal
from importlib.metadata import entry_points
from typing import Annotated

import typer
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.dead_letters import app as dead_letters_app
from leadloop.settings import KafkaSettings

app = typer.Typer(help="leadloop operator tools", no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Kafka topics from the registry", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schemas of the event contract", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(dead_letters_app, name="dead-letters")
console = Console()


class ToolSettings(BaseSettings):
    """Settings for the CLI: like a service's, but the database is only needed by
    commands that touch it."""

    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    kafka: KafkaSettings = KafkaSettings()
    metrics_url: str = "http://127.0.0.1:18084/metrics"

    def require_database(self) -> str:
        if self.database_url is None:
            console.print("[red]DATABASE_URL is not set[/red]")
            raise typer.Exit(2)
        return self.database_url.get_secret_value()


def _settings() -> ToolSettings:
    return settings_mod.load(ToolSettings)


@app.command()
def migrate() -> None:
    """Apply pending forward-only migrations (deploy/postgres/migrations)."""
    from leadloop.db import apply_migrations

    applied = asyncio.run(apply_migrations(_settings().require_database()))
    console.print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


class LoginSettings(BaseSettings):
    """The services' own PostgreSQL passwords (LEADLOOP_<SERVICE>_DB_PASSWORD)."""

    model_config = SettingsConfigDict(env_prefix="LEADLOOP_", frozen=True, extra="ignore")

    ingest_db_password: SecretStr | None = None
    assignment_db_password: SecretStr | None = None
    sla_monitor_db_password: SecretStr | None = None
    metrics_db_password: SecretStr | None = None
    handoff_db_password: SecretStr | None = None
    notifier_db_password: SecretStr | None = None

    def given(self) -> dict[str, str]:
        """service -> password, for the passwords that are set."""
        values = {
            "ingest": self.ingest_db_password,
            "assignment": self.assignment_db_password,
            "sla-monitor": self.sla_monitor_db_password,
            "metrics": self.metrics_db_password,
            "handoff": self.handoff_db_password,
            "notifier": self.notifier_db_password,
        }
        return {s: v.get_secret_value() for s, v in values.items() if v is not None}

    @field_validator("*")
    @classmethod
    def _not_a_placeholder(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if v is None:
            return v
        return settings_mod.require_secret(v, f"LEADLOOP_{(info.field_name or '').upper()}")


@app.command()
def logins(
    suffix: Annotated[
        str, typer.Option(help="login name = the service's group role + this")
    ] = "_app",
) -> None:
    """Create or update each service's own PostgreSQL login (leadloop_<service>_app, a
    member of the group role migration 0008 grants its tables) with the password in
    LEADLOOP_<SERVICE>_DB_PASSWORD; services without a password set are left alone.
    Run as the database owner after `leadloop migrate`."""
    from leadloop.db import ensure_logins

    passwords = settings_mod.load(LoginSettings).given()
    if not passwords:
        console.print(
            "[red]no LEADLOOP_<SERVICE>_DB_PASSWORD is set (INGEST, ASSIGNMENT, SLA_MONITOR, "
            "METRICS, HANDOFF, NOTIFIER)[/red]"
        )
        raise typer.Exit(2)
    made = asyncio.run(ensure_logins(_settings().require_database(), passwords, suffix=suffix))
    console.print(f"logins ready: {', '.join(made)}")


@topics_app.command("create")
def topics_create(
    replication_factor: Annotated[
        int,
        typer.Option(
            min=1, help="copies of each partition (3 in production, 1 on one local broker)"
        ),
    ] = 1,
    min_insync_replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="replicas that must have a write before an acks=all producer is answered "
            "(2 with a replication factor of 3); the broker's default when not given",
        ),
    ] = None,
) -> None:
    """Create every registered topic that does not exist yet (existing topics are left
    as they are)."""
    from leadloop.kafka import TopicsNotCreated, create_topics

    if min_insync_replicas is not None and min_insync_replicas > replication_factor:
        # Kafka would accept the topic and then refuse every acks=all write to it.
        console.print(
            f"[red]--min-insync-replicas {min_insync_replicas} is more than "
            f"--replication-factor {replication_factor}: no write could ever succeed[/red]"
        )
        raise typer.Exit(2)
    try:
        created = asyncio.run(
            create_topics(
                _settings().kafka,
                replication_factor=replication_factor,
                min_insync_replicas=min_insync_replicas,
            )
        )
    except TopicsNotCreated as exc:
        for name, why in exc.refused.items():
            console.print(f"[red]{name} not created:[/red] {why}")
        raise typer.Exit(1) from None
    console.print(f"topics created: {', '.join(created) if created else 'none missing'}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the topic registry."""
    from leadloop.topics import REGISTRY

    table = Table("topic", "key", "partitions", "cleanup", "producers", "consumers", "pii")
    for t in REGISTRY:
        table.add_row(
            t.name,
            t.key,
            str(t.partitions),
            t.cleanup_policy,
            ", ".join(t.producers),
            ", ".join(t.consumers),
            "yes" if t.contains_pii else "",
        )
    console.print(table)


@schemas_app.command("export")
def schemas_export() -> None:
    """Write the JSON Schema of every event model next to the package."""
    from leadloop.schemas import export

    for path in export():
        console.print(f"wrote {path}")


@schemas_app.command("check")
def schemas_check() -> None:
    """Fail when a committed schema differs from the models or an example is invalid."""
    from leadloop.schemas import check

    problems = check()
    for p in problems:
        console.print(f"[red]{p}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print("schemas and examples are current and valid")


@app.command()
def simulate(
    leads: Annotated[int, typer.Option(help="how many leads to send")] = 1000,
    rate: Annotated[float, typer.Option(help="leads per second (0 = as fast as possible)")] = 50.0,
    seed: Annotated[
        int, typer.Option(help="random seed; the same seed sends the same traffic")
    ] = 7,
    reps: Annotated[
        bool, typer.Option(help="also play the reps (activities, stage changes)")
    ] = True,
    time_scale: Annotated[
        float, typer.Option(help="simulated seconds per real second for rep behaviour")
    ] = 60.0,
) -> None:
    """Feed simulated channel traffic to leads.raw and play the reps on the CRM topics."""
    from leadloop.simulate import SimulationConfig, run

    cfg = SimulationConfig(leads=leads, rate=rate, seed=seed, reps=reps, time_scale=time_scale)
    kafka = _settings().kafka

    async def until_stopped() -> object:
        # SIGTERM (from `make demo` or a supervisor) and SIGINT end the run early; the
        # simulator then returns the summary of what it sent.
        task = asyncio.ensure_future(run(kafka, cfg))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        return await task

    console.print(asyncio.run(until_stopped()))


@app.command()
def watch(
    interval: Annotated[float, typer.Option(help="refresh interval in seconds")] = 1.0,
) -> None:
    """Live terminal view of the funnel, read from the metrics service's /metrics."""
    from leadloop.watch import run_watch

    run_watch(_settings().metrics_url, interval)


def _add_service_commands() -> None:
    for ep in entry_points(group="leadloop.commands"):
        try:
            commands = ep.load()
        # A broken package loses its own commands, not the whole tool.
        except Exception as exc:
            Console(stderr=True).print(
                f"[yellow]leadloop {ep.name} is unavailable: {type(exc).__name__} while "
                f"loading {ep.value}[/yellow]"
            )
            continue
        app.add_typer(commands, name=ep.name)


def main() -> None:
    _add_service_commands()
    app()
