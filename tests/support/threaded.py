"""Serving a test's fake on an event loop of its own thread.

A service under test runs as a child process and calls the fake while the test itself
blocks (waiting for readiness, running a command): on the test's own loop the fake
would not answer then. Its state (received writes, fault schedule) is read and set
from the test's thread; the fakes keep it in lists, dicts and deques, whose single
operations are atomic under the GIL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

__all__ = ["in_thread"]

T = TypeVar("T", bound=AbstractAsyncContextManager[object])


@contextmanager
def in_thread(server: T, timeout: float = 30) -> Iterator[T]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(timeout)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(
                timeout
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
