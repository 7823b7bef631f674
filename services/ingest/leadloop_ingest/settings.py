"""Ingest's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

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
    #: How long a signed request of a scheme without a signed timestamp (``meta``: Meta's
    #: lead ads, which Meta retries for up to 36 hours) is remembered by the replay
    #: cache; a second delivery within it is refused 409 ``replayed``. Schemes with a
    #: timestamp are remembered until the timestamp + ``webhook_tolerance_s``.
    webhook_replay_retention_s: Annotated[int, Field(ge=3600, le=90 * 24 * 3600)] = 7 * 24 * 3600
    #: How often each ingest worker removes expired replay-cache rows.
    webhook_replay_purge_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    #: Per-client-address rate limit on ingest's API (``/v1/…`` on the webhook's port):
    #: a sustained rate and a burst; beyond them, 429 with Retry-After. Sized for a
    #: channel or CRM that posts one request per lead; raise it behind a proxy (every
    #: request then comes from the proxy's address).
    http_rate_per_s: Annotated[float, Field(gt=0, le=100_000)] = 50.0
    http_burst: Annotated[int, Field(ge=1, le=100_000)] = 200
    #: Open connections per ingest worker on the webhook's port; one more is answered
    #: 429 and closed before its request is read.
    http_max_connections: Annotated[int, Field(ge=1, le=100_000)] = 512
    #: Webhook requests waiting on Kafka at once; more are answered 429.
    webhook_max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 1000
    #: How long a webhook request waits for the broker's acknowledgement before a 503.
    webhook_publish_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    #: Vendor CRM webhooks (``POST /v1/crm/hooks/<vendor>/<target>``, docs/crm-inbound.md):
    #: the mapping file, e.g. config/crm-inbound.yaml. Unset: no vendor endpoints.
    crm_inbound_file: Path | None = None
    #: Meta lead ads on the webhook's URL for lead_ads channels (docs/crm-inbound.md): the
    #: verify token of the GET handshake and the page access token the Graph API is read
    #: with. Both or neither; neither = the lead_ads webhook takes contract-shaped leads only.
    meta_verify_token: SecretStr | None = None
    meta_access_token: SecretStr | None = None
    meta_graph_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = (
        "https://graph.facebook.com"
    )
    meta_graph_version: Annotated[str, Field(pattern=r"^v[0-9]{1,3}\.[0-9]{1,2}$")] = "v25.0"
    meta_graph_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    #: More consecutive rejects than this on one partition halt ingest (a broken
    #: producer) instead of dead-lettering everything; 0 turns the guard off.
    consecutive_invalid_limit: Annotated[int, Field(ge=0)] = 1000
    #: CRM feedback HMAC secret per client (``POST /v1/crm/...`` with
    #: ``X-Leadloop-Client: <id>``), a JSON object in LEADLOOP_CRM_SECRETS. Signed like the
    #: webhook (same window, in-flight limit and publish timeout); no secret, no feedback.
    crm_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    #: Largest CRM feedback body (up to 500 events per request).
    crm_max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    #: A learned score model (``leadloop score fit``, docs/scoring.md), reloaded when the
    #: file changes. Unset, or while the file cannot be used: the hand-set weights.
    score_model_file: Path | None = None
    #: Bearer token of the admin endpoints (``POST /v1/admin/resume``), at least 16
    #: characters. Unset: no admin listener at all.
    admin_token: SecretStr | None = None
    #: Where the admin endpoints listen: a port of their own, never the webhook's, on
    #: loopback unless set otherwise (LEADLOOP_ADMIN__HOST, LEADLOOP_ADMIN__PORT).
    admin: HttpSettings = HttpSettings(port=18181)

    @model_validator(mode="after")
    def _meta_tokens(self) -> IngestSettings:
        if self.meta_verify_token is not None or self.meta_access_token is not None:
            require_secret(self.meta_verify_token, "LEADLOOP_META_VERIFY_TOKEN")
            require_secret(self.meta_access_token, "LEADLOOP_META_ACCESS_TOKEN")
        return self

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        require_secret(v, "LEADLOOP_ADMIN_TOKEN")
        if len(v.get_secret_value()) < 16:
            raise ValueError("LEADLOOP_ADMIN_TOKEN is shorter than 16 characters")
        return v

    @model_validator(mode="after")
    def _admin_port(self) -> IngestSettings:
        if self.admin_token is not None and self.admin.port == self.http.port:
            raise ValueError("LEADLOOP_ADMIN__PORT must differ from LEADLOOP_HTTP__PORT")
        return self

    @field_validator("identity_pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_IDENTITY_PEPPER")

    @field_validator("webhook_secrets", "crm_secrets")
    @classmethod
    def _secrets(cls, v: dict[str, SecretStr], info: ValidationInfo) -> dict[str, SecretStr]:
        # One rule for every secret map. Messages name the variable and the key (a source
        # or a client), never a secret's value.
        variable = f"LEADLOOP_{info.field_name.upper()}" if info.field_name else "secrets"
        for key, secret in v.items():
            name = f"{variable}[{key}]"
            require_secret(secret, name)
            if len(secret.get_secret_value()) < 16:
                raise ValueError(f"{name} is shorter than 16 characters")
        return v
