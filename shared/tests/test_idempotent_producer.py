"""Every producer a service builds is idempotent with acks=all: faust's own only is in
its exactly-once mode, which leadloop does not use. (A real send through it, under the
broker's ACLs, runs in tests/e2e/test_kafka_security.py.)"""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaProducer

from leadloop.kafka import make_app
from leadloop.settings import HttpSettings, KafkaSettings

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1")


async def test_a_service_app_builds_an_idempotent_acks_all_producer(tmp_path: Path) -> None:
    app = make_app("ingest", KAFKA, HttpSettings(port=1), data_dir=str(tmp_path))
    producer = app.producer._new_producer()  # type: ignore[attr-defined]
    assert isinstance(producer, AIOKafkaProducer)
    # aiokafka keeps a transaction manager only for an idempotent producer.
    assert producer._txn_manager is not None
    assert producer._txn_manager.transactional_id is None  # idempotent, not transactional


async def test_the_settings_give_producers_idempotence_and_acks_all() -> None:
    kwargs = KAFKA.producer_kwargs()
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", True)
    assert kwargs["bootstrap_servers"] == "127.0.0.1:1"
    producer = AIOKafkaProducer(**kwargs)
    assert producer._txn_manager is not None
