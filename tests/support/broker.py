"""A single-node broker of a test's own: ``deploy/kafka/kafka.sh`` on other ports and
another state folder, so that killing it or cutting a client off from it touches no
other test. It shares the suite's broker jars (no second Maven resolution).

With ``extra_listener`` the broker has a second listener whose advertised address is
another one (a proxy's): a client that bootstraps through it is told that address for
every later connection (metadata, group coordinator), so all of its traffic, and only
its, crosses the proxy — the way a client on the far side of a network is reached.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_ports
from tests.support.processes import ROOT, deploy

__all__ = ["Broker", "private_broker"]


@dataclass
class Broker:
    env: dict[str, str]
    state: Path
    #: The broker's own listener (PLAINTEXT), advertised as itself.
    bootstrap: str

    def run(self, command: str) -> None:
        deploy("deploy/kafka/kafka.sh", command, self.env)

    @property
    def pid(self) -> int:
        return int((self.state / "kafka" / "kafka.pid").read_text())

    async def kill_9(self) -> None:
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"broker {pid} still alive after SIGKILL")


@contextmanager
def private_broker(
    state: Path, *, extra_listener: tuple[str, int, str] | None = None
) -> Iterator[Broker]:
    """A started broker with its data under ``state``; stopped on leaving.

    ``extra_listener``: (name, port, advertised host:port) of a second PLAINTEXT
    listener."""
    port, controller = free_ports(2)
    shared = Path(os.environ.get("LEADLOOP_STATE_DIR", ROOT / ".state"))
    bootstrap = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "LEADLOOP_STATE_DIR": str(state),
        "LEADLOOP_KAFKA_PORT": str(port),
        "LEADLOOP_KAFKA_CONTROLLER_PORT": str(controller),
        "LEADLOOP_KAFKA_LIBS": str(shared / "kafka" / "libs"),
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
    }
    if extra_listener is not None:
        name, extra_port, advertised = extra_listener
        state.mkdir(parents=True, exist_ok=True)
        config = state / "extra.properties"
        config.write_text(
            f"listeners=PLAINTEXT://{bootstrap},{name}://127.0.0.1:{extra_port},"
            f"CONTROLLER://127.0.0.1:{controller}\n"
            f"advertised.listeners=PLAINTEXT://{bootstrap},{name}://{advertised}\n"
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            f"{name}:PLAINTEXT\n"
        )
        env["LEADLOOP_KAFKA_EXTRA_CONFIG"] = str(config)
    broker = Broker(env=env, state=state, bootstrap=bootstrap)
    broker.run("start")
    try:
        yield broker
    finally:
        broker.run("stop")
