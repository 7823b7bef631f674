"""The Alertmanager bridge: one webhook notification becomes one chat notice.

Apart from the fold because it answers an HTTP call, not input events, and because what
it carries pages: it is sent at once, outside quiet hours, to the route's channel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from leadloop_notifier.domain.model import Notice

__all__ = ["MAX_ALERTS_LISTED", "alert_notice"]

#: At most this many alerts are listed in one chat message (the rest are counted).
MAX_ALERTS_LISTED = 20


def alert_notice(
    route_name: str,
    channel: str,
    body: Mapping[str, Any],
    now: datetime,
) -> Notice:
    """One chat message for one Alertmanager webhook notification (payload v4).

    Deduplicated on (groupKey, status, the alerts' fingerprints): Alertmanager repeats a
    notification (its retries, ``repeat_interval``, an HA pair) with the same key. Not
    subject to quiet hours: it is what pages.
    """
    status = str(body.get("status", "firing"))
    alerts = [a for a in body.get("alerts", []) if isinstance(a, Mapping)]
    fingerprints = sorted(str(a.get("fingerprint", "")) for a in alerts)
    digest = hashlib.sha256(
        "\x1f".join([str(body.get("groupKey", "")), status, *fingerprints]).encode()
    ).hexdigest()[:32]
    listed = []
    for alert in alerts[:MAX_ALERTS_LISTED]:
        labels = alert.get("labels")
        labels = labels if isinstance(labels, Mapping) else {}
        notes = alert.get("annotations")
        notes = notes if isinstance(notes, Mapping) else {}
        listed.append(
            {
                "status": str(alert.get("status", status)),
                "alertname": str(labels.get("alertname", "")),
                "severity": str(labels.get("severity", "")),
                "team": str(labels.get("team", "")),
                "lead_id": str(labels.get("lead_id", "")),
                "summary": str(notes.get("summary", notes.get("description", "")))[:300],
                # Alert text is the operators' own (rule annotations), kept as written;
                # HTML is escaped by the template, and robots get plain text or markdown.
                "starts_at": str(alert.get("startsAt", "")),
            }
        )
    return Notice(
        notice_key=f"alert:{digest}",
        recipient=f"alert:{route_name}",
        channel=channel,
        kind="alert",
        team_id=route_name,
        lead_id=None,
        payload={
            "kind": "alert",
            "status": status,
            "alerts": listed,
            "more": max(0, len(alerts) - MAX_ALERTS_LISTED),
        },
        fallbacks=(),
        origin_at=now,
        due_at=now,
        coalesce_s=0,
    )
