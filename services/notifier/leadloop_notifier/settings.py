"""notifier's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, Field, SecretStr

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["NotifierSettings"]


class NotifierSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18086)
    #: Channels, teams (templates, channel order, coalescing, CRM link), node reminders,
    #: the Alertmanager bridge's routes.
    notify_file: Path = Path("config/notify.yaml")
    #: Business calendars per team: quiet hours and the digest's start of day.
    calendars_file: Path = Path("config/calendars.yaml")
    #: Team template sets that override or add to the shipped ones (zh-CN, en).
    templates_dir: Path = Path("config/notify-templates")
    #: How often due outbox rows are looked for.
    tick_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: How often reps whose working day began are given their digest.
    digest_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: Outbox rows claimed per pass.
    claim_limit: Annotated[int, Field(ge=1, le=10_000)] = 500
    #: Messages in flight to vendors at once per worker.
    send_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    #: Real seconds a claimed row is held by its sender; after a crash another worker
    #: takes it over (and may resend it) once this has passed.
    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: Finished outbox rows, applied-event ids, digests and resolved steps are deleted
    #: after this many days. Keep it above the input topics' retention (7 days): an
    #: event whose id is forgotten must not be redeliverable any more.
    retention_days: Annotated[float, Field(ge=8, le=3650)] = 30.0
    #: Bearer token Alertmanager must send to POST /v1/alertmanager/{channel}
    #: (webhook_configs http_config.authorization). Unset: the bridge takes any caller
    #: that can reach the port (loopback by default).
    alertmanager_token: SecretStr | None = None
    #: Test only: service time runs this many times faster than real time ...
    test_time_scale: Annotated[float, Field(gt=0, le=1_000_000)] = 1.0
    #: ... starting from this instant (default: the real time at start-up).
    test_time_origin: AwareDatetime | None = None

    def accelerated(self) -> bool:
        return self.test_time_scale != 1.0 or self.test_time_origin is not None

    def origin(self) -> datetime | None:
        return self.test_time_origin
