"""The live wallboard: the funnel, SLA attainment, pipeline, outcomes and the forecast."""

from __future__ import annotations

from leadloop_metrics.dashboards.model import Board, Panel, q

__all__ = ["WALLBOARD"]

WALLBOARD = Board(
    uid="leadloop-wallboard",
    title="leadloop — live wallboard",
    description="Today's leads, the funnel, speed to first touch, SLA and team load.",
    rows=(
        (
            "Intake",
            (
                Panel(
                    "Leads today by channel",
                    "bargauge",
                    (
                        q(
                            "sum by (source) (increase(leadloop_leads_received_total[1d]))",
                            "{{source}}",
                        ),
                    ),
                    "Records received per channel over the last 24 hours. A channel far below "
                    "its usual bar is silent or broken: see the LeadloopChannelSilent alert.",
                ),
                Panel(
                    "Intake per minute",
                    "timeseries",
                    (q("leadloop:leads_received:rate5m * 60", "{{source}}"),),
                    "Leads per minute per channel (5-minute rate).",
                ),
                Panel(
                    "Rejected share (10 min)",
                    "stat",
                    (
                        q(
                            "sum(rate(leadloop_leads_rejected_total[10m])) "
                            "/ sum(rate(leadloop_leads_received_total[10m]))"
                        ),
                    ),
                    "Share of received records rejected. Red above 5%: open the on-call "
                    "dashboard's rejects by reason and fix the channel's adapter or secret.",
                    unit="percentunit",
                    red_at=0.05,
                ),
            ),
        ),
        (
            "Funnel",
            (
                Panel(
                    "Funnel (24 h)",
                    "bargauge",
                    (
                        q(
                            "sum by (stage) (increase(leadloop_funnel_entered_total[1d]))",
                            "{{stage}}",
                        ),
                    ),
                    "Leads that entered each stage in the last 24 hours.",
                ),
                Panel(
                    "Conversion from accepted (24 h)",
                    "bargauge",
                    (q("leadloop:funnel_conversion:ratio_1d", "{{stage}}"),),
                    "Share of the last day's accepted leads that reached each stage. A stage "
                    "whose bar drops against the one before it is the bottleneck.",
                    unit="percentunit",
                ),
                Panel(
                    "Win rate by team",
                    "bargauge",
                    (q("leadloop:win_rate:ratio", "{{team}}"),),
                    "Won out of closed (won + lost) leads per team since counting began.",
                    unit="percentunit",
                ),
                Panel(
                    "Time in stage (median, 24 h)",
                    "bargauge",
                    (
                        q(
                            "histogram_quantile(0.5, sum by (stage, le) "
                            "(rate(leadloop_stage_duration_seconds_bucket[1d])))",
                            "{{stage}}",
                        ),
                    ),
                    "How long leads that left a stage in the last day had spent in it. A "
                    "stage whose time grows while its conversion drops is where deals stall: "
                    "look at that stage's open leads per team and their follow-ups.",
                    unit="s",
                ),
            ),
        ),
        (
            "Speed to first touch",
            (
                Panel(
                    "Time to first touch (p50 / p90)",
                    "timeseries",
                    (
                        q(
                            "histogram_quantile(0.5, sum by (le) "
                            "(rate(leadloop_first_response_seconds_bucket[1h])))",
                            "p50",
                        ),
                        q(
                            "histogram_quantile(0.9, sum by (le) "
                            "(rate(leadloop_first_response_seconds_bucket[1h])))",
                            "p90",
                        ),
                    ),
                    "Human delay: seconds from a rep's assignment to the first call, email, "
                    "message, meeting or visit. Red above 5 minutes: odds of reaching the "
                    "lead fall steeply; see who is slow in the SLA row.",
                    unit="s",
                    red_at=300,
                ),
                Panel(
                    "First touch within 5 min (24 h)",
                    "bargauge",
                    (q("leadloop:first_response_within_5m:ratio_1d", "{{team}}"),),
                    "Share of first touches within 5 minutes, per team. Red below 80%.",
                    unit="percentunit",
                    red_at=0.8,
                    red_below=True,
                ),
                Panel(
                    "Assignment latency p95",
                    "stat",
                    (
                        q(
                            "histogram_quantile(0.95, sum by (le) "
                            "(rate(leadloop_assignment_latency_seconds_bucket[15m])))"
                        ),
                    ),
                    "System delay: seconds from acceptance to the assignment decision. Red "
                    "above 1 s: the assignment service lags (on-call dashboard).",
                    unit="s",
                    red_at=1,
                ),
            ),
        ),
        (
            "SLA and teams",
            (
                Panel(
                    "SLA attainment (24 h)",
                    "bargauge",
                    (q("leadloop:sla_attainment:ratio_1d", "{{team}}"),),
                    "Share of the last day's assignments whose first-response clock did not "
                    "run out, per team. Red below 90%: talk to the team's manager.",
                    unit="percentunit",
                    red_at=0.9,
                    red_below=True,
                ),
                Panel(
                    "SLA breaches (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (team, kind) (increase(leadloop_sla_breaches_total[1h]))",
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "Escalation steps fired in the last hour per team and kind.",
                ),
                Panel(
                    "Lead pool (公海)",
                    "stat",
                    (
                        # A team nobody's lead was pooled for shows 0, not nothing.
                        q(
                            "sum by (team) (leadloop_pool_leads) "
                            "or 0 * sum by (team) (leadloop_funnel_open_leads)",
                            "{{team}}",
                        ),
                    ),
                    "Open leads in each team's pool, owned by nobody. Red from 20: reps are "
                    "at capacity or away; rebalance capacity or pull leads from the pool.",
                    red_at=20,
                ),
                Panel(
                    "Open leads per team and stage",
                    "bargauge",
                    (
                        q(
                            "sum by (team, stage) (leadloop_funnel_open_leads)",
                            "{{team}} {{stage}}",
                        ),
                    ),
                    "Each team's load: open leads by stage (`unassigned`: no decision yet).",
                    width=12,
                ),
                Panel(
                    "Pipeline amount per stage",
                    "bargauge",
                    (q("sum by (stage) (leadloop_pipeline_amount)", "{{stage}}"),),
                    "Latest amount of the open leads per stage.",
                    unit="currencyUSD",
                    width=6,
                ),
                Panel(
                    "Won amount (24 h)",
                    "stat",
                    (q("sum by (team) (increase(leadloop_won_amount_total[1d]))", "{{team}}"),),
                    "Amount won in the last 24 hours, per team.",
                    unit="currencyUSD",
                    width=6,
                ),
                Panel(
                    "Losses by stage and reason (24 h)",
                    "table",
                    (
                        q(
                            "sum by (stage, reason) (increase(leadloop_leads_lost_total[1d]))",
                            "{{stage}} {{reason}}",
                        ),
                    ),
                    "Loss attribution: lost leads by the furthest stage they reached and the "
                    "reason. A stage that grows here fires LeadloopStageLossAboveBaseline.",
                    width=24,
                ),
            ),
        ),
        (
            "Forecast",
            (
                Panel(
                    "Forecast this month",
                    "bargauge",
                    (
                        q(
                            'sum by (team, kind) (leadloop_forecast_amount{month="current"})',
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "Per team, as of the latest Monday or 1st: won so far plus the open leads "
                    "the CRM dates in this month — weighted by the team's learned chance per "
                    "stage, only those in negotiation (commit), or all (best case). A weighted "
                    "bar far below the target means the month needs pipeline now.",
                    unit="currencyUSD",
                ),
                Panel(
                    "Forecast next month",
                    "bargauge",
                    (
                        q(
                            'sum by (team, kind) (leadloop_forecast_amount{month="next"})',
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "The same for next month: what is dated to close there already.",
                    unit="currencyUSD",
                ),
                Panel(
                    "Forecast accuracy, last month",
                    "bargauge",
                    (
                        q(
                            "min by (team, age) (leadloop_forecast_accuracy_ratio)",
                            "{{team}} {{age}} weeks before",
                        ),
                    ),
                    "1 − |forecast − won| / won for last month, by how many weeks before the "
                    "month's end the forecast was taken. Red below 70%: the expected close "
                    "dates or the stages in the CRM are not kept up to date.",
                    unit="percentunit",
                    red_at=0.7,
                    red_below=True,
                ),
            ),
        ),
    ),
)
