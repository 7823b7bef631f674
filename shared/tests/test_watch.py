"""The watch view's pure core (summarize, rates) and its failure behaviour."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from rich.console import Console

from leadloop.watch import (
    DeliverySnapshot,
    EdgeUrls,
    FetchError,
    FunnelSnapshot,
    SourceCounts,
    edge_urls,
    fetch_exposition,
    rates,
    render_summary,
    render_view,
    run_watch,
    summarize,
    summarize_deliveries,
)

# What the metrics service serves: HELP/TYPE lines, _created samples, and metrics the
# view does not show (a histogram, a gauge) mixed in.
SAMPLE = """\
# HELP leadloop_leads_received_total Records read from leads.raw.
# TYPE leadloop_leads_received_total counter
leadloop_leads_received_total{source="web_form"} 120.0
leadloop_leads_received_total{source="wechat"} 77.0
leadloop_leads_received_total{source="trade_show"} 5.0
# HELP leadloop_leads_received_created Records read from leads.raw.
# TYPE leadloop_leads_received_created gauge
leadloop_leads_received_created{source="web_form"} 1.7726e+09
# HELP leadloop_leads_accepted_total Leads accepted.
# TYPE leadloop_leads_accepted_total counter
leadloop_leads_accepted_total{source="web_form"} 100.0
leadloop_leads_accepted_total{source="wechat"} 70.0
leadloop_leads_accepted_total{source="trade_show"} 5.0
# HELP leadloop_leads_duplicate_total Duplicates merged.
# TYPE leadloop_leads_duplicate_total counter
leadloop_leads_duplicate_total{source="web_form"} 8.0
leadloop_leads_duplicate_total{source="wechat"} 4.0
# HELP leadloop_leads_rejected_total Records rejected.
# TYPE leadloop_leads_rejected_total counter
leadloop_leads_rejected_total{reason="invalid_email",source="web_form"} 7.0
leadloop_leads_rejected_total{reason="missing_contact",source="web_form"} 5.0
leadloop_leads_rejected_total{reason="invalid_phone",source="wechat"} 3.0
# HELP leadloop_leads_assigned_total Assignment decisions.
# TYPE leadloop_leads_assigned_total counter
leadloop_leads_assigned_total{kind="initial",strategy="round_robin",team="team-us-west"} 60.0
leadloop_leads_assigned_total{kind="initial",strategy="sticky",team="team-us-west"} 10.0
leadloop_leads_assigned_total{kind="initial",strategy="least_loaded",team="team-cn-east"} 65.0
leadloop_leads_assigned_total{kind="pooled",strategy="pool",team="team-eu-events"} 5.0
leadloop_leads_assigned_total{kind="reassigned",strategy="least_loaded",team="team-cn-east"} 2.0
# HELP leadloop_sla_breaches_total Escalation ladder steps fired.
# TYPE leadloop_sla_breaches_total counter
leadloop_sla_breaches_total{kind="first_response",level="1",team="team-us-west"} 9.0
leadloop_sla_breaches_total{kind="first_response",level="1",team="team-cn-east"} 4.0
leadloop_sla_breaches_total{kind="first_response",level="10",team="team-cn-east"} 1.0
leadloop_sla_breaches_total{kind="first_response",level="2",team="team-cn-east"} 2.0
leadloop_sla_breaches_total{kind="stage_stall",level="1",team="team-us-west"} 3.0
# HELP leadloop_funnel_open_leads Open leads.
# TYPE leadloop_funnel_open_leads gauge
leadloop_funnel_open_leads{stage="assigned",team="team-us-west"} 12.0
# HELP leadloop_first_response_seconds Time to first touch.
# TYPE leadloop_first_response_seconds histogram
leadloop_first_response_seconds_bucket{le="60.0",priority="hot",team="team-us-west"} 3.0
leadloop_first_response_seconds_bucket{le="+Inf",priority="hot",team="team-us-west"} 4.0
leadloop_first_response_seconds_count{priority="hot",team="team-us-west"} 4.0
leadloop_first_response_seconds_sum{priority="hot",team="team-us-west"} 310.0
"""


def test_summarize_folds_the_exposition_into_the_funnel() -> None:
    snap = summarize(SAMPLE)

    assert snap.sources == {
        "trade_show": SourceCounts(received=5, accepted=5),
        "web_form": SourceCounts(received=120, accepted=100, duplicate=8, rejected=12),
        "wechat": SourceCounts(received=77, accepted=70, duplicate=4, rejected=3),
    }
    assert snap.totals() == {
        "received": 202,
        "accepted": 175,
        "duplicate": 12,
        "rejected": 15,
        "assigned": 142,
        "sla escalations": 19,
    }
    assert snap.rejected_by_reason == {
        "invalid_email": 7,
        "invalid_phone": 3,
        "missing_contact": 5,
    }
    # Summed over strategy.
    assert snap.assigned_by_team_kind == {
        ("team-cn-east", "initial"): 65,
        ("team-cn-east", "reassigned"): 2,
        ("team-eu-events", "pooled"): 5,
        ("team-us-west", "initial"): 70,
    }
    # Summed over team; levels in numeric order.
    assert list(snap.breaches_by_kind_level.items()) == [
        (("first_response", "1"), 13),
        (("first_response", "2"), 2),
        (("first_response", "10"), 1),
        (("stage_stall", "1"), 3),
    ]
    # Conservation per source: nothing in flight once the stream is quiet.
    assert {name: c.in_flight for name, c in snap.sources.items()} == {
        "trade_show": 0,
        "web_form": 0,
        "wechat": 0,
    }


def test_summarize_reads_what_prometheus_client_writes() -> None:
    registry = CollectorRegistry()
    received = Counter("leadloop_leads_received", "r", ["source"], registry=registry)
    rejected = Counter("leadloop_leads_rejected", "r", ["source", "reason"], registry=registry)
    Histogram("leadloop_assignment_latency_seconds", "l", registry=registry).observe(0.01)
    received.labels("lead_ads").inc(3)
    rejected.labels("lead_ads", "bad_signature").inc()

    snap = summarize(generate_latest(registry).decode())

    assert snap.sources == {"lead_ads": SourceCounts(received=3, rejected=1)}
    assert snap.sources["lead_ads"].in_flight == 2
    assert snap.rejected_by_reason == {"bad_signature": 1}


def test_summarize_of_an_empty_exposition_is_an_empty_funnel() -> None:
    assert summarize("") == FunnelSnapshot()
    assert FunnelSnapshot().received == 0


def test_summarize_rejects_text_that_is_not_an_exposition() -> None:
    with pytest.raises(ValueError, match="metric name"):
        summarize("<html><body>502 Bad Gateway</body></html>")


def test_rates_over_an_interval() -> None:
    before = FunnelSnapshot(sources={"web_form": SourceCounts(received=100, accepted=90)})
    after = FunnelSnapshot(
        sources={
            "web_form": SourceCounts(received=120, accepted=100),
            "wechat": SourceCounts(received=4, accepted=4),  # appeared meanwhile
        }
    )
    per_second = rates(before, after, 2.0)
    assert per_second["received"] == 12.0
    assert per_second["accepted"] == 7.0
    assert per_second["source:web_form"] == 10.0
    assert per_second["source:wechat"] == 2.0
    assert per_second["rejected"] == 0.0


def test_rates_count_a_reset_counter_from_zero() -> None:
    before = FunnelSnapshot(sources={"web_form": SourceCounts(received=500)})
    after = FunnelSnapshot(sources={"web_form": SourceCounts(received=6)})
    assert rates(before, after, 3.0)["received"] == 2.0
    assert rates(before, after, 0.0) == {}


def _render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_view_says_it_is_waiting_when_the_service_is_down() -> None:
    text = _render(
        render_view(
            "http://127.0.0.1:1/metrics", None, None, updated=None, error="connection refused"
        )
    )
    assert "waiting for metrics service" in text
    assert "connection refused" in text


def test_view_keeps_the_last_values_while_waiting() -> None:
    snap = summarize(SAMPLE)
    text = _render(render_view("u", snap, {"received": 2.5}, updated=None, error="timed out"))
    assert "waiting for metrics service" in text
    assert "202" in text
    assert "missing_contact" in text
    assert "team-eu-events" in text


def _fetches(
    *results: str | BaseException, edges: dict[str, str] | None = None
) -> Callable[[str, float], str]:
    """A stand-in for fetch_exposition that plays ``results`` in order for the metrics
    service (any URL ending in /metrics that ``edges`` does not name) and answers the
    URLs in ``edges`` with their text (others: refused)."""
    pending = iter(results)

    def fetch(url: str, timeout: float) -> str:
        if edges is not None and url in edges:
            return edges[url]
        if ":2/" in url or ":3/" in url:  # the edges next to port 1: not running
            raise FetchError("connection refused")
        result = next(pending)
        if isinstance(result, BaseException):
            raise result
        return result

    return fetch


def test_run_watch_survives_an_outage_and_prints_a_summary_on_ctrl_c() -> None:
    script = _fetches(
        FetchError("connection refused"),
        "not an exposition {",
        SAMPLE,
        FetchError("connection refused"),
        KeyboardInterrupt(),
    )
    out = io.StringIO()
    run_watch(
        "http://127.0.0.1:1/metrics",
        0.001,
        console=Console(file=out, width=200, color_system=None),
        fetch=script,
    )
    summary = out.getvalue()
    assert "received" in summary
    assert "202" in summary
    assert "invalid_email" in summary


def test_run_watch_without_any_metrics_says_so() -> None:
    script = _fetches(FetchError("connection refused"), KeyboardInterrupt())
    out = io.StringIO()
    run_watch(
        "http://127.0.0.1:1/metrics",
        0.001,
        console=Console(file=out, width=200, color_system=None),
        fetch=script,
    )
    assert "no metrics were read from http://127.0.0.1:1/metrics" in out.getvalue()


def test_run_watch_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        run_watch("file:///etc/passwd", 1.0)
    with pytest.raises(ValueError, match="positive"):
        run_watch("http://127.0.0.1/metrics", 0)


@pytest.fixture
def metrics_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = SAMPLE.encode() if self.path == "/metrics" else b"not found"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_reads_the_exposition(metrics_server: str) -> None:
    assert summarize(fetch_exposition(f"{metrics_server}/metrics", 2.0)).received == 202


def test_fetch_reports_http_errors_and_refused_connections(metrics_server: str) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_exposition(f"{metrics_server}/nope", 2.0)
    # Port 1 (tcpmux) is privileged and unused on a development machine.
    with pytest.raises(FetchError):
        fetch_exposition("http://127.0.0.1:1/metrics", 2.0)


# --- the edges: hand-offs per target, notices per channel ---------------------------


def _handoff_exposition() -> str:
    # As services/handoff's HandoffMetrics declares it.
    registry = CollectorRegistry()
    attempts = Counter(
        "leadloop_handoff_deliveries", "a", ["target", "outcome", "status_class"], registry=registry
    )
    attempts.labels("local-crm", "delivered", "2xx").inc(40)
    attempts.labels("local-crm", "retried", "5xx").inc(3)
    attempts.labels("local-crm", "retried", "none").inc(2)
    attempts.labels("salesforce", "failed", "4xx").inc(1)
    Histogram("leadloop_handoff_latency_seconds", "l", ["target"], registry=registry).labels(
        "local-crm"
    ).observe(0.2)
    return generate_latest(registry).decode()


def _notifier_exposition() -> str:
    # As services/notifier's PrometheusMetrics declares it.
    registry = CollectorRegistry()
    sent = Counter(
        "leadloop_notifier_sent_total", "s", ["channel", "kind", "outcome"], registry=registry
    )
    sent.labels("wecom_app", "new_lead", "delivered").inc(25)
    sent.labels("wecom_app", "remind_owner", "delivered").inc(7)
    sent.labels("wecom_app", "notify_manager", "retry").inc(2)
    sent.labels("wecom_robot", "pooled_lead", "delivered").inc(4)
    return generate_latest(registry).decode()


def test_summarize_deliveries_folds_both_edges() -> None:
    snap = summarize_deliveries(_handoff_exposition(), _notifier_exposition(), SAMPLE)

    assert snap.handoffs == {  # summed over status_class
        ("local-crm", "delivered"): 40,
        ("local-crm", "retried"): 5,
        ("salesforce", "failed"): 1,
    }
    assert snap.notices == {
        ("wecom_app", "new_lead", "delivered"): 25,
        ("wecom_app", "notify_manager", "retry"): 2,
        ("wecom_app", "remind_owner", "delivered"): 7,
        ("wecom_robot", "pooled_lead", "delivered"): 4,
    }
    assert snap.handed_off == 40
    assert snap.notified == 36
    assert summarize_deliveries() == DeliverySnapshot()
    with pytest.raises(ValueError, match="metric name"):
        summarize_deliveries("<html><body>502 Bad Gateway</body></html>")


def test_edge_urls_follow_the_metrics_port_unless_set() -> None:
    assert edge_urls("http://127.0.0.1:28084/metrics", {}) == EdgeUrls(
        "http://127.0.0.1:28085/metrics", "http://127.0.0.1:28086/metrics"
    )
    env = {"LEADLOOP_NOTIFIER_METRICS_URL": "http://notifier.internal/metrics"}
    assert edge_urls("http://127.0.0.1:18084/metrics", env) == EdgeUrls(
        "http://127.0.0.1:18085/metrics", "http://notifier.internal/metrics"
    )
    # No port to count from: not read unless named.
    assert edge_urls("http://metrics.internal/metrics", {}) == EdgeUrls("", "")


def test_view_shows_hand_offs_per_target_and_notices_per_channel() -> None:
    deliveries = summarize_deliveries(_handoff_exposition(), _notifier_exposition())
    text = _render(
        render_view(
            "u",
            summarize(SAMPLE),
            None,
            updated=None,
            error=None,
            deliveries=deliveries,
            edge_errors={"notifier": "waiting at http://127.0.0.1:28086/metrics (refused)"},
        )
    )
    assert "hand-offs per CRM target" in text
    assert "notifications per channel" in text
    lines = text.splitlines()
    cells = [c.strip() for c in next(line for line in lines if "local-crm" in line).split("│")]
    at = cells.index("local-crm")
    assert cells[at + 1 : at + 5] == ["40", "5", "0", "0"]  # delivered retried failed cancelled
    assert any("wecom_app" in line and "remind_owner" in line for line in lines)
    assert any("pooled_lead" in line for line in lines)
    assert "notifier metrics: waiting at http://127.0.0.1:28086/metrics" in text


def test_summary_without_deliveries_says_none_yet() -> None:
    text = _render(render_summary(summarize(SAMPLE), DeliverySnapshot()))
    assert "hand-offs per CRM target" in text
    assert text.count("none yet") >= 2


def test_run_watch_reads_the_edges_and_prints_them_in_the_summary() -> None:
    edges = EdgeUrls("http://127.0.0.1:5/metrics", "http://127.0.0.1:6/metrics")
    script = _fetches(
        SAMPLE,
        KeyboardInterrupt(),
        edges={edges.handoff: _handoff_exposition(), edges.notifier: _notifier_exposition()},
    )
    out = io.StringIO()
    run_watch(
        "http://127.0.0.1:4/metrics",
        0.001,
        console=Console(file=out, width=200, color_system=None),
        fetch=script,
        edges=edges,
    )
    summary = out.getvalue()
    assert "local-crm" in summary
    assert "remind_owner" in summary
    assert "202" in summary
