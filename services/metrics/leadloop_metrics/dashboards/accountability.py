"""Team accountability: each rep's numbers, with team and rep variables."""

from __future__ import annotations

from leadloop_metrics.dashboards.model import Board, Panel, Variable, q

__all__ = ["ACCOUNTABILITY"]

#: A rep's series, filtered by the dashboard's variables.
_REP = 'team=~"$team", rep=~"$rep"'


def _per_rep_1d(metric: str) -> str:
    return f"sum by (team, rep) (increase({metric}{{{_REP}}}[1d]))"


ACCOUNTABILITY = Board(
    uid="leadloop-accountability",
    title="leadloop — team accountability",
    description="Per rep: load, follow-up, first response, breaches and outcomes; per "
    "team: the leak ledger and the loss rate with the leads that went silent.",
    variables=(
        # Every rep who has owned a lead has an open-leads series (0 when none is open).
        Variable("team", "Team", "leadloop_rep_open_leads", "team"),
        Variable("rep", "Rep", 'leadloop_rep_open_leads{team=~"$team"}', "rep"),
    ),
    # Day-long windows over every rep: a minute is fresh enough for a manager.
    refresh="1m",
    rows=(
        (
            "Reps",
            (
                Panel(
                    "Reps (24 h)",
                    "table",
                    (
                        q(
                            f"sum by (team, rep) (leadloop_rep_open_leads{{{_REP}}})",
                            column="Open leads",
                            decimals=0,
                        ),
                        q(_per_rep_1d("leadloop_rep_touches_total"), column="Touches", decimals=0),
                        q(
                            f"leadloop:rep_first_response:p50_1d{{{_REP}}}",
                            column="First response p50",
                            unit="s",
                        ),
                        q(
                            f"leadloop:rep_effective_followup:ratio{{{_REP}}}",
                            column="有效跟进率",
                            unit="percentunit",
                        ),
                        q(
                            _per_rep_1d("leadloop_rep_sla_breaches_total"),
                            column="SLA breaches",
                            decimals=0,
                        ),
                        q(_per_rep_1d("leadloop_rep_leads_won_total"), column="Won", decimals=0),
                        q(
                            _per_rep_1d("leadloop_rep_won_amount_total"),
                            column="Won amount",
                            unit="currencyUSD",
                        ),
                        q(_per_rep_1d("leadloop_rep_leads_lost_total"), column="Lost", decimals=0),
                        q(
                            _per_rep_1d("leadloop_rep_leads_taken_total"),
                            column="Leads taken",
                            decimals=0,
                        ),
                    ),
                    "One row per rep (`other`: reps not on the roster): open leads now; "
                    "touches, SLA escalation steps fired on their leads, wins, won amount, "
                    "losses and leads taken away (reassigned or reclaimed to the pool) in "
                    "the last 24 hours; the median first response of the last 24 hours; "
                    "有效跟进率 to date (first responses within the SLA out of those due). "
                    "Lowest 有效跟进率 first: a rep near the top with breaches and leads "
                    "taken is not following up; look at their open leads and load with "
                    "the team's manager before moving leads.",
                    width=24,
                    height=10,
                    sort_by="有效跟进率",
                ),
                Panel(
                    "有效跟进率 (effective follow-up rate)",
                    "timeseries",
                    (
                        q(f"leadloop:rep_effective_followup:ratio{{{_REP}}}", "{{rep}}"),
                        q('leadloop:effective_followup:ratio{team=~"$team"}', "team {{team}}"),
                    ),
                    "Per rep and per team, to date: of the leads whose first response the "
                    "rep owed as first owner and that are decided, the share touched before "
                    "any first-response escalation fired (leads not touched and not yet "
                    "due are left out). Red below 90%: the rep answers late or not at all; "
                    "check their load and shifts.",
                    unit="percentunit",
                    red_at=0.9,
                    red_below=True,
                ),
                Panel(
                    "First response per rep (p50 / p90, 24 h)",
                    "timeseries",
                    (
                        q(f"leadloop:rep_first_response:p50_1d{{{_REP}}}", "{{rep}} p50"),
                        q(f"leadloop:rep_first_response:p90_1d{{{_REP}}}", "{{rep}} p90"),
                    ),
                    "Seconds from a rep's assignment as first owner to the lead's first "
                    "touch, over the leads first touched in the last 24 hours. Red above 5 "
                    "minutes: the odds of reaching the lead fall steeply.",
                    unit="s",
                    red_at=300,
                ),
                Panel(
                    "SLA breaches by level per rep (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (rep, level) "
                            f"(increase(leadloop_rep_sla_breaches_total{{{_REP}}}[1h]))",
                            "{{rep}} level {{level}}",
                        ),
                    ),
                    "Escalation steps fired on each rep's leads in the last hour, by level "
                    "(1: the clock ran out; 3 and up: leads taken away or on-call paged).",
                ),
            ),
        ),
        (
            "Leaks",
            (
                Panel(
                    "Silent leads now",
                    "stat",
                    (
                        # A team with no silent lead shows 0, not nothing: the ledger
                        # holds every accepted lead, so no silent series means none.
                        q(
                            'sum by (team) (leadloop_leads_by_state{state="silent", '
                            'team=~"$team"}) or 0 * sum by (team) (leadloop_leads_by_state'
                            '{state!="awaiting_assignment", team=~"$team"})',
                            "{{team}}",
                        ),
                    ),
                    "Leads owned and open that nobody touched, assigned or moved for the "
                    "configured business days (5 by default): leaks nobody declared. Red "
                    "from 1: ask the owner to call or close them, or return them to the "
                    "pool.",
                    width=6,
                    red_at=1,
                ),
                Panel(
                    "Loss rate with and without silent leaks",
                    "timeseries",
                    (
                        q(
                            'leadloop:loss_rate_with_silent:ratio{team=~"$team"}',
                            "{{team}} with silent",
                        ),
                        q('leadloop:loss_rate_declared:ratio{team=~"$team"}', "{{team}} declared"),
                    ),
                    "Per team, from the ledger now: (lost + silent) / (won + lost + silent) "
                    "beside the declared loss rate lost / (won + lost) the CRM reports. The "
                    "gap is the silent leak: leads lost without anyone saying so.",
                    unit="percentunit",
                    width=18,
                ),
                Panel(
                    "Leak ledger: $team",
                    "timeseries",
                    (q('sum by (state) (leadloop_leads_by_state{team=~"$team"})', "{{state}}"),),
                    "Every accepted lead of the team in exactly one state, stacked: pooled, "
                    "owned within the SLA, owned and breached, silent, won, lost (the top "
                    "is the team's accepted leads). Leads awaiting assignment have no team "
                    "yet (on-call dashboard). A growing silent or breached band is where "
                    "leads leak.",
                    width=12,
                    height=8,
                    stacked=True,
                    repeat="team",
                ),
            ),
        ),
    ),
)
