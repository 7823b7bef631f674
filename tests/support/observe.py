"""Services on the real stack, started, fed and watched (the hand-off's e2e and fault tests).

``until`` polls what a test can observe instead of sleeping, and when it never holds the
failure carries every service's log. ``handoff_stack`` writes the rules and CRM files
that ingest, assignment and the hand-off start with and builds their group (not started
yet); ``web_form_lead`` is a raw lead and ``send_raw`` puts raw leads on ``leads.raw``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from tests.support.ports import free_port_base
from tests.support.processes import ServiceGroup
from tests.support.stack import stack_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = ["handoff_stack", "send_raw", "until", "web_form_lead"]


async def until(check: Callable[[], bool], what: str, within: float, group: ServiceGroup) -> None:
    """Observe instead of sleeping: poll ``check`` until it holds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {n}\n{group.log(n)}" for n in group.procs)
            raise AssertionError(f"not within {within}s: {what}{logs}")
        await asyncio.sleep(0.2)


def handoff_stack(
    database_url: str,
    kafka: KafkaSettings,
    scratch: Path,
    *,
    rules: str,
    crm: str,
    **extra: str,
) -> tuple[dict[str, str], ServiceGroup]:
    """The services' environment, with ``rules`` and ``crm`` (YAML text) written under
    ``scratch`` and named in it, and a group on free ports logging to ``scratch``."""
    (scratch / "rules.yaml").write_text(rules)
    (scratch / "crm.yaml").write_text(crm)
    env = stack_env(
        database_url,
        kafka,
        scratch,
        LEADLOOP_RULES_FILE=str(scratch / "rules.yaml"),
        LEADLOOP_CRM_FILE=str(scratch / "crm.yaml"),
        **extra,
    )
    return env, ServiceGroup(env=dict(env), port_base=free_port_base(), log_dir=scratch)


def web_form_lead(source_lead_id: str, email: str, name: str, **fields: str) -> tuple[bytes, bytes]:
    """A web-form lead from Acme in Shanghai as (key, value) for ``leads.raw``; ``fields``
    are added to the body."""
    body = {
        "source": "web_form",
        "source_lead_id": source_lead_id,
        "email": email,
        "name": name,
        "company": "Acme",
        "country": "CN",
        "city": "Shanghai",
        **fields,
    }
    return f"web_form:{source_lead_id}".encode(), json.dumps(body).encode()


async def send_raw(
    producer: AIOKafkaProducer, prefix: str, leads: Iterable[tuple[bytes, bytes]]
) -> None:
    """Each (key, value) on ``leads.raw`` under ``prefix``, flushed."""
    for key, value in leads:
        await producer.send(qualified("leads.raw", prefix), value, key=key)
    await producer.flush()
