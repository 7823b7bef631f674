"""``leadloop watch``: a live terminal view of the funnel, read from ``/metrics``.

The view reads the metrics service's Prometheus text exposition, the same numbers the
wallboards show, so what an operator sees in the terminal during ``make demo`` can be
compared with Grafana one to one. Next to the funnel it shows what reached the outside
world: hand-offs per CRM target (the hand-off's ``/metrics``) and notices per channel
(the notifier's ``/metrics``). It never talks to Kafka or PostgreSQL.

Split for testing: ``summarize`` (text → ``FunnelSnapshot``), ``summarize_deliveries``
(texts → ``DeliverySnapshot``), ``edge_urls`` and ``rates`` are pure; ``render_*``
build rich renderables; only ``run_watch`` does I/O and reads the clock.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = [
    "DeliverySnapshot",
    "EdgeUrls",
    "FetchError",
    "FunnelSnapshot",
    "SourceCounts",
    "edge_urls",
    "fetch_exposition",
    "rates",
    "render_summary",
    "render_view",
    "run_watch",
    "summarize",
    "summarize_deliveries",
]

# The counters the view reads (DESIGN.md, "Prometheus metrics"). prometheus_client
# exposes a counter's samples with the ``_total`` suffix; ``_created`` samples and every
# other metric are ignored.
RECEIVED: Final = "leadloop_leads_received_total"
ACCEPTED: Final = "leadloop_leads_accepted_total"
REJECTED: Final = "leadloop_leads_rejected_total"
DUPLICATE: Final = "leadloop_leads_duplicate_total"
ASSIGNED: Final = "leadloop_leads_assigned_total"
BREACHES: Final = "leadloop_sla_breaches_total"
# The edges, each served by its own service (docs/crm-targets.md, docs/notifier.md).
HANDOFFS: Final = "leadloop_handoff_deliveries_total"  # target, outcome, status_class
NOTICES: Final = "leadloop_notifier_sent_total"  # channel, kind, outcome
#: Outcome columns in the order shown; other outcomes are shown after these.
HANDOFF_OUTCOMES: Final = ("delivered", "retried", "failed", "cancelled")
NOTICE_OUTCOMES: Final = ("delivered", "retry", "failed")

# An unlabelled value (a label missing from a sample) is shown, not dropped, so the
# view's totals always equal the sums of its breakdowns.
_UNSET: Final = "-"


@dataclass(frozen=True, slots=True)
class SourceCounts:
    """One channel's intake counters."""

    received: float = 0.0
    accepted: float = 0.0
    duplicate: float = 0.0
    rejected: float = 0.0

    @property
    def settled(self) -> float:
        return self.accepted + self.duplicate + self.rejected

    @property
    def in_flight(self) -> float:
        """received - (accepted + duplicate + rejected): records read but not yet
        settled. Conservation says this returns to zero once the stream is quiet."""
        return self.received - self.settled


