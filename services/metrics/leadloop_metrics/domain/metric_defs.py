"""Every metric leadloop serves, with a comment each. Nothing outside this list is served.

Label values come only from bounded sets: configured sources and teams (others become
``other``), and enum values. Never a lead id, email, phone or name. The bound on the
number of series follows from the label sets: see :func:`series_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ASSIGNMENT_LATENCY_BUCKETS",
    "DERIVED",
    "FIRST_RESPONSE_BUCKETS",
    "FOLLOWUP_STATUSES",
    "FORECAST_AGES",
    "FORECAST_KINDS",
    "FORECAST_MONTHS",
    "LEDGER_STATES",
    "METRICS",
    "SATISFACTION_BUCKETS",
    "STAGE_DURATION_BUCKETS",
    "MetricDef",
    "served_value",
    "stored_names",
]

#: Seconds from a lead's first owner assignment to its first touch: one minute (the
#: "answer within 5 minutes" target sits between two buckets) to one week.
FIRST_RESPONSE_BUCKETS: tuple[float, ...] = (
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    172800.0,
    604800.0,
)
#: Seconds from acceptance to the first assignment decision: milliseconds when healthy,
#: up to a minute when the assignment service lags.
ASSIGNMENT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


#: Customer satisfaction scores 1-5: one bucket per score (``le="5.0"`` is every score).
SATISFACTION_BUCKETS: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)

#: Seconds a lead spent in a funnel stage: five minutes to a quarter of a year (a deal
#: in negotiation for weeks is normal, a lead left `new` for a day is not).
STAGE_DURATION_BUCKETS: tuple[float, ...] = (
    300.0,
    3600.0,
    14400.0,
    86400.0,
    259200.0,
    604800.0,
    1209600.0,
    2592000.0,
    7776000.0,
)


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    #: Set by the forecast job from its snapshots (not folded from the facts), so
    #: reconcile, which recomputes the facts' series, leaves it out.
    derived: bool = False


_DEFS = (
    # Every record read from leads.raw, by channel (conservation: = accepted +
    # duplicate + rejected).
    MetricDef(
        "leadloop_leads_received_total", "counter", ("source",), "Records read from leads.raw."
    ),
    # New leads persisted and published on leads.accepted.
    MetricDef("leadloop_leads_accepted_total", "counter", ("source",), "Leads accepted."),
    # Records whose (source, source_lead_id) was already received.
    MetricDef(
        "leadloop_leads_duplicate_total",
        "counter",
        ("source",),
        "Records recognised as duplicates.",
    ),
    # Records sent to leads.rejected, by stable reason code.
    MetricDef(
        "leadloop_leads_rejected_total",
        "counter",
        ("source", "reason"),
        "Records rejected, by reason.",
    ),
    # Assignment decisions: initial, reassigned, reclaimed or pooled.
    MetricDef(
        "leadloop_leads_assigned_total",
        "counter",
        ("team", "strategy", "kind"),
        "Assignment decisions.",
    ),
    # Escalation ladder steps fired (each step once).
    MetricDef(
        "leadloop_sla_breaches_total",
        "counter",
        ("kind", "level", "team"),
        "SLA escalation steps fired.",
    ),
    # Fired steps later resolved by a touch, a reassignment or closing the lead.
    MetricDef(
        "leadloop_sla_resolved_total",
        "counter",
        ("kind", "level", "team"),
        "SLA escalation steps resolved.",
    ),
    # Leads that entered a funnel stage (each lead once per stage), by channel: the
    # ratio of two stages is the conversion between them. Counted once the lead's
    # acceptance (its source) is known.
    MetricDef(
        "leadloop_funnel_entered_total",
        "counter",
        ("stage", "source"),
        "Leads that entered a funnel stage.",
    ),
    # Leads open (neither won nor lost) in each stage now, per owning team
    # (`unassigned` before the first decision). A pooled lead without a CRM stage is `new`.
    MetricDef(
        "leadloop_funnel_open_leads",
        "gauge",
        ("stage", "team"),
        "Open leads per stage and team.",
    ),
    # Won leads and their amount, by the team that owned the lead when the win became
    # known and by channel.
    MetricDef("leadloop_leads_won_total", "counter", ("team", "source"), "Leads won."),
    MetricDef(
        "leadloop_won_amount_total",
        "counter",
        ("team", "source"),
        "Amount of the leads won (currency units of the CRM).",
    ),
    # Repeat business: the wins above (same team, counted with them) of leads whose
    # customer — the same person by email or phone — had won a lead before
    # (leads.accepted's customer_won_before). Its increase over the wins' is the
    # repurchase rate.
    MetricDef(
        "leadloop_repurchases_total",
        "counter",
        ("team",),
        "Leads won from customers who had won a lead before.",
    ),
    # Lost leads by the furthest open stage they had reached (loss attribution), their
    # loss reason and owning team.
    MetricDef(
        "leadloop_leads_lost_total",
        "counter",
        ("stage", "reason", "team"),
        "Leads lost, by the stage where they were lost and the reason.",
    ),
    # Breached SLA clocks not yet resolved: per lead, each (policy, kind) with a fired
    # ladder step that no resolution has closed.
    MetricDef(
        "leadloop_sla_open_clocks",
        "gauge",
        ("kind",),
        "Breached SLA clocks not yet resolved.",
    ),
    # Human delay: first owner assignment to the first touch (call, email, message,
    # meeting, visit; a note is not a touch).
    MetricDef(
        "leadloop_first_response_seconds",
        "histogram",
        ("team", "priority"),
        "Seconds from the first owner assignment to the first touch.",
        FIRST_RESPONSE_BUCKETS,
    ),
    # Time in stage: from the moment a lead first entered a stage to the moment it first
    # entered the next one (by the events' own times: accepted, first owner, first touch,
    # the CRM's stage changes), per stage left and the team owning the lead then. Each
    # stage is observed once per lead, when the lead is known to have left it; going
    # back to a stage entered before is not entering a new one.
    MetricDef(
        "leadloop_stage_duration_seconds",
        "histogram",
        ("stage", "team"),
        "Seconds a lead spent in a funnel stage before entering the next one.",
        STAGE_DURATION_BUCKETS,
    ),
    # System delay: lead accepted to its first assignment decision (pooled included).
    MetricDef(
        "leadloop_assignment_latency_seconds",
        "histogram",
        (),
        "Seconds from acceptance to the first assignment decision.",
        ASSIGNMENT_LATENCY_BUCKETS,
    ),
    # Sum of the latest known amount of the open leads, per stage and team.
    MetricDef(
        "leadloop_pipeline_amount",
        "gauge",
        ("stage", "team"),
        "Amount of the open leads per stage and team.",
    ),
    # Open leads waiting in a team's pool (公海): assigned to a team, owned by nobody.
    MetricDef(
        "leadloop_pool_leads",
        "gauge",
        ("team",),
        "Open leads in a team's pool.",
    ),
    # The leak ledger: every accepted lead in exactly one state now (LEDGER_STATES), by
    # its team (`unassigned` while awaiting assignment). The sum over states is the
    # number of accepted leads; `silent` is a lead owned and open that nobody touched or
    # moved for the configured business time (a leak nobody declared).
    MetricDef(
        "leadloop_leads_by_state",
        "gauge",
        ("state", "team"),
        "Accepted leads by where they are now (the leak ledger).",
    ),
    # Customer satisfaction (客户满意度), 1-5, each rating the CRM reported once, by the
    # team owning the lead when the rating was counted (a rating waits for the team).
    # The average is _sum / _count; the buckets are the distribution.
    MetricDef(
        "leadloop_satisfaction_score",
        "histogram",
        ("team",),
        "Customer satisfaction scores (1-5) reported by the CRM.",
        SATISFACTION_BUCKETS,
    ),
    # --- per rep: `rep` is a roster rep id (others: `other`), `team` the rep's team in
    # the roster. Rep ids are not personal data; names and contacts never reach a label.
    # Open leads the rep owns now.
    MetricDef("leadloop_rep_open_leads", "gauge", ("team", "rep"), "Open leads a rep owns."),
    # First owner's assignment to the lead's first touch, attributed to the first owner.
    MetricDef(
        "leadloop_rep_first_response_seconds",
        "histogram",
        ("team", "rep"),
        "Seconds from a rep's assignment as first owner to the lead's first touch.",
        FIRST_RESPONSE_BUCKETS,
    ),
    # Touches (calls, emails, messages, meetings, visits; not notes) the rep logged.
    MetricDef("leadloop_rep_touches_total", "counter", ("team", "rep"), "Touches a rep logged."),
    # SLA ladder steps fired on leads the rep owned, by level.
    MetricDef(
        "leadloop_rep_sla_breaches_total",
        "counter",
        ("team", "rep", "level"),
        "SLA escalation steps fired on a rep's leads.",
    ),
    # Outcomes by the rep who owned the lead when the outcome became known.
    MetricDef("leadloop_rep_leads_won_total", "counter", ("team", "rep"), "Leads a rep won."),
    MetricDef(
        "leadloop_rep_won_amount_total",
        "counter",
        ("team", "rep"),
        "Amount of the leads a rep won (currency units of the CRM).",
    ),
    MetricDef("leadloop_rep_leads_lost_total", "counter", ("team", "rep"), "Leads a rep lost."),
    # Leads moved away from the rep: `reassigned` to another rep, `reclaimed` to the pool.
    MetricDef(
        "leadloop_rep_leads_taken_total",
        "counter",
        ("team", "rep", "kind"),
        "Leads taken from a rep by reassignment or reclaim.",
    ),
    # Customer satisfaction scores about the rep (ratings that name no rep: none).
    MetricDef(
        "leadloop_rep_satisfaction_score",
        "histogram",
        ("team", "rep"),
        "Customer satisfaction scores (1-5) about a rep.",
        SATISFACTION_BUCKETS,
    ),
    # 有效跟进: the leads whose first response a rep owed (as first owner), by how it
    # went (FOLLOWUP_STATUSES). A gauge: a first-response step that reaches the metrics
    # after the touch moves the lead from within_sla to late, as it should.
    MetricDef(
        "leadloop_rep_followups",
        "gauge",
        ("team", "rep", "status"),
        "Leads a rep owed a first response to, by whether it came within the SLA.",
    ),
)

#: The states of the leak ledger, in the order a lead usually passes them.
LEDGER_STATES: tuple[str, ...] = (
    "awaiting_assignment",
    "pooled",
    "owned_within_sla",
    "owned_breached",
    "silent",
    "won",
    "lost",
)

#: How a first response went: touched before any first-response step fired
#: (within_sla), touched after one fired (late), not touched and a step fired (missed),
#: not touched and nothing fired yet (pending).
FOLLOWUP_STATUSES: tuple[str, ...] = ("within_sla", "late", "missed", "pending")

#: The forecast's served months (forecast_gauges) and amounts (Forecast).
FORECAST_MONTHS: tuple[str, ...] = ("current", "next")
FORECAST_KINDS: tuple[str, ...] = ("weighted", "commit", "best_case")
#: Snapshot ages in whole weeks to the month's end (forecast.MAX_AGE is the last).
FORECAST_AGES: tuple[str, ...] = tuple(str(n) for n in range(9))

_FORECAST_DEFS = (
    # The pipeline forecast of the current and the next calendar month, as of the latest
    # snapshot (00:00 UTC on the 1st and every Monday): won so far plus the open leads
    # dated in the month by the CRM's expected close date — weighted by the team's
    # learned P(won | stage), only those in negotiation (commit), or all (best_case).
    MetricDef(
        "leadloop_forecast_amount",
        "gauge",
        ("team", "month", "kind"),
        "Forecast amount of the month per team (weighted, commit, best_case).",
        derived=True,
    ),
    # For the last closed month, 1 - |weighted forecast - won| / won per snapshot age
    # (whole weeks before the month's end). No series for a team that won nothing.
    MetricDef(
        "leadloop_forecast_accuracy_ratio",
        "gauge",
        ("team", "age"),
        "Accuracy of the last closed month's weighted forecast by snapshot age in weeks.",
        derived=True,
    ),
)

METRICS: dict[str, MetricDef] = {m.name: m for m in (*_DEFS, *_FORECAST_DEFS)}
#: The series the forecast job sets (reconcile leaves them out).
DERIVED: frozenset[str] = frozenset(m.name for m in METRICS.values() if m.derived)


def stored_names(definition: MetricDef) -> tuple[str, ...]:
    """The series names a metric is stored under (a histogram is three)."""
    if definition.kind == "histogram":
        n = definition.name
        return (f"{n}_bucket", f"{n}_sum", f"{n}_count")
    return (definition.name,)


#: Series stored in a smaller whole unit, so that sums are sums of integers and exact
#: in any order (float sums of cents or fractional seconds depend on the order):
#: amounts in hundredths, histogram sums in milliseconds.
STORED_SCALE: dict[str, int] = {
    "leadloop_won_amount_total": 100,
    "leadloop_rep_won_amount_total": 100,
    "leadloop_pipeline_amount": 100,
    "leadloop_forecast_amount": 100,
    **{f"{m.name}_sum": 1000 for m in _DEFS if m.kind == "histogram"},
}


def served_value(series_name: str, stored: float) -> float:
    """The value served for a stored one, in the metric's base unit."""
    scale = STORED_SCALE.get(series_name)
    return stored if scale is None else stored / scale
