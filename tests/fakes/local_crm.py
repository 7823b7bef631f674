"""The local stack's CRM: the signed-webhook receiver (``WebhookFake``) as a process.

Run it from the repository root as ``python -m tests.fakes.local_crm [--port 19096]
[--record FILE]`` (``make up`` does, through deploy/observe.sh). The HMAC secret comes
from the environment variable named by ``--secret-env`` (default
``LEADLOOP_DEMO_CRM_SECRET``, generated into .state/env by deploy/env.sh), never from
the command line. The hand-off's ``local-crm`` target (config/demo/crm.yaml) posts every
assignment to ``http://127.0.0.1:19096/hook``; the receiver verifies the signature and
the card's shape as ``WebhookFake`` does in the tests, keeps the latest card per lead,
appends each accepted write to ``--record`` as JSON lines (operation, lead id,
idempotency key, time: no contact details) and lists them on ``GET /received``
(``?last=N`` for the newest N). It stands in for a CRM locally and forwards nothing,
which is why it lives with the test doubles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from aiohttp import web
from tests.fakes.crm_webhook import WebhookFake
from tests.fakes.http_fake import json_response

__all__ = ["LocalCrm", "main"]


class LocalCrm(WebhookFake):
    """``WebhookFake`` with a record file and ``GET /received`` (unauthenticated: it
    serves loopback only and shows ids, not contact details)."""

    public_paths = ("/received",)

    def __init__(self, secret: bytes, *, record: Path | None = None) -> None:
        super().__init__(secret)
        self._record = record

    def accept(self, op: str, lead_id: str, key: str | None = None) -> None:
        super().accept(op, lead_id, key)
        if self._record is not None:
            with self._record.open("a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(self.received[-1])) + "\n")

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_get("/received", self._list)

    async def _list(self, request: web.Request) -> web.Response:
        entries = [asdict(r) for r in self.received]
        last = request.query.get("last", "")
        if last.isdigit():
            entries = entries[-int(last) :] if int(last) else []
        return json_response(entries)


async def serve(fake: LocalCrm, host: str, port: int) -> None:
    """Serve ``fake`` on ``host:port`` until SIGTERM or SIGINT."""
    runner = web.AppRunner(fake.application(), shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    fake.port = port
    print(f"local-crm: POST {fake.endpoint}, GET {fake.url}/received", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print(f"local-crm: stopped after {len(fake.received)} accepted writes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="A local receiver of the signed CRM webhook.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19096)
    parser.add_argument("--secret-env", default="LEADLOOP_DEMO_CRM_SECRET")
    parser.add_argument("--record", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env, "")
    if len(secret) < 16:
        sys.exit(f"local-crm: {args.secret_env} must hold the webhook secret (16+ characters)")
    asyncio.run(serve(LocalCrm(secret.encode(), record=args.record), args.host, args.port))


if __name__ == "__main__":
    main()
