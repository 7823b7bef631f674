"""Assignment's use case: decode → (under lock) load state → decide → persist → publish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import LeadAccepted, LeadAssigned
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_assignment.adapters.postgres import AssignmentStore
from leadloop_assignment.domain.planning import assigned_event, plan, state_scope
from leadloop_assignment.domain.routing import Decision, RoutingState
from leadloop_assignment.domain.rules import RuleSet

__all__ = ["AssignmentHandler"]

log = get_logger(__name__)


@dataclass(frozen=True)
class AssignmentHandler:
    store: AssignmentStore
    publisher: Publisher
    clock: Clock
    #: The rule set in force now (reloaded live by the adapter).
    rules: Callable[[], RuleSet]

    async def handle(self, values: Sequence[bytes]) -> list[LeadAssigned]:
        leads = [lead for v in values if (lead := _decode(v)) is not None]
        if not leads:
            return []
        rules = self.rules()
        now = self.clock.now()
        scope = state_scope(leads, rules, now)

        def planner(
            state: RoutingState, todo: Sequence[LeadAccepted]
        ) -> tuple[list[Decision], RoutingState, list[LeadAssigned]]:
            decisions, new_state = plan(todo, rules, state, now)
            by_id = {lead.lead_id: lead for lead in todo}
            events = [assigned_event(d, by_id[d.lead_id]) for d in decisions]
            return decisions, new_state, events

        events = await retrying(
            lambda: self.store.assign(leads, scope, planner), what="assign_batch"
        )
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])
        return events


def _decode(value: bytes) -> LeadAccepted | None:
    try:
        return LeadAccepted.model_validate_json(value)
    except ValidationError as exc:
        # leads.accepted is written by ingest only; an undecodable event is a contract
        # bug upstream. It is logged (kinds only, no values) and skipped, never retried.
        log.error("undecodable_lead_accepted", errors=exc.error_count())
        return None
