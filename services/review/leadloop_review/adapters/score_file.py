"""Score model files: JSON, written whole (a temporary file renamed over the target,
so a reader such as ingest's watcher never sees half a model) and read back strictly."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from leadloop_review.domain.score_model import (
    ScoreModel,
    ScoreModelError,
    model_from_json,
    model_to_json,
)

__all__ = ["next_model_path", "read_model", "write_model"]

_NUMBERED = re.compile(r"^score-v(\d+)\.json$")


def write_model(path: Path, model: ScoreModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(model_to_json(model), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_model(path: Path) -> ScoreModel:
    """The model in ``path``; ``ScoreModelError`` (naming the field) when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScoreModelError("", f"cannot read ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ScoreModelError("", "not a JSON file") from None
    return model_from_json(data)


def next_model_path(directory: Path) -> Path:
    """``score-v<N>.json`` in ``directory``, N one more than the highest there."""
    taken = [
        int(m.group(1))
        for p in (directory.iterdir() if directory.is_dir() else ())
        if (m := _NUMBERED.match(p.name))
    ]
    return directory / f"score-v{max(taken, default=0) + 1}.json"
