"""A locked-down Kafka broker of a test's own: SASL/SCRAM-SHA-512 over TLS with a CA the
test creates, ACLs per principal from the topic registry, no access without an ACL.

Started with ``deploy/kafka/kafka.sh start-secure`` in the test's temporary folder, on
ports of its own, beside (never instead of) the shared PLAINTEXT broker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

from .ports import free_ports
from .processes import ROOT

__all__ = ["KAFKA_SH", "SecureBroker", "acls_module", "collect_as", "free_ports"]

KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


def acls_module() -> ModuleType:
    """``deploy/kafka/acls.py`` (a script, not a package module), loaded by path."""
    spec = importlib.util.spec_from_file_location(
        "leadloop_deploy_acls", ROOT / "deploy/kafka/acls.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses resolve their annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class SecureBroker:
    """One locked-down broker; ``start`` formats, starts, creates topics and ACLs."""

    dir: Path
    prefix: str
    port: int = 0
    controller_port: int = 0
    passwords: dict[str, str] | None = None
    #: Principals left without their consumer-group ACLs (a misconfiguration to test).
    omit_groups_of: tuple[str, ...] = ()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def cafile(self) -> Path:
        return self.dir / "tls" / "ca.pem"

    @property
    def log(self) -> Path:
        return self.dir / "server.log"

    def settings(self, principal: str, password: str | None = None) -> KafkaSettings:
        """Client settings for ``principal`` (its real password unless one is given)."""
        assert self.passwords is not None
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
            security_protocol="SASL_SSL",
            username=principal,
            password=SecretStr(password if password is not None else self.passwords[principal]),
            ssl_cafile=str(self.cafile),
        )

    def env(self, principal: str) -> dict[str, str]:
        """A service's LEADLOOP_KAFKA__* variables for ``principal``."""
        assert self.passwords is not None
        return {
            "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "LEADLOOP_KAFKA__TOPIC_PREFIX": self.prefix,
            "LEADLOOP_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "LEADLOOP_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "LEADLOOP_KAFKA__USERNAME": principal,
            "LEADLOOP_KAFKA__PASSWORD": self.passwords[principal],
            "LEADLOOP_KAFKA__SSL_CAFILE": str(self.cafile),
        }

    def start(self) -> None:
        acls = acls_module()
        entries = [
            a
            for a in acls.acls(self.prefix)
            if not (a.resource_type == "GROUP" and a.principal in self.omit_groups_of)
        ]
        principals = sorted({a.principal for a in entries})
        # Random per run: nothing here is a fixed credential someone could reuse.
        self.passwords = {p: secrets.token_hex(16) for p in ["admin", *principals]}
        self.dir.mkdir(parents=True, exist_ok=True)
        users = self.dir / "users"
        users.touch(mode=0o600)
        users.write_text("".join(f"{p} {pw}\n" for p, pw in self.passwords.items()))
        spec = self.dir / "acls.txt"
        spec.write_text(acls.render_spec(entries))
        self.port, self.controller_port = free_ports(2)
        self._sh("start-secure", str(self.dir), str(self.port), str(self.controller_port))
        asyncio.run(create_topics(self.settings("admin")))
        self._sh("acls", str(self.dir), str(spec))

    def stop(self) -> None:
        self._sh("stop-secure", str(self.dir))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _sh(self, *args: str) -> None:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), *args], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(
                f"kafka.sh {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.log_text()[-3000:]}"
            )


async def collect_as(
    kafka: KafkaSettings,
    topic: str,
    match: Callable[[dict[str, Any]], bool],
    within: float = 60,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning (no consumer group) as ``kafka``'s principal and
    return the JSON objects ``match`` accepts, once one arrived and a second more passed
    (a later copy would be a duplicate), or at ``within``."""
    consumer = AIOKafkaConsumer(
        qualified(topic, kafka.topic_prefix),
        **kafka.client_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    value = _json_object(r.value)
                    if value is not None and match(value):
                        found.append(value)
            if found:
                deadline = min(deadline, time.monotonic() + 1)
    finally:
        await consumer.stop()
    return found


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
