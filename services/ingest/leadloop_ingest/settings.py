"""Ingest's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from leadloop.settings import HttpSettings, ServiceSettings, require_secret

__all__ = ["IngestSettings"]


class IngestSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18081)
    #: Secret pepper for identity keys (keyed HMAC of email and phone). Required.
    identity_pepper: SecretStr | None = None
    #: Channel ids accepted on leads.raw and the webhook.
    sources: tuple[str, ...] = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
    #: Region for phone numbers without a country code, per source (ISO 3166 alpha-2).
    default_phone_region: dict[str, str] = Field(
        default_factory=lambda: {"wechat": "CN", "trade_show_csv": "CN"}
    )
    max_record_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    #: More consecutive rejects than this on one partition halt ingest (a broken
    #: producer) instead of dead-lettering everything; 0 turns the guard off.
    consecutive_invalid_limit: Annotated[int, Field(ge=0)] = 1000

    @field_validator("identity_pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_IDENTITY_PEPPER")
