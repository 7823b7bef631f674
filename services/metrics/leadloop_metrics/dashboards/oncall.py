"""The on-call view: what is breaching, paging or stalled right now."""

from __future__ import annotations

from leadloop_metrics.dashboards.model import Board, Panel, q

__all__ = ["ONCALL"]

ONCALL = Board(
    uid="leadloop-oncall",
    title="leadloop — on-call",
    description="Firing escalations, lag, rejects and the health of the pipeline.",
    rows=(
        (
            "Escalations",
            (
                Panel(
                    "Open SLA clocks",
                    "stat",
                    (q("sum by (kind) (leadloop_sla_open_clocks)", "{{kind}}"),),
                    "Breached SLA clocks not yet resolved, per kind. Red from 10: page the "
                    "team's manager; reassign or return leads to the pool.",
                    red_at=10,
                ),
                Panel(
                    "Firing alerts",
                    "stat",
                    (q('count(ALERTS{alertstate="firing"}) or vector(0)'),),
                    "leadloop alerts firing now (Alertmanager shows which).",
                    red_at=1,
                ),
                Panel(
                    "Breaches by level (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (kind, level) (increase(leadloop_sla_breaches_total[1h]))",
                            "{{kind}} level {{level}}",
                        ),
                    ),
                    "Escalation steps per level: level 3 and up means leads were taken away "
                    "from their owner or on-call was paged.",
                ),
            ),
        ),
        (
            "Lag and health",
            (
                Panel(
                    "Leads waiting for assignment",
                    "stat",
                    (q('sum(leadloop_funnel_open_leads{team="unassigned"}) or vector(0)'),),
                    "Accepted leads without an assignment decision. Red from 50: the "
                    "assignment service lags or stopped (LeadloopAssignmentLagging).",
                    red_at=50,
                ),
                Panel(
                    "Assignment decisions per minute",
                    "timeseries",
                    (
                        q(
                            "sum by (kind) (rate(leadloop_leads_assigned_total[5m])) * 60",
                            "{{kind}}",
                        ),
                    ),
                    "Initial, reassigned, reclaimed and pooled decisions per minute.",
                ),
                Panel(
                    "Metrics scrape",
                    "timeseries",
                    (
                        q('up{job="leadloop-metrics"}', "up"),
                        q('scrape_duration_seconds{job="leadloop-metrics"}', "scrape seconds"),
                    ),
                    "1 while Prometheus scrapes the metrics service, and how long a scrape "
                    "takes. 0: every wallboard number is stale (LeadloopMetricsDown).",
                ),
            ),
        ),
        (
            "Rejects",
            (
                Panel(
                    "Rejects per minute by channel and reason",
                    "timeseries",
                    (q("leadloop:leads_rejected:rate5m * 60", "{{source}} {{reason}}"),),
                    "Why records are rejected. A new reason on one channel usually means the "
                    "channel changed its payload or its signing secret: fix, then replay.",
                    width=12,
                ),
                Panel(
                    "Received in the last 30 min by channel",
                    "bargauge",
                    (
                        q(
                            "sum by (source) (increase(leadloop_leads_received_total[30m]))",
                            "{{source}}",
                        ),
                    ),
                    "A channel at 0 that normally sends is silent (LeadloopChannelSilent).",
                    width=12,
                ),
            ),
        ),
    ),
)
