"""Loopback ports for the services and brokers a test starts.

A port is checked free and then bound by a child process a moment later. Ports are
drawn only from below the kernel's ephemeral range: in that range any outgoing
connection (a Kafka client, a PostgreSQL pool) can take the port in between, and the
child then dies with "address already in use".
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port_base", "free_ports"]

_LOW = 20000
_STRIDE = 10
#: Services of one group: base+1..base+SERVICE_PORTS (tests/support/processes.py).
SERVICE_PORTS = 6
# Ports already handed out in this test process: a test that asks twice (a broker port,
# then a base for the services) must not get a port it has not bound yet a second time.
_given: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        low, _ = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low)
    except (OSError, ValueError):
        return 32768


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    """A base with base+1..base+SERVICE_PORTS free on loopback, below the ephemeral range."""
    slots = (_ephemeral_floor() - _LOW) // _STRIDE - 1
    if slots < 1:
        raise RuntimeError(f"no port range below the ephemeral range above {_LOW}")
    for attempt in range(400):
        if attempt == 200:
            _given.clear()  # a long session went round the range once: start again
        base = _LOW + random.randrange(slots) * _STRIDE
        ports = range(base + 1, base + 1 + SERVICE_PORTS)
        if not _given.intersection(ports) and all(_free(port) for port in ports):
            _given.update(ports)
            return base
    raise RuntimeError("no free port range")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, outside the ephemeral range."""
    found: list[int] = []
    while len(found) < n:
        base = free_port_base()
        found += [base + k for k in range(1, 5) if base + k not in found]
    return found[:n]
