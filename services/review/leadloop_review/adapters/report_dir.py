"""The directory the scheduled run writes its reports to: ``review-<label>.<format>``
(``review-2026-11.md``, ``review-2026-W48.json``), each written to a temporary file in
the same directory and renamed into place, so a reader (or a run that crashed half-way)
never sees half a report.

Announcements live beside them as hidden files: ``.review-<label>.announcement.json``
(the staged event) until ``.review-<label>.announced`` marks the broker's
acknowledgement. Deleting a marker announces that period again, with the same event id.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

__all__ = ["ReportDir", "report_name"]

_NAME = re.compile(r"^review-(\d{4}-(?:W\d{2}|\d{2}))\.([a-z]+)$")
_STAGED = re.compile(r"^\.review-(\d{4}-(?:W\d{2}|\d{2}))\.announcement\.json$")


def report_name(label: str, fmt: str) -> str:
    return f"review-{label}.{fmt}"


def _staged_name(label: str) -> str:
    return f".review-{label}.announcement.json"


def _marker_name(label: str) -> str:
    return f".review-{label}.announced"


class ReportDir:
    """A :class:`~leadloop_review.ports.ReportSink` on one directory (created if absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def written(self, fmt: str) -> set[str]:
        return {label for label, f in self._reports() if f == fmt}

    def write(self, label: str, fmt: str, text: str) -> str:
        return str(self._put(report_name(label, fmt), text))

    def files(self, label: str) -> list[str]:
        # The directory's own name and the file's: where the reports are, without the
        # host's absolute path.
        name = self.path.resolve().name
        return sorted(f"{name}/{report_name(lb, f)}" for lb, f in self._reports() if lb == label)

    def stage(self, label: str, announcement: str) -> None:
        self._put(_staged_name(label), announcement)

    def unannounced(self) -> dict[str, str]:
        if not self.path.is_dir():
            return {}
        found = {}
        for entry in self.path.iterdir():
            m = _STAGED.match(entry.name)
            if m and not (self.path / _marker_name(m[1])).exists():
                found[m[1]] = entry.read_text(encoding="utf-8")
        return found

    def mark_announced(self, label: str) -> None:
        self._put(_marker_name(label), "")

    def _reports(self) -> list[tuple[str, str]]:
        if not self.path.is_dir():
            return []
        return [
            (m[1], m[2])
            for entry in self.path.iterdir()
            if (m := _NAME.match(entry.name)) and entry.is_file()
        ]

    def _put(self, name: str, text: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
