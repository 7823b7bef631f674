"""Operator commands of the hand-off.

    python -m leadloop_handoff.tools dead-letters [--target T] [--limit N]
    python -m leadloop_handoff.tools replay [--target T] [--code C] [--lead L]

``dead-letters`` lists deliveries given up (target, lead id, assignment, attempts, last
HTTP status and code; never contact details). ``replay`` makes matching dead letters
pending again, from the first attempt; the running hand-off sends them in order. Run
``replay`` after fixing what the code says (a field mapping, a revoked token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from leadloop import settings as settings_mod
from leadloop.db import create_pool
from leadloop_handoff.adapters.postgres import HandoffStore
from leadloop_handoff.settings import HandoffSettings

__all__ = ["main"]


async def _run(cfg: HandoffSettings, args: argparse.Namespace) -> int:
    pool = await create_pool(cfg.database_url.get_secret_value(), attempts=3)
    try:
        store = HandoffStore(pool)
        if args.command == "dead-letters":
            for row in await store.dead_letters(args.target, args.limit):
                sys.stdout.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
            return 0
        n = await store.replay(args.target, args.code, args.lead, datetime.now(UTC))
        sys.stdout.write(f"replayed: {n}\n")
        return 0
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_handoff.tools")
    commands = parser.add_subparsers(dest="command", required=True)
    dead = commands.add_parser("dead-letters", help="list deliveries given up, oldest first")
    dead.add_argument("--target")
    dead.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="send matching dead letters again")
    replay.add_argument("--target")
    replay.add_argument("--code", help="only dead letters with this last code")
    replay.add_argument("--lead", help="only this lead id")
    args = parser.parse_args(argv)
    cfg = settings_mod.load(HandoffSettings)
    return asyncio.run(_run(cfg, args))


if __name__ == "__main__":
    sys.exit(main())
