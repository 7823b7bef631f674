"""Routing cards to targets: pool support, the owner's id per CRM, the card's fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadloop_handoff.domain.deliveries import (
    Due,
    TargetPlan,
    build_card,
    owner_crm_id,
    targets_for,
)

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SF = TargetPlan("salesforce", True, True, owner_ids={"rep-1": "005A"}, pool={"team-cn": "00GQ"})
HOOK = TargetPlan("webhook", False, True)


def test_pooled_leads_go_only_to_targets_with_a_pool() -> None:
    assert targets_for("pooled", [SF, HOOK]) == [SF]
    assert targets_for("reassigned", [SF, HOOK]) == [SF, HOOK]


def test_owner_id_prefers_the_roster_then_the_map_then_the_pool() -> None:
    assert owner_crm_id(SF, "rep-1", "team-cn", {"salesforce": "005R"}) == "005R"
    assert owner_crm_id(SF, "rep-1", "team-cn", {"hubspot": "77"}) == "005A"
    assert owner_crm_id(SF, "rep-2", "team-cn", {}) is None
    assert owner_crm_id(SF, None, "team-cn", {}) == "00GQ"


def _due(lead: dict[str, object] | None) -> Due:
    return Due(
        target="salesforce",
        lead_id="L1",
        assignment_id="A1",
        sequence=2,
        kind="reassigned",
        event={
            "owner_id": "rep-1",
            "previous_owner_id": "rep-0",
            "team_id": "team-cn",
            "rule_id": "cn",
            "rule_version": "v3",
            "strategy": "round_robin",
            "reason": "rule cn: round robin among 3",
        },
        attempts=0,
        assigned_at=AT,
        lead=lead,
        owner_external_ids={},
    )


LEAD = {
    "source": "web_form",
    "source_lead_id": "f-1",
    "name": "张三",
    "email": "zhang@example.cn",
    "phone": "+8613800000000",
    "company": "Acme",
    "title": "CTO",
    "message": "call me",
    "country": "CN",
    "region": None,
    "city": "Shanghai",
    "industry": None,
    "product": "crm",
    "company_size": 50,
    "budget": 1000.0,
    "campaign": None,
    "attributes": {"utm": "x"},
    "score": 80,
    "priority": "hot",
    "is_returning": True,
    "previous_owner_id": "rep-0",
    "occurred_at": AT,
    "erased_at": None,
}


def test_card_carries_contact_routing_and_decision() -> None:
    card = build_card(_due(LEAD), "005A")
    assert (card.name, card.email, card.phone, card.company) == (
        "张三",
        "zhang@example.cn",
        "+8613800000000",
        "Acme",
    )
    assert (card.owner_crm_id, card.team_id, card.rule_id, card.strategy) == (
        "005A",
        "team-cn",
        "cn",
        "round_robin",
    )
    assert card.idempotency_key == "L1:A1"
    assert card.payload()["contact"]["email"] == "zhang@example.cn"
    assert card.payload()["routing"]["city"] == "Shanghai"


def test_no_card_for_an_erased_or_unknown_lead() -> None:
    with pytest.raises(ValueError, match="erased"):
        build_card(_due({**LEAD, "erased_at": AT}), None)
    with pytest.raises(ValueError, match="erased"):
        build_card(_due(None), None)
