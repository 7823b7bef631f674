"""Kafka ACLs per principal, derived from leadloop's topic registry.

    python deploy/kafka/acls.py spec [--prefix P] > acls.txt   # for `kafka.sh acls`
    python deploy/kafka/acls.py table                         # the table in docs/security.md

The registry (``leadloop.topics.REGISTRY``) names each topic's producers and consumers;
every name there is a principal ``User:<name>`` (``humans`` is the operator principal
``User:ops``). A producer may WRITE its topics, a consumer may READ its topics (READ
and WRITE imply DESCRIBE). A leadloop service also READs its consumer group, which
faust names after the app id ``<prefix>leadloop-<service>``. faust needs nothing else
here: services declare no tables (no changelog topics), run with
``topic_disable_leader=True`` (no ``__assignor-__leader`` topic) and
``topic_allow_declare=False`` (no topic creation, so no CREATE), and leadloop does not
use faust's transactions (no TRANSACTIONAL_ID). The idempotent producers (ingest's
tools, the simulator) need no IDEMPOTENT_WRITE: the broker accepts WRITE on any topic
instead (KIP-679). Outside consumers (the CRM, operators) read with groups named
``<prefix><principal>`` followed by anything (a PREFIXED pattern).

Extra grants the registry does not express, each with its reason:
- ``ops`` may WRITE ``leads.raw``: the replay command re-feeds fixed dead letters.

Nothing else is allowed: the broker runs with ``allow.everyone.if.no.acl.found=false``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Literal

from leadloop.topics import REGISTRY, TopicSpec, qualified

__all__ = ["SERVICES", "Acl", "acls", "principal", "render_spec", "render_table"]

#: Registry names that are leadloop's own faust services (consumer group = app id).
SERVICES = ("ingest", "assignment", "sla-monitor", "metrics", "handoff", "notifier")

#: Registry names that are not a principal's name as such.
_PRINCIPALS = {"humans": "ops"}

Operation = Literal["READ", "WRITE"]
ResourceType = Literal["TOPIC", "GROUP"]
PatternType = Literal["LITERAL", "PREFIXED"]

#: (principal, operation, topic) grants the registry does not carry; see the docstring.
_EXTRA_TOPIC_GRANTS: tuple[tuple[str, Operation, str], ...] = (("ops", "WRITE", "leads.raw"),)


@dataclass(frozen=True, order=True, slots=True)
class Acl:
    """One ALLOW entry (from any host): ``principal`` may ``operation`` the resource."""

    principal: str
    operation: Operation
    resource_type: ResourceType
    pattern_type: PatternType
    name: str

    def spec_line(self) -> str:
        return (
            f"User:{self.principal} {self.operation} {self.resource_type} "
            f"{self.pattern_type} {self.name}"
        )


def principal(registry_name: str) -> str:
    return _PRINCIPALS.get(registry_name, registry_name)


def acls(prefix: str = "", specs: tuple[TopicSpec, ...] = REGISTRY) -> list[Acl]:
    """Every ALLOW entry leadloop needs, for topics named with ``prefix``."""
    out: set[Acl] = set()
    for spec in specs:
        topic = qualified(spec.name, prefix)
        for who in spec.producers:
            out.add(Acl(principal(who), "WRITE", "TOPIC", "LITERAL", topic))
        for who in spec.consumers:
            out.add(Acl(principal(who), "READ", "TOPIC", "LITERAL", topic))
            if who in SERVICES:
                out.add(Acl(who, "READ", "GROUP", "LITERAL", f"{prefix}leadloop-{who}"))
            else:
                out.add(
                    Acl(principal(who), "READ", "GROUP", "PREFIXED", f"{prefix}{principal(who)}")
                )
    for grantee, operation, name in _EXTRA_TOPIC_GRANTS:
        out.add(Acl(grantee, operation, "TOPIC", "LITERAL", qualified(name, prefix)))
    return sorted(out)


def render_spec(entries: list[Acl]) -> str:
    """The input of ``kafka.sh acls``: one entry per line."""
    return "".join(a.spec_line() + "\n" for a in entries)


def render_table(entries: list[Acl]) -> str:
    """A Markdown table: per principal, what it may write, read and which groups."""
    rows: dict[str, dict[str, list[str]]] = {}
    for a in entries:
        row = rows.setdefault(a.principal, {"WRITE": [], "READ": [], "GROUP": []})
        if a.resource_type == "GROUP":
            suffix = "*" if a.pattern_type == "PREFIXED" else ""
            row["GROUP"].append(f"`{a.name}{suffix}`")
        else:
            row[a.operation].append(f"`{a.name}`")
    lines = [
        "| principal | WRITE (topics) | READ (topics) | READ (consumer groups) |",
        "|---|---|---|---|",
    ]
    for who in sorted(rows):
        row = rows[who]
        lines.append(
            f"| `User:{who}` | {', '.join(row['WRITE']) or '—'} | "
            f"{', '.join(row['READ']) or '—'} | {', '.join(row['GROUP']) or '—'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("what", choices=("spec", "table"))
    parser.add_argument("--prefix", default="", help="topic prefix (tests, parallel stacks)")
    args = parser.parse_args(argv)
    entries = acls(args.prefix)
    sys.stdout.write(render_spec(entries) if args.what == "spec" else render_table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
