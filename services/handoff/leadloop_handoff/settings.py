"""The hand-off's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["HandoffSettings"]


class HandoffSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18085)
    #: The CRM targets (config/crm.yaml); secrets are named there, read from the env.
    crm_file: Path = Path("config/crm.yaml")
    #: The read API's clients, their scopes and token hashes.
    api_clients_file: Path = Path("config/api-clients.yaml")
    #: How often each target's due deliveries are looked for.
    tick_seconds: Annotated[float, Field(gt=0, le=60)] = 0.2
    #: How long a claimed delivery is reserved for its worker; a worker that dies
    #: mid-send leaves it to be sent again after this.
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0
    #: Deliveries claimed per pass per target.
    claim_batch: Annotated[int, Field(ge=1, le=1000)] = 100
    #: How often erased leads are looked for.
    erasure_scan_seconds: Annotated[float, Field(gt=0, le=600)] = 2.0
    #: Retry backoff: first step and cap (per target attempts in config/crm.yaml).
    retry_base_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    retry_cap_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
