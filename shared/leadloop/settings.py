"""Typed, frozen settings read once from the environment (pydantic-settings).

Every service builds its settings class in its composition root and nowhere else.
Names: ``LEADLOOP_<FIELD>`` with ``__`` for nesting (``LEADLOOP_KAFKA__BOOTSTRAP_SERVERS``);
``DATABASE_URL`` is also honoured as is, because that is where users already keep it.
A missing or placeholder secret stops start-up with a message that names the setting
and never echoes its value.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

__all__ = [
    "ConfigError",
    "HttpSettings",
    "KafkaSettings",
    "ServiceSettings",
    "load",
    "require_secret",
]

_PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "password", "xxx", "todo"})


class ConfigError(SystemExit):
    """Raised (as a clean exit) when the environment cannot make valid settings."""


class KafkaSettings(BaseModel):
    """How a service reaches Kafka.

    PLAINTEXT (the default) is the local single-node broker on loopback. SASL_SSL is a
    locked-down broker: TLS verified against ``ssl_cafile`` (or the system trust store)
    and SCRAM authentication as the service's own principal, whose ACLs allow only its
    own topics and consumer group (docs/security.md). Every Kafka client leadloop
    builds takes its connection settings from ``client_kwargs``, so a service runs
    unchanged in either mode.
    """

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:19092"
    #: Prepended to every topic name; lets tests and parallel environments share a broker.
    topic_prefix: str = ""
    #: How often consumed offsets are committed. Only offsets of persisted work are
    #: ever committed; a shorter interval shrinks the redelivery window after a crash.
    commit_interval_s: float = 1.0
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    batch_within_s: Annotated[float, Field(gt=0, le=10)] = 0.2
    #: Seconds the broker waits for a silent worker before giving its partitions to the
    #: others. A worker that died (``kill -9``, a lost host) holds its partitions that
    #: long, and its own replacement waits as long to join: faust's default of 60 s
    #: left leads unassigned for a minute after a crash. Heartbeats go every 3 s from
    #: the consumer's own thread, so a slow batch does not count against it; raise it
    #: where the network drops packets for seconds (Kafka's clients default to 45 s).
    session_timeout_s: Annotated[float, Field(ge=6, le=300)] = 10.0
    #: How often a record whose processing fails (not for a transient outage) is
    #: attempted on its own before it is parked on the service's dead-letter topic.
    poison_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    #: The service's principal (``User:<username>`` in the broker's ACLs).
    username: str | None = None
    password: SecretStr | None = None
    #: PEM file of the CA that signed the broker's certificate; None: system trust store.
    ssl_cafile: str | None = None

    @model_validator(mode="after")
    def _credentials_when_sasl(self) -> KafkaSettings:
        if self.security_protocol == "SASL_SSL":
            if not self.username:
                raise ValueError("kafka.username is required when security_protocol is SASL_SSL")
            require_secret(self.password, "kafka.password")
            if self.ssl_cafile is not None and not Path(self.ssl_cafile).is_file():
                # The path is configuration, not a secret; naming it helps the operator.
                raise ValueError(f"kafka.ssl_cafile {self.ssl_cafile!r} is not a readable file")
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a SASL_SSL connection: the broker's certificate and host
        name are verified (no option to turn that off); None for PLAINTEXT."""
        if self.security_protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def producer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for an ``AIOKafkaProducer``: the connection, acks=all, and
        idempotence, so a retried send the broker already wrote is not written twice."""
        return {**self.client_kwargs(), "acks": "all", "enable_idempotence": True}

    def client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for any aiokafka consumer or admin client
        (producers take ``producer_kwargs``)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol == "SASL_SSL":
            password = require_secret(self.password, "kafka.password")
            kwargs.update(
                ssl_context=self.ssl_context(),
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=password.get_secret_value(),
            )
        return kwargs


class HttpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)]


def require_secret(value: SecretStr | None, name: str) -> SecretStr:
    """A secret must be present and not a well-known placeholder."""
    if value is None or value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        raise ValueError(f"{name} is missing or a placeholder; set a real secret")
    return value


class ServiceSettings(BaseSettings):
    """What every service needs. Services subclass this and add their own fields."""

    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    database_url: SecretStr = Field(
        validation_alias=AliasChoices("DATABASE_URL", "LEADLOOP_DATABASE_URL"),
    )
    kafka: KafkaSettings = KafkaSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Where per-worker scratch data (faust's data dir) lives.
    data_dir: str = ".state/data"

    @field_validator("database_url")
    @classmethod
    def _database_url_present(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("postgres://", "postgresql://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL")
        return v


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], **overrides: Any) -> S:
    """Build settings or exit with a message that never includes a value."""
    try:
        return cls(**overrides)
    except SettingsError as exc:
        # A value that is not even parseable (e.g. invalid JSON for a dict setting):
        # the message names the setting; the value is not repeated.
        what = str(exc).split(" from ", 1)[0]  # 'error parsing value for field "x"'
        sys.stderr.write(f"leadloop: invalid configuration for {cls.__name__}: {what}\n")
        raise ConfigError(2) from None
    except ValidationError as exc:
        lines = [f"leadloop: invalid configuration for {cls.__name__}:"]
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(settings)"
            lines.append(f"  - {where}: {err['msg']}")
        sys.stderr.write("\n".join(lines) + "\n")
        raise ConfigError(2) from None
