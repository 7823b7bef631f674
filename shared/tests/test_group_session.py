"""How long a dead worker keeps its partitions: the session the broker allows it."""

from __future__ import annotations

from pathlib import Path

from leadloop.kafka import make_app
from leadloop.settings import HttpSettings, KafkaSettings

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1")


async def test_a_dead_worker_gives_up_its_partitions_after_the_configured_session(
    tmp_path: Path,
) -> None:
    """faust's 60 s default would hold a crashed worker's partitions for a minute."""
    app = make_app("ingest", KAFKA, HttpSettings(port=1), data_dir=str(tmp_path))
    assert app.conf.broker_session_timeout == KAFKA.session_timeout_s == 10.0
    slow = KAFKA.model_copy(update={"session_timeout_s": 45.0})
    app = make_app("ingest", slow, HttpSettings(port=1), data_dir=str(tmp_path / "b"))
    assert app.conf.broker_session_timeout == 45.0
