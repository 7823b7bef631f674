"""Small pure helpers every vendor's field mapping uses."""

from __future__ import annotations

from collections.abc import Mapping

from leadloop_handoff.domain.cards import LeadCard

__all__ = ["crm_owner", "split_name", "truncate"]


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """(first, last) from a display name: the last whitespace-separated word is the last
    name ("Jo van Dijk" -> "Jo van", "Dijk"); a name without spaces ("张三") is all last
    name, because CRMs require a last name and cannot split a CJK name reliably."""
    if name is None or not name.strip():
        return None, None
    head, _, tail = name.strip().rpartition(" ")
    return (head.strip() or None), tail


def truncate(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters: a CRM refuses a whole record for one long
    field (Salesforce STRING_TOO_LONG), and a lead is worth more than its last words."""
    if value is None:
        return None
    return value if len(value) <= limit else value[:limit]


def crm_owner(card: LeadCard, owner_ids: Mapping[str, str], pool: Mapping[str, str]) -> str | None:
    """The CRM user or queue that should own the record.

    A pooled card (or one without an owner) goes to the team's pool entry. An owned card
    uses the CRM id carried on the card (crm.reps ``external_ids``), else the target's
    ``owner_ids`` map; None when neither knows the rep (the CRM keeps its default owner).
    """
    if card.kind == "pooled" or card.owner_id is None:
        return pool.get(card.team_id)
    return card.owner_crm_id or owner_ids.get(card.owner_id)
