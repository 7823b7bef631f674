"""The report as JSON: the model's fields under the same names (``Report`` in
domain/model.py documents each), times and dates in ISO 8601, keys sorted."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from leadloop_review.domain.model import Report

__all__ = ["render", "to_json"]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = _plain(asdict(report))
    return out


def render(report: Report) -> str:
    return json.dumps(to_json(report), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
