"""The channel configuration from its YAML file (``config/channels.yaml``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from leadloop_ingest.domain.channels import Channels

__all__ = ["load_channels"]


def load_channels(path: Path) -> Channels:
    """Read and validate the file once, at start-up.

    Raises ``OSError`` when it cannot be read, ``yaml.YAMLError`` when it is not YAML
    and ``pydantic.ValidationError`` when it is not a valid channel set (an empty file
    is not one: it would silently turn every channel's records into rejects).
    """
    with path.open(encoding="utf-8") as f:
        return Channels.model_validate(yaml.safe_load(f))