@dataclass(frozen=True, slots=True)
class FunnelSnapshot:
    """The funnel counters at one scrape, summed over labels the view does not show."""

    sources: Mapping[str, SourceCounts] = field(default_factory=dict)
    rejected_by_reason: Mapping[str, float] = field(default_factory=dict)
    #: keyed by (team, kind), summed over strategy
    assigned_by_team_kind: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: keyed by (kind, level), summed over team
    breaches_by_kind_level: Mapping[tuple[str, str], float] = field(default_factory=dict)

    @property
    def received(self) -> float:
        return sum(s.received for s in self.sources.values())

    @property
    def accepted(self) -> float:
        return sum(s.accepted for s in self.sources.values())

    @property
    def duplicate(self) -> float:
        return sum(s.duplicate for s in self.sources.values())

    @property
    def rejected(self) -> float:
        return sum(s.rejected for s in self.sources.values())

    @property
    def assigned(self) -> float:
        return sum(self.assigned_by_team_kind.values())

    @property
    def breaches(self) -> float:
        return sum(self.breaches_by_kind_level.values())

    def totals(self) -> dict[str, float]:
        """The funnel rows, in funnel order."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "assigned": self.assigned,
            "sla escalations": self.breaches,
        }


def summarize(text: str) -> FunnelSnapshot:
    """Fold a Prometheus text exposition into the funnel view.

    Raises ``ValueError`` when the text is not a valid exposition.
    """
    per_source: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_reason: dict[str, float] = defaultdict(float)
    by_team_kind: dict[tuple[str, str], float] = defaultdict(float)
    by_kind_level: dict[tuple[str, str], float] = defaultdict(float)
    intake = {RECEIVED: "received", ACCEPTED: "accepted", DUPLICATE: "duplicate"}

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, float(sample.value)
            if sample.name in intake:
                per_source[labels.get("source", _UNSET)][intake[sample.name]] += value
            elif sample.name == REJECTED:
                per_source[labels.get("source", _UNSET)]["rejected"] += value
                by_reason[labels.get("reason", _UNSET)] += value
            elif sample.name == ASSIGNED:
                key = (labels.get("team", _UNSET), labels.get("kind", _UNSET))
                by_team_kind[key] += value
            elif sample.name == BREACHES:
                key = (labels.get("kind", _UNSET), labels.get("level", _UNSET))
                by_kind_level[key] += value

    return FunnelSnapshot(
        sources={name: SourceCounts(**counts) for name, counts in sorted(per_source.items())},
        rejected_by_reason=dict(sorted(by_reason.items())),
        assigned_by_team_kind=dict(sorted(by_team_kind.items())),
        breaches_by_kind_level=dict(sorted(by_kind_level.items(), key=_kind_level_order)),
    )


def _kind_level_order(item: tuple[tuple[str, str], float]) -> tuple[str, int, str]:
    # Levels are label strings; "10" must sort after "2".
    (kind, level), _ = item
    return (kind, int(level) if level.isdigit() else 1 << 30, level)


@dataclass(frozen=True, slots=True)
class DeliverySnapshot:
    """What reached the outside world at one scrape: hand-off attempts per CRM target and
    notices per channel, by outcome."""

    #: (target, outcome) -> attempts, summed over status_class
    handoffs: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: (channel, kind, outcome) -> notices (one per outbox row handed to the channel)
    notices: Mapping[tuple[str, str, str], float] = field(default_factory=dict)

    @property
    def handed_off(self) -> float:
        """Hand-offs the CRM targets confirmed."""
        return sum(v for (_, outcome), v in self.handoffs.items() if outcome == "delivered")

    @property
    def notified(self) -> float:
        """Notices the channels accepted."""
        return sum(v for (_, _, outcome), v in self.notices.items() if outcome == "delivered")


def summarize_deliveries(*texts: str) -> DeliverySnapshot:
    """Fold the hand-off's and the notifier's expositions (any number, any order) into
    the delivery view; other metrics are ignored. Raises ``ValueError`` when a text is
    not a valid exposition."""
    handoffs: dict[tuple[str, str], float] = defaultdict(float)
    notices: dict[tuple[str, str, str], float] = defaultdict(float)
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels, value = sample.labels, float(sample.value)
                if sample.name == HANDOFFS:
                    key = (labels.get("target", _UNSET), labels.get("outcome", _UNSET))
                    handoffs[key] += value
                elif sample.name == NOTICES:
                    notices[
                        (
                            labels.get("channel", _UNSET),
                            labels.get("kind", _UNSET),
                            labels.get("outcome", _UNSET),
                        )
                    ] += value
    return DeliverySnapshot(
        handoffs=dict(sorted(handoffs.items())), notices=dict(sorted(notices.items()))
    )


@dataclass(frozen=True, slots=True)
class EdgeUrls:
    """Where the hand-off's and the notifier's ``/metrics`` are."""

    handoff: str
    notifier: str


#: Environment variables that override where the edges' metrics are read.
HANDOFF_URL_ENV: Final = "LEADLOOP_HANDOFF_METRICS_URL"
NOTIFIER_URL_ENV: Final = "LEADLOOP_NOTIFIER_METRICS_URL"


def edge_urls(metrics_url: str, environ: Mapping[str, str]) -> EdgeUrls:
    """The edges' metrics URLs: ``LEADLOOP_HANDOFF_METRICS_URL`` and
    ``LEADLOOP_NOTIFIER_METRICS_URL`` when set, else the metrics service's URL with the
    port one and two higher (the services' ports are LEADLOOP_PORT_BASE + 4, + 5, + 6:
    18084, 18085, 18086 by default)."""
    parts = urllib.parse.urlsplit(metrics_url)

    def shifted(by: int) -> str:
        if parts.port is None or parts.hostname is None:
            return ""
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{parts.port + by}"))

    return EdgeUrls(
        handoff=environ.get(HANDOFF_URL_ENV) or shifted(1),
        notifier=environ.get(NOTIFIER_URL_ENV) or shifted(2),
    )


def _per_second(current: float, previous: float, seconds: float) -> float:
    # A counter that went down was reset (a metrics worker restarted); like PromQL's
    # rate(), count from zero instead of showing a negative rate.
    delta = current - previous if current >= previous else current
    return delta / seconds


def rates(previous: FunnelSnapshot, current: FunnelSnapshot, seconds: float) -> dict[str, float]:
    """Per-second rate of every funnel row and of each source's ``received``, over
    ``seconds`` between two snapshots. Source rows are keyed ``source:<name>``."""
    if seconds <= 0:
        return {}
    out = {
        row: _per_second(value, previous.totals().get(row, 0.0), seconds)
        for row, value in current.totals().items()
    }
    for name, counts in current.sources.items():
        before = previous.sources.get(name, SourceCounts()).received
        out[f"source:{name}"] = _per_second(counts.received, before, seconds)
    return out


# --- rendering ----------------------------------------------------------------------


def _n(value: float) -> str:
    # Counters are integral in practice; show fractions only if a metric has them.
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else ""


def _funnel_table(snap: FunnelSnapshot, per_second: Mapping[str, float] | None) -> Table:
    table = Table(title="funnel", title_justify="left", expand=False)
    table.add_column("step")
    table.add_column("total", justify="right")
    table.add_column("share", justify="right")
    if per_second is not None:
        table.add_column("per s", justify="right")
    # Intake rows are shares of received; assignment and SLA rows of accepted leads.
    base = {"received": snap.received, "assigned": snap.accepted, "sla escalations": snap.accepted}
    for row, value in snap.totals().items():
        cells = [row, _n(value), _share(value, base.get(row, snap.received))]
        if per_second is not None:
            cells.append(f"{per_second.get(row, 0.0):,.1f}")
        table.add_row(*cells)
    return table


def _sources_table(snap: FunnelSnapshot, per_second: Mapping[str, float] | None) -> Table:
    table = Table(title="per source", title_justify="left")
    for name in ("source", "received", "accepted", "duplicate", "rejected", "in flight"):
        table.add_column(name, justify="left" if name == "source" else "right")
    if per_second is not None:
        table.add_column("received/s", justify="right")
    for name, c in snap.sources.items():
        cells = [name, _n(c.received), _n(c.accepted), _n(c.duplicate), _n(c.rejected)]
        # A negative gap breaks conservation (counted twice); make it impossible to miss.
        gap = _n(c.in_flight)
        cells.append(f"[bold red]{gap}[/]" if c.in_flight < 0 else gap)
        if per_second is not None:
            cells.append(f"{per_second.get(f'source:{name}', 0.0):,.1f}")
        table.add_row(*cells)
    return table


def _breakdown(
    title: str, headers: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], float]]
) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header)
    table.add_column("total", justify="right")
    empty = True
    for key, value in rows:
        table.add_row(*key, _n(value))
        empty = False
    if empty:
        table.add_row("none yet", *([""] * len(headers)))
    return table


def _breakdowns(snap: FunnelSnapshot) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        _breakdown(
            "rejected", ("reason",), (((k,), v) for k, v in snap.rejected_by_reason.items())
        ),
        _breakdown("assigned", ("team", "kind"), snap.assigned_by_team_kind.items()),
        _breakdown("sla escalations", ("kind", "level"), snap.breaches_by_kind_level.items()),
    )
    return grid


def _pivot(
    counts: Iterable[tuple[tuple[str, ...], float]], known: tuple[str, ...]
) -> tuple[list[str], dict[tuple[str, ...], dict[str, float]]]:
    """Rows keyed by all labels but the last (the outcome), one column per outcome: the
    known ones always, in order, then any other that occurs."""
    outcomes = list(known)
    rows: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for key, value in counts:
        *head, outcome = key
        if outcome not in outcomes:
            outcomes.append(outcome)
        rows[tuple(head)][outcome] = rows[tuple(head)].get(outcome, 0.0) + value
    return outcomes, rows


def _delivery_table(
    title: str,
    headers: tuple[str, ...],
    counts: Iterable[tuple[tuple[str, ...], float]],
    known: tuple[str, ...],
    note: str | None,
) -> Table:
    outcomes, rows = _pivot(counts, known)
    table = Table(title=title, title_justify="left", caption=note, caption_justify="left")
    for header in headers:
        table.add_column(header)
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for key, by_outcome in rows.items():
        cells = [_n(by_outcome.get(o, 0.0)) for o in outcomes]
        # A refusal the edge will not retry is worth seeing at once.
        if by_outcome.get("failed"):
            cells[outcomes.index("failed")] = f"[bold red]{cells[outcomes.index('failed')]}[/]"
        table.add_row(*key, *cells)
    if not rows:
        table.add_row("none yet", *([""] * (len(headers) - 1 + len(outcomes))))
    return table


def _deliveries(deliveries: DeliverySnapshot, errors: Mapping[str, str] | None) -> Table:
    errors = errors or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        _delivery_table(
            "hand-offs per CRM target",
            ("target",),
            deliveries.handoffs.items(),
            HANDOFF_OUTCOMES,
            f"[yellow]hand-off metrics: {errors['handoff']}[/]" if "handoff" in errors else None,
        ),
        _delivery_table(
            "notifications per channel",
            ("channel", "kind"),
            deliveries.notices.items(),
            NOTICE_OUTCOMES,
            f"[yellow]notifier metrics: {errors['notifier']}[/]" if "notifier" in errors else None,
        ),
    )
    return grid


def render_view(
    url: str,
    snapshot: FunnelSnapshot | None,
    per_second: Mapping[str, float] | None,
    *,
    updated: datetime | None,
    error: str | None,
    deliveries: DeliverySnapshot | None = None,
    edge_errors: Mapping[str, str] | None = None,
) -> RenderableType:
    """One frame: the status line, then the last snapshot if there is one, and what
    reached the CRM targets and the chat channels (``deliveries``).

    While the metrics service is unreachable the last values stay on screen under a
    warning, so a restart of the service does not blank the view; an unreachable
    hand-off or notifier (``edge_errors``: ``handoff`` / ``notifier`` → reason) is noted
    under its table, which keeps its last values.
    """
    if error is not None:
        status = Text.assemble(
            ("waiting for metrics service", "bold yellow"), f" at {url} ({error})"
        )
    else:
        stamp = updated.strftime("%H:%M:%S") if updated else "-"
        status = Text.assemble(("leadloop funnel", "bold"), f"  {url}  updated {stamp}")
    if snapshot is None:
        return Panel(status, title="leadloop watch", subtitle="Ctrl-C to quit")
    top = Table.grid(padding=(0, 2))
    top.add_row(_funnel_table(snapshot, per_second), _sources_table(snapshot, per_second))
    parts: list[RenderableType] = [status, top]
    if deliveries is not None:
        parts.append(_deliveries(deliveries, edge_errors))
    parts.append(_breakdowns(snapshot))
    return Panel(
        Group(*parts),
        title="leadloop watch",
        subtitle="Ctrl-C to quit",
        border_style="yellow" if error else "blue",
    )


def render_summary(
    snapshot: FunnelSnapshot, deliveries: DeliverySnapshot | None = None
) -> RenderableType:
    """The final tables printed after Ctrl-C: the last values, without rates."""
    top = Table.grid(padding=(0, 2))
    top.add_row(_funnel_table(snapshot, None), _sources_table(snapshot, None))
    if deliveries is None:
        return Group(top, _breakdowns(snapshot))
    return Group(top, _deliveries(deliveries, None), _breakdowns(snapshot))


# --- I/O ----------------------------------------------------------------------------


class FetchError(Exception):
    """The exposition could not be read; the message is safe to show."""


def fetch_exposition(url: str, timeout: float) -> str:
    """GET the exposition text. Raises ``FetchError`` for anything that should make the
    view wait and retry rather than crash."""
    _require_http(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            body: bytes = response.read()
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise FetchError(str(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:
        # Timeouts and resets while reading the body are not wrapped in URLError.
        raise FetchError(str(exc) or type(exc).__name__) from exc
    return body.decode(charset, errors="replace")


def _require_http(url: str) -> None:
    # urlopen also opens file:// and ftp:// URLs; a metrics URL is never one of those.
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError(f"metrics url must be http(s): {url!r}")


Fetch = Callable[[str, float], str]


def _read_edges(
    urls: EdgeUrls, fetch: Fetch, timeout: float, last: dict[str, str]
) -> dict[str, str]:
    """Fetch each edge's exposition into ``last`` (kept on failure); the failures."""
    errors: dict[str, str] = {}
    for name, url in (("handoff", urls.handoff), ("notifier", urls.notifier)):
        if not url:
            continue
        try:
            text = fetch(url, timeout)
            summarize_deliveries(text)  # refuse a garbled page before keeping it
        except FetchError as exc:
            errors[name] = f"waiting at {url} ({exc})"
        except ValueError as exc:
            errors[name] = f"unreadable exposition at {url}: {exc}"
        else:
            last[name] = text
    return errors


