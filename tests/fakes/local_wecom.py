"""The local stack's chat: the WeCom fake (``FakeWecom``) as a process, for the notifier.

Run it from the repository root as ``python -m tests.fakes.local_wecom [--port 19097]
[--rules config/rules.yaml] [--record FILE]`` (``make up`` does, through
deploy/observe.sh). config/demo/notify.yaml points the notifier's ``wecom_app``
(application messages to a person) and ``wecom_robot`` (a team's group robot) channels
at it with ``base_url``. It answers as WeCom documents (gettoken, message/send, the robot
webhook, their error codes and per-member limits): the members are every rep and manager
of the rules file (plus ``--user``), the corp secret and the robot key come from the
environment variables named by ``--corp-secret-env`` / ``--robot-key-env`` (generated
into .state/env by deploy/env.sh). Every message WeCom would have shown is printed,
appended to ``--record`` as JSON lines and listed on ``GET /received`` (``?last=N`` for
the newest N). It forwards nothing, which is why it lives with the test doubles.
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
from typing import Any

import yaml
from aiohttp import web
from tests.fakes.wecom import FakeWecom

__all__ = ["LocalWecom", "main", "people_of"]


def people_of(rules: Any) -> set[str]:
    """Every rep id and manager id of a parsed rules file (config/rules.yaml)."""
    people: set[str] = set()
    for team in (rules or {}).get("teams") or []:
        if team.get("manager_id"):
            people.add(str(team["manager_id"]))
        people.update(str(r["rep_id"]) for r in team.get("reps") or [] if r.get("rep_id"))
    return people


class LocalWecom(FakeWecom):
    """``FakeWecom`` that also records to a file and serves ``GET /received``."""

    def __init__(self, *, record: Path | None = None, echo: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._record_file, self._echo = record, echo

    def record(self, kind: str, address: str, subject: str, text: str) -> None:
        super().record(kind, address, subject, text)
        entry = asdict(self.received[-1])
        if self._record_file is not None:
            with self._record_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if self._echo:
            lines = [line for line in text.splitlines() if line.strip()]
            print(f"{kind} → {address}: {' · '.join(lines[:2])[:160]}", flush=True)

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(), web.get("/received", self._list)]

    async def _list(self, request: web.Request) -> web.Response:
        entries = [asdict(r) for r in self.received]
        last = request.query.get("last", "")
        if last.isdigit():
            entries = entries[-int(last) :] if int(last) else []
        return web.json_response(entries, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def serve(fake: LocalWecom, host: str, port: int) -> None:
    """Serve ``fake`` on ``host:port`` until SIGTERM or SIGINT."""
    runner = web.AppRunner(fake.application(), shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    fake.port = port
    print(f"local-wecom: {fake.base_url} ({len(fake.users)} members)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        print(f"local-wecom: stopped after {len(fake.received)} messages", flush=True)


def _secret(name: str) -> str:
    value = os.environ.get(name, "")
    if len(value) < 16:
        sys.exit(f"local-wecom: {name} must be set (16+ characters)")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description="A local WeCom for the notifier.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19097)
    parser.add_argument("--rules", type=Path, default=Path("config/rules.yaml"))
    parser.add_argument("--user", action="append", default=[], help="another member id")
    parser.add_argument("--corp-id", default="ww-leadloop-demo")
    parser.add_argument("--agent-id", type=int, default=1000002)
    parser.add_argument("--corp-secret-env", default="LEADLOOP_DEMO_WECOM_SECRET")
    parser.add_argument("--robot-key-env", default="LEADLOOP_DEMO_WECOM_ROBOT_KEY")
    parser.add_argument("--record", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--quiet", action="store_true", help="do not print each message")
    args = parser.parse_args()
    users = people_of(yaml.safe_load(args.rules.read_text(encoding="utf-8"))) | set(args.user)
    fake = LocalWecom(
        record=args.record,
        echo=not args.quiet,
        corp_id=args.corp_id,
        corp_secret=_secret(args.corp_secret_env),
        agent_id=args.agent_id,
        users=users,
        robot_keys={_secret(args.robot_key_env)},
    )
    asyncio.run(serve(fake, args.host, args.port))


if __name__ == "__main__":
    main()
