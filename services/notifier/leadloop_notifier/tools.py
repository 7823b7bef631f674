"""Operator commands of the notifier.

    python -m leadloop_notifier.tools dead-letters [--channel C] [--limit N]
    python -m leadloop_notifier.tools replay [--channel C] [--code C] [--kind K] [--lead L]

``dead-letters`` lists notices a channel gave up on (notice key, recipient's rep id,
channel, kind, attempts, last code; never an address or the message). ``replay`` makes
matching dead letters pending again, from the first attempt, and the running notifier
sends them at once; a notice that reached its recipient on a fallback channel is left
alone. Run ``replay`` after fixing what the code says (a revoked token, a user id the
vendor did not know).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from leadloop import settings as settings_mod
from leadloop.db import create_pool
from leadloop_notifier.adapters.postgres import NotifierStore
from leadloop_notifier.settings import NotifierSettings

__all__ = ["main"]


async def _run(cfg: NotifierSettings, args: argparse.Namespace) -> int:
    pool = await create_pool(cfg.database_url.get_secret_value(), attempts=3)
    try:
        store = NotifierStore(pool)
        if args.command == "dead-letters":
            for row in await store.dead_letters(args.channel, args.limit):
                sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
            return 0
        n = await store.replay(args.channel, args.code, args.kind, args.lead)
        sys.stdout.write(f"replayed: {n}\n")
        return 0
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_notifier.tools")
    commands = parser.add_subparsers(dest="command", required=True)
    dead = commands.add_parser("dead-letters", help="list notices given up, oldest first")
    dead.add_argument("--channel")
    dead.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="send matching dead letters again")
    replay.add_argument("--channel")
    replay.add_argument("--code", help="only dead letters with this last code")
    replay.add_argument("--kind", help="only this kind of notice (e.g. remind_owner)")
    replay.add_argument("--lead", help="only this lead id")
    args = parser.parse_args(argv)
    cfg = settings_mod.load(NotifierSettings)
    return asyncio.run(_run(cfg, args))


if __name__ == "__main__":
    sys.exit(main())
