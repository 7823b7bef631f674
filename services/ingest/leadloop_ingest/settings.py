"""Ingest's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from leadloop.settings import HttpSettings, ServiceSettings, require_secret

__all__ = ["IngestSettings"]


class IngestSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18081)
    #: Secret pepper for identity keys (keyed HMAC of email and phone). Required.
    identity_pepper: SecretStr | None = None
    #: The channels: source ids, their adapters, default phone regions and webhook
    #: signature schemes. Adding a channel is an entry here (plus, for a new native
    #: shape, one adapter in domain/channels.py).
    channels_file: Path = Path("config/channels.yaml")
    max_record_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    #: Webhook HMAC secret per source (``POST /v1/leads/<source>``), a JSON object in
    #: LEADLOOP_WEBHOOK_SECRETS. A source without one cannot use the webhook (401):
    #: unsigned input is never accepted.
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    #: How far X-Leadloop-Timestamp may be from the clock, either way (replay window).
    webhook_tolerance_s: Annotated[int, Field(ge=1, le=3600)] = 300
    #: Webhook requests waiting on Kafka at once; more are answered 429.
    webhook_max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 1000
    #: How long a webhook request waits for the broker's acknowledgement before a 503.
    webhook_publish_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    #: More consecutive rejects than this on one partition halt ingest (a broken
    #: producer) instead of dead-lettering everything; 0 turns the guard off.
    consecutive_invalid_limit: Annotated[int, Field(ge=0)] = 1000

    @field_validator("identity_pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_IDENTITY_PEPPER")

    @field_validator("webhook_secrets")
    @classmethod
    def _webhook_secrets(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        # Messages name the source, never a secret's value.
        for source, secret in v.items():
            name = f"LEADLOOP_WEBHOOK_SECRETS[{source}]"
            require_secret(secret, name)
            if len(secret.get_secret_value()) < 16:
                raise ValueError(f"{name} is shorter than 16 characters")
        return v
