"""The learned score model from its JSON file (``LEADLOOP_SCORE_MODEL_FILE``), reloaded
live when the file changes, like assignment's rule set.

Unlike the rule set, a model file that cannot be used never stops ingest: the score is
advice to routing, and intake must go on. A file that is missing, not JSON or not a
model is refused with an error log naming the file and the field (never a value); the
score in force stays — the previous model, or the hand-set weights if none was loaded —
and the file is looked at again when it changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from leadloop.logging import get_logger
from leadloop_ingest.domain.learned_score import (
    LearnedScore,
    ScoreModelInvalid,
    parse_learned_score,
)

__all__ = ["ScoreModelFile", "load_score_model"]

log = get_logger(__name__)


def load_score_model(path: Path) -> LearnedScore:
    """The model of ``path``; :class:`ScoreModelInvalid` says why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScoreModelInvalid("", f"cannot read ({exc.strerror or type(exc).__name__})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ScoreModelInvalid("", "not a JSON file") from None
    return parse_learned_score(data)


class ScoreModelFile:
    """``current()`` is the model in force, or None for the hand-set weights."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: int | None = None
        self._model: LearnedScore | None = None
        self.current()

    def current(self) -> LearnedScore | None:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except OSError as exc:
            if self._mtime is None and self._model is None:
                # Said once (at start): later looks at a missing file stay quiet.
                self._mtime = -1
                log.error(
                    "score_model_refused",
                    file=str(self._path),
                    error=f"cannot read ({exc.strerror})",
                    version=None,
                )
            return self._model
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                model = load_score_model(self._path)
            except ScoreModelInvalid as exc:
                in_force = self._model.version if self._model else None
                log.error(
                    "score_model_refused", file=str(self._path), error=str(exc), version=in_force
                )
            else:
                log.info(
                    "score_model_loaded",
                    file=str(self._path),
                    version=model.version,
                    previous=self._model.version if self._model else None,
                )
                self._model = model
        return self._model
