"""The roster the simulated CRM publishes on ``crm.reps``: who the reps are and where to
reach them.

The assignment rule set (``config/rules.yaml``) lists each team's reps and manager, but
carries no addresses; the notifier reaches people only through ``contacts`` on their
roster entry. So that ``make demo`` shows reminders and notices arriving somewhere, the
simulator plays the CRM's roster sync once at start: one :class:`RepUpdated` per rep,
with the team, manager, status, capacity and weight of the file (so assignment decides
exactly as it would from the file alone; the daily cap stays the file's) and an address
per demo channel made from the rep id.

The roster has no notion of a manager. A manager is published as a member of their team
marked ``away`` with no capacity and no weight: assignment never gives them a lead, and
the notifier can reach them for ``notify_manager`` notices in their team's calendar.

Pure: :func:`roster_from_rules` takes the parsed file and the time; only
:func:`load_rules` reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from leadloop.config_file import read_yaml
from leadloop.events import RepStatus, RepUpdated, deterministic_id

__all__ = ["DEMO_CONTACTS", "RosterError", "load_rules", "roster_from_rules"]

#: Channel name -> address template (``{rep_id}`` is replaced): the channel names of
#: config/demo/notify.yaml. The ``.invalid`` top-level domain never resolves (RFC 2606).
DEMO_CONTACTS: Final[Mapping[str, str]] = {
    "wecom_app": "{rep_id}",
    "email": "{rep_id}@demo.invalid",
}

# The rule set's defaults for a rep entry (config/rules.yaml's header).
_STATUS: Final = "active"
_CAPACITY: Final = 100
_WEIGHT: Final = 1


class RosterError(ValueError):
    """The rules cannot give a roster; the message names the field."""


def load_rules(path: Path) -> Mapping[str, Any]:
    """The parsed rules file. Raises ``ConfigFileError`` when it is missing, not YAML or
    not a mapping (the full validation is assignment's; this reads only teams and reps)."""
    return read_yaml(path)


def _event_id(person_id: str, at: datetime) -> str:
    return deterministic_id("leadloop-simulator-roster", person_id, at.isoformat())


def _contacts(person_id: str, templates: Mapping[str, str]) -> dict[str, str]:
    return {channel: t.format(rep_id=person_id) for channel, t in templates.items()}


def roster_from_rules(
    rules: Mapping[str, Any],
    *,
    at: datetime,
    contacts: Mapping[str, str] = DEMO_CONTACTS,
) -> list[RepUpdated]:
    """One roster entry per rep and per manager of ``rules``, in file order (a team's
    reps, then its manager), each with ``contacts`` filled in for that person.

    Deterministic: the same rules and time give the same entries (event ids included;
    a later publication is a new event). Raises :class:`RosterError` for a team or rep
    entry without its id.
    """
    entries: list[RepUpdated] = []
    listed: set[str] = set()
    teams = rules.get("teams") or []
    if not isinstance(teams, list):
        raise RosterError("teams: not a list")
    for t, team in enumerate(teams):
        if not isinstance(team, Mapping) or not team.get("team_id"):
            raise RosterError(f"teams.{t}.team_id: missing")
        team_id, manager = str(team["team_id"]), team.get("manager_id")
        timezone = str(team.get("timezone") or "UTC")
        for r, rep in enumerate(team.get("reps") or []):
            if not isinstance(rep, Mapping) or not rep.get("rep_id"):
                raise RosterError(f"teams.{t}.reps.{r}.rep_id: missing")
            rep_id = str(rep["rep_id"])
            listed.add(rep_id)
            entries.append(
                RepUpdated(
                    event_id=_event_id(rep_id, at),
                    rep_id=rep_id,
                    team_id=team_id,
                    manager_id=str(manager) if manager else None,
                    status=RepStatus(rep.get("status", _STATUS)),
                    capacity=int(rep.get("capacity", _CAPACITY)),
                    weight=int(rep.get("weight", _WEIGHT)),
                    timezone=timezone,
                    updated_at=at,
                    contacts=_contacts(rep_id, contacts),
                )
            )
        if manager and str(manager) not in listed:
            manager_id = str(manager)
            listed.add(manager_id)
            entries.append(
                RepUpdated(
                    event_id=_event_id(manager_id, at),
                    rep_id=manager_id,
                    team_id=team_id,
                    status=RepStatus.AWAY,
                    capacity=0,
                    weight=0,
                    timezone=timezone,
                    updated_at=at,
                    contacts=_contacts(manager_id, contacts),
                )
            )
    return entries
