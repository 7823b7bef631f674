"""The channel configuration from its YAML file (``config/channels.yaml``)."""

from __future__ import annotations

from pathlib import Path

from leadloop.config_file import load_yaml
from leadloop_ingest.domain.channels import Channels

__all__ = ["load_channels"]


def load_channels(path: Path) -> Channels:
    """Read and validate the file once, at start-up.

    Raises ``ConfigFileError`` naming the file and the field when it cannot be read, is
    not YAML or is not a valid channel set (an empty file is not one: it would silently
    turn every channel's records into rejects).
    """
    return load_yaml(path, Channels)
