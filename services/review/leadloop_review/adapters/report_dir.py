"""The directory the scheduled run writes its reports to: ``review-<label>.<format>``
(``review-2026-11.md``, ``review-2026-W48.json``), each written to a temporary file in
the same directory and renamed into place, so a reader (or a run that crashed half-way)
never sees half a report."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

__all__ = ["ReportDir", "report_name"]

_NAME = re.compile(r"^review-(\d{4}-(?:W\d{2}|\d{2}))\.([a-z]+)$")


def report_name(label: str, fmt: str) -> str:
    return f"review-{label}.{fmt}"


class ReportDir:
    """A :class:`~leadloop_review.ports.ReportSink` on one directory (created if absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def written(self, fmt: str) -> set[str]:
        if not self.path.is_dir():
            return set()
        labels = set()
        for entry in self.path.iterdir():
            m = _NAME.match(entry.name)
            if m and m[2] == fmt and entry.is_file():
                labels.add(m[1])
        return labels

    def write(self, label: str, fmt: str, text: str) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / report_name(label, fmt)
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
        return str(target)
