"""``leadloop topics create`` on the real broker: settings reach the topics, and a topic
the broker refuses is an error, never reported as created."""

from __future__ import annotations

import os

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from tests.support.processes import leadloop
from tests.support.stack import Stack

from leadloop.kafka import TopicsNotCreated, create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import REGISTRY, qualified

pytestmark = pytest.mark.integration


async def _topic_config(settings: KafkaSettings, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        ((_, _, _, _, entries),) = response.resources
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def test_min_insync_replicas_is_set_on_every_created_topic(
    stack: Stack, topic_prefix: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=stack.bootstrap, topic_prefix=topic_prefix)

    created = await create_topics(settings, min_insync_replicas=1)

    assert sorted(created) == sorted(qualified(t.name, topic_prefix) for t in REGISTRY)
    for spec in REGISTRY:
        config = await _topic_config(settings, qualified(spec.name, topic_prefix))
        assert config["min.insync.replicas"] == "1"
        assert config["cleanup.policy"] == spec.cleanup_policy
    assert await create_topics(settings) == [], "a second run finds nothing missing"


async def test_a_replication_factor_above_the_broker_count_is_refused(
    stack: Stack, topic_prefix: str
) -> None:
    settings = KafkaSettings(bootstrap_servers=stack.bootstrap, topic_prefix=topic_prefix)

    with pytest.raises(TopicsNotCreated) as refused:
        await create_topics(settings, replication_factor=3)

    assert set(refused.value.refused) == {qualified(t.name, topic_prefix) for t in REGISTRY}
    assert all("replication factor" in why for why in refused.value.refused.values())


def test_the_command_exits_non_zero_and_says_which_topics_were_refused(
    stack: Stack, topic_prefix: str
) -> None:
    env = {
        **os.environ,
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap,
        "LEADLOOP_KAFKA__TOPIC_PREFIX": topic_prefix,
    }

    refused = leadloop("topics", "create", "--replication-factor", "3", env=env)
    impossible = leadloop("topics", "create", "--min-insync-replicas", "2", env=env)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{topic_prefix}leads.raw not created" in " ".join(refused.stdout.split())
    assert impossible.returncode == 2, impossible.stdout + impossible.stderr
    assert "no write could ever succeed" in " ".join(impossible.stdout.split())
