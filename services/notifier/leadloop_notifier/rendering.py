"""Notices rendered as messages with templates a team can change (Jinja2, sandboxed).

A template set is a folder: ``<kind>.txt`` renders one notice as a line or a few
(plain text, also used for markdown); ``subject.txt`` the subject; ``message.txt``,
``message.md`` and ``message.html`` wrap one or more notices (a coalesced batch) into
the message's text, markdown and HTML bodies. ``message.html`` is autoescaped. The
shipped sets are ``zh-CN`` and ``en`` (in the package); a folder of the same name under
``templates_dir`` (config/notify-templates/) overrides a shipped file by name, and a
new name there is a new set.

Variables are the notice's payload (ids, non-personal lead facts, times already in the
recipient's zone, the CRM link) and ``name``: the lead's name for a team that opted in
(``include_name``), read by the caller at send time and passed in ``names``, else None.
Templates cannot reach a phone number or an email address because none is ever in a
payload. The sandbox keeps a team's template from calling into Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from leadloop_notifier.domain.model import KINDS

__all__ = ["Rendered", "Renderer", "TemplateError"]

_SHIPPED = ("zh-CN", "en")


class TemplateError(ValueError):
    """A template set is incomplete or a template does not render."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    markdown: str | None
    html: str | None


class Renderer:
    def __init__(self, templates_dir: Path | None = None) -> None:
        self._dir = templates_dir

    @lru_cache(maxsize=64)  # noqa: B019 - one renderer per process; sets are few
    def _env(self, template_set: str) -> SandboxedEnvironment:
        loaders: list[Any] = []
        if self._dir is not None and (self._dir / template_set).is_dir():
            loaders.append(FileSystemLoader(str(self._dir / template_set)))
        if template_set in _SHIPPED:
            loaders.append(PackageLoader("leadloop_notifier", f"templates/{template_set}"))
        if not loaders:
            raise TemplateError(f"template set {template_set!r} not found")
        return SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def check(self, template_set: str) -> None:
        """Render every kind once with sample values, with and without a name: a broken
        team template stops start-up instead of the first reminder."""
        for kind in KINDS:
            self.render(template_set, [_sample(kind)])
            self.render(template_set, [_sample(kind)], names={"L-1": "张三"})
        self.render(template_set, [_sample("remind_owner"), _sample("new_lead")])

    def item_bytes(
        self, template_set: str, payload: Mapping[str, Any], *, name_bytes: int = 0
    ) -> int:
        """The UTF-8 size of one notice's line in a message (with its numbering), plus
        ``name_bytes`` kept for a name read at send time."""
        try:
            env = self._env(template_set)
            line = env.get_template(f"{payload['kind']}.txt").render(_context(payload, None))
        except Exception:  # a broken template shows when the message is rendered
            return 0
        return len(line.strip().encode()) + 6 + name_bytes

    def render(
        self,
        template_set: str,
        payloads: Sequence[Mapping[str, Any]],
        names: Mapping[str, str] | None = None,
    ) -> Rendered:
        """One message for one or more notices (a coalesced batch), in due order.
        ``names``: lead id -> the lead's name, for a team that shows names."""
        env = self._env(template_set)
        names = names or {}
        try:
            items: list[dict[str, Any]] = []
            for p in payloads:
                context = _context(p, names.get(str(p.get("lead_id"))))
                line = env.get_template(f"{p['kind']}.txt").render(context).strip()
                items.append({**context, "line": line})
            kinds = sorted({str(p["kind"]) for p in payloads})
            context = {"items": items, "count": len(items), "kinds": kinds}
            subject = env.get_template("subject.txt").render(**context).strip()
            context["subject"] = subject
            return Rendered(
                subject=subject.splitlines()[0] if subject else "leadloop",
                text=env.get_template("message.txt").render(**context).strip(),
                markdown=env.get_template("message.md").render(**context).strip(),
                html=env.get_template("message.html").render(**context).strip(),
            )
        except Exception as exc:  # any template failure names the set and the error
            raise TemplateError(f"template set {template_set!r}: {exc}") from exc


def _context(payload: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """A notice's template variables: its payload and ``name`` (None when not shown)."""
    return {**payload, "name": name}


def _sample(kind: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": kind,
        "lead_id": "L-1",
        "source": "web_form",
        "city": "上海",
        "region": None,
        "country": "CN",
        "industry": "saas",
        "product": "crm",
        "priority": "hot",
        "crm_link": "https://crm.example.com/leads/L-1",
        "timezone": "Asia/Shanghai",
        "assignment": "initial",
        "assigned_at": "2025-03-03 09:00",
        "sla": "first_response",
        "level": 1,
        "owner_id": "rep-1",
        "due": "2025-03-03 09:15",
        "breached": "2025-03-03 09:15",
        "late_minutes": 12,
        "resolved": "2025-03-03 09:27",
        "node": "proposal_followup",
        "stage": "proposal",
        "since": "2025-03-03 09:00",
        "date": "2025-03-03",
        "open_count": 1,
        "overdue_count": 1,
        "due_today_count": 1,
        "open": [
            {
                "lead_id": "L-1",
                "stage": "assigned",
                "priority": "hot",
                "city": "上海",
                "source": "web_form",
                "crm_link": "https://crm.example.com/leads/L-1",
            }
        ],
        "overdue": [
            {
                "lead_id": "L-2",
                "due": "2025-03-02 17:00",
                "crm_link": "https://crm.example.com/leads/L-2",
            }
        ],
        "due_today": [{"lead_id": "L-3", "due": "2025-03-03 10:00"}],
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "alertname": "LeadOverdue",
                "severity": "page",
                "team": "team-cn",
                "lead_id": "L-1",
                "summary": "lead overdue",
                "starts_at": "2025-03-03T01:00:00Z",
            }
        ],
        "more": 0,
        "period": "2025-02",
        "period_kind": "month",
        "first_day": "2025-02-01",
        "last_day": "2025-02-28",
        "team": None,
        "leads": 120,
        "won": 9,
        "won_amount": 180000.0,
        "lost": 40,
        "suggestions": ["team-cn: 14 owned leads silent — call, close or return them to the pool"],
        "where": "reviews/review-2025-02.md",
    }
    if kind in ("alert", "review"):
        base["lead_id"] = None
    if kind == "review":
        del base["crm_link"]
    return base
