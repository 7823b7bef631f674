"""The report's formats. Each renderer is a module with ``render(report) -> str``;
``render_html`` (charts) plugs in here when it exists."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from leadloop_review.domain.model import Report

__all__ = ["formats", "renderer"]

_MODULES = {
    "md": "leadloop_review.render_md",
    "json": "leadloop_review.render_json",
    "html": "leadloop_review.render_html",
}


def formats() -> tuple[str, ...]:
    """The formats this installation can write."""
    return tuple(f for f in _MODULES if importlib.util.find_spec(_MODULES[f]) is not None)


def renderer(fmt: str) -> Callable[[Report], str]:
    if fmt not in formats():
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(formats())}")
    render: Callable[[Report], str] = importlib.import_module(_MODULES[fmt]).render
    return render
