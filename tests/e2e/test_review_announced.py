"""The scheduled review announced to the managers, end to end: ``leadloop review
scheduled`` writes the reports of 2026-W49 and November 2026 while the broker is
unreachable (exit 1, nothing announced), the next run announces both, and the real
notifier process tells each manager the roster names, once per period, in their team's
language, through the WeCom fake. Runs after that (and an announcement sent again with
the same event id) add no message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from tests.e2e.test_notifier import Notifier, Producer, notifier, until
from tests.e2e.test_review_scheduled import store_facts
from typer.testing import CliRunner

from leadloop.settings import KafkaSettings
from leadloop_review.cli_review import app

pytestmark = pytest.mark.e2e

NOW = "2026-12-07T00:00:00+00:00"
HEADS = {  # manager's WeCom user -> the first line of each period's notice
    "wangwu": ["Review ready: week 2026-W49", "Review ready: month 2026-11"],
    "zhaoliu": ["【复盘报告】2026-W49 周度复盘", "【复盘报告】2026-11 月度复盘"],
}


def scheduled(url: str, out: Path, kafka: KafkaSettings, now: str = NOW) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "scheduled",
            "--dir",
            str(out),
            "--format",
            "md,json",
            "--now",
            now,
            "--database-url",
            url,
        ],
        env={
            "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LEADLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "LEADLOOP_REVIEW_ANNOUNCE": None,
        },
    )
    return result.exit_code, result.output


def review_texts(n: Notifier, user: str) -> list[str]:
    return [r.text for r in n.received() if r.address == user and "2026-" in r.text]


def counts(n: Notifier) -> dict[str, list[int]]:
    return {
        user: [sum(t.count(head) for t in review_texts(n, user)) for head in heads]
        for user, heads in HEADS.items()
    }


async def test_each_manager_hears_of_each_period_once(
    database_url: str,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    await store_facts(database_url)
    out = tmp_path / "reviews"
    produce = Producer(producer, kafka_settings)
    async with notifier(database_url, kafka_settings, tmp_path) as n:
        await produce.rep("rep-a", {"wecom_app": "zhangsan"}, team="north", manager="mgr")
        await produce.rep("mgr", {"wecom_app": "wangwu"}, team="north", manager="boss")
        await produce.rep("rep-b", {"wecom_app": "lisi"}, team="team-cn", manager="mgr2")
        await produce.rep("mgr2", {"wecom_app": "zhaoliu"}, team="team-cn", manager="boss")
        # "boss" manages but has no roster entry: held, never sent.
        await until("roster applied", lambda: _reps(n, 4))

        # The broker is unreachable: the reports are written, nothing is announced.
        down = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="x.")
        code, output = await asyncio.to_thread(scheduled, database_url, out, down)
        assert code == 1, output
        assert "not announced" in output
        assert "2026-11" in output
        assert sorted(p.name for p in out.glob("review-*")) == [
            "review-2026-11.json",
            "review-2026-11.md",
            "review-2026-W49.json",
            "review-2026-W49.md",
        ]
        assert not list(out.glob(".*.announced"))

        # The next run writes nothing and announces both periods.
        code, output = await asyncio.to_thread(
            scheduled, database_url, out, kafka_settings, "2026-12-07T01:00:00+00:00"
        )
        assert code == 0, output
        assert "wrote" not in output
        assert "announced 2026-11" in output
        assert "announced 2026-W49" in output
        await until("review notices", lambda: counts(n) == {u: [1, 1] for u in HEADS})

        # What the managers read: the numbers, the files, no host path.
        english = "\n".join(review_texts(n, "wangwu"))
        assert "2 leads, 1 won (amount 100,000), 1 lost." in english
        assert "Reports: reviews/review-2026-11.json, reviews/review-2026-11.md" in english
        assert str(tmp_path) not in english
        chinese = "\n".join(review_texts(n, "zhaoliu"))
        assert "线索 2 条，赢单 1 单，赢单金额 10.00 万，输单 1 单。" in chinese
        assert "报告文件：reviews/review-2026-W49.json, reviews/review-2026-W49.md" in chinese

        # Again: a run with everything announced announces nothing; one whose marker is
        # gone announces again with the same event id, which the notifier ignores.
        code, output = await asyncio.to_thread(
            scheduled, database_url, out, kafka_settings, "2026-12-07T02:00:00+00:00"
        )
        assert (code, "announced" in output) == (0, False), output
        (out / ".review-2026-11.announced").unlink()
        code, output = await asyncio.to_thread(
            scheduled, database_url, out, kafka_settings, "2026-12-07T03:00:00+00:00"
        )
        assert code == 0, output
        assert "announced 2026-11" in output
        await until("the repeat consumed", lambda: _applied_twice_settled(n))
        await asyncio.sleep(2)  # the sender ticks every 0.1 s: a second message would be here
        assert counts(n) == {u: [1, 1] for u in HEADS}
        assert [t for t in n.received() if t.address not in {"wangwu", "zhaoliu"}] == []


async def _reps(n: Notifier, want: int) -> bool:
    from tests.e2e.test_notifier import fetch

    rows = await fetch(n.database_url, "SELECT count(*) AS n FROM notifier_reps")
    return bool(rows[0]["n"] >= want)


async def _applied_twice_settled(n: Notifier) -> bool:
    """The notifier has read the repeated announcement (its lag is back to zero)."""
    from tests.e2e.test_notifier import lag

    return await lag(n) == 0
