"""Operator commands of the metrics service.

    python -m leadloop_metrics.tools reconcile [--url http://127.0.0.1:18084/metrics]

``reconcile`` replays the stored facts and prints every difference from the stored and
(with ``--url``) the served values; exit code 1 when there is any, 0 when none.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from leadloop import settings as settings_mod
from leadloop.config_file import exit_on_config_error
from leadloop.db import create_pool
from leadloop_metrics.adapters.config import label_policy
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.domain.labels import LabelPolicy
from leadloop_metrics.reconcile import reconcile
from leadloop_metrics.settings import MetricsSettings

__all__ = ["main"]


async def _reconcile(cfg: MetricsSettings, policy: LabelPolicy, url: str | None) -> int:
    pool = await create_pool(cfg.database_url.get_secret_value(), attempts=3)
    try:
        report = await reconcile(MetricStore(pool), policy, url)
    finally:
        await pool.close()
    sys.stdout.write("\n".join(report.lines()) + "\n")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_metrics.tools")
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("reconcile", help="recompute every metric and print differences")
    rec.add_argument("--url", help="also compare the samples served at this /metrics URL")
    args = parser.parse_args(argv)
    cfg = settings_mod.load(MetricsSettings)
    with exit_on_config_error("metrics"):
        policy = label_policy(cfg.sources, cfg.teams, cfg.rules_file)
    return asyncio.run(_reconcile(cfg, policy, args.url))


if __name__ == "__main__":
    sys.exit(main())
