"""Loading config/notify.yaml and the calendars once, failing with the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from leadloop.settings import ConfigError

__all__ = ["load_yaml_model"]

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M]) -> M:
    """``model`` validated from the YAML file at ``path``; on any error a message naming
    the file and each failing field, and a clean exit."""
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
        return model.model_validate(data)
    except OSError as exc:
        _fail(f"{path}: cannot read ({exc.strerror})")
    except yaml.YAMLError as exc:
        _fail(f"{path}: not valid YAML ({type(exc).__name__})")
    except ValidationError as exc:
        lines = [f"{path}: invalid {model.__name__}:"]
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            lines.append(f"  - {where}: {err['msg']}")
        _fail("\n".join(lines))
    raise AssertionError("unreachable")


def config_error(message: str) -> ConfigError:
    import sys

    sys.stderr.write(f"leadloop notifier: {message}\n")
    return ConfigError(2)


def _fail(message: str) -> None:
    raise config_error(message)
