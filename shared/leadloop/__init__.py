"""leadloop shared library: the event contract, topic registry, settings, logging,
PostgreSQL and Kafka helpers used by every service, and the ``leadloop`` CLI."""