def run_watch(
    metrics_url: str,
    interval: float,
    *,
    console: Console | None = None,
    fetch: Fetch = fetch_exposition,
    edges: EdgeUrls | None = None,
) -> None:
    """Refresh the view every ``interval`` seconds until Ctrl-C, then print the last
    values. A down or garbled endpoint shows "waiting for metrics service" and is retried.

    ``edges``: where the hand-off's and the notifier's metrics are; default
    :func:`edge_urls` of ``metrics_url`` and the environment. An empty URL is not read."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    _require_http(metrics_url)  # fail fast: a wrong URL is not an outage to wait out
    urls = edges if edges is not None else edge_urls(metrics_url, os.environ)
    for url in (urls.handoff, urls.notifier):
        if url:
            _require_http(url)
    edge_texts: dict[str, str] = {}
    console = console or Console()
    # The request must finish before the next frame is due, but a slow scrape on a
    # busy laptop should not read as an outage at sub-second intervals.
    timeout = max(interval, 2.0)
    last: FunnelSnapshot | None = None
    last_at: float | None = None
    per_second: dict[str, float] | None = None
    updated: datetime | None = None
    try:
        with Live(console=console, auto_refresh=False, transient=True) as live:
            while True:
                started = time.monotonic()
                error: str | None = None
                try:
                    snap = summarize(fetch(metrics_url, timeout))
                except FetchError as exc:
                    error = str(exc)
                except ValueError as exc:
                    # Reachable but not an exposition (a proxy's error page, a
                    # half-started service): also worth waiting out.
                    error = f"unreadable exposition: {exc}"
                else:
                    if last is not None and last_at is not None:
                        per_second = rates(last, snap, started - last_at)
                    last, last_at, updated = snap, started, datetime.now().astimezone()
                edge_errors = _read_edges(urls, fetch, timeout, edge_texts)
                deliveries = summarize_deliveries(*edge_texts.values())
                live.update(
                    render_view(
                        metrics_url,
                        last,
                        per_second,
                        updated=updated,
                        error=error,
                        deliveries=deliveries,
                        edge_errors=edge_errors,
                    ),
                    refresh=True,
                )
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the view is meant to end
    if last is None:
        console.print(f"no metrics were read from {metrics_url}")
    else:
        console.print(render_summary(last, summarize_deliveries(*edge_texts.values())))
