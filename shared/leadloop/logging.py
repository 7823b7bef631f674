"""Structured logging (structlog, JSON lines on stderr) that never prints personal data.

Two guards: keys that name personal data are replaced outright, and every string
value is scrubbed of anything shaped like an email address or a phone number, so a
careless ``log.info("bad", detail=str(exc))`` cannot leak a contact either. Tracebacks
are text like any other: structlog renders them before scrubbing, the standard
library's records are scrubbed after formatting, and an uncaught exception is logged
through the same path instead of printed raw. A PostgreSQL error's ``DETAIL:`` line
(row values) is dropped whole.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["PII_KEYS", "configure", "get_logger", "scrub"]

#: Keys whose values are personal data and are never logged.
PII_KEYS = frozenset(
    {"email", "phone", "name", "raw", "body", "value", "first_name", "last_name", "wechat_id"}
)
_REDACTED = "[redacted]"
# The top-level domain may be internationalised (例子.中国), so any letters, not only A-Z.
_EMAIL = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[^\W\d_]{2,}")
# Seven or more digits, optionally with a leading + and separators: a phone number.
# An ISO date or timestamp (group 1) is digit-rich too, so it is matched first and kept.
_PHONE = re.compile(
    r"(\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?)"
    r"|\+?\d[\d\s().-]{5,}\d"
)


# PostgreSQL's DETAIL (which asyncpg puts into str(exc), hence into every traceback)
# quotes row values: "Key (email)=(...) already exists", "Failing row contains (...)".
# A name there has no shape to recognise, so the whole detail goes.
_PG_DETAIL = re.compile(r"^(\s*DETAIL:)[ \t]*\S.*$", re.MULTILINE)


def scrub(text: str) -> str:
    """Replace email- and phone-shaped substrings (ISO timestamps are left intact) and
    the values PostgreSQL quotes in an error's ``DETAIL:`` line."""
    text = _PG_DETAIL.sub(lambda m: f"{m.group(1)}  {_REDACTED}", text)
    return _PHONE.sub(lambda m: m.group(1) or _REDACTED, _EMAIL.sub(_REDACTED, text))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: (_REDACTED if k in PII_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (an exception passed as error=exc, a model) would be rendered by
    # repr() in the JSON renderer, after this processor: render and scrub it here.
    return scrub(repr(value))


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in PII_KEYS:
            event_dict[key] = _REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


class _ScrubbingFormatter(logging.Formatter):
    """Scrubs the whole formatted record: tracebacks (``exc_info``) and ``stack_info``
    are added by the formatter, after any filter has run."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """``sys.excepthook``: an uncaught exception is logged (scrubbed), not printed raw."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("leadloop").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: Any) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


class _ScrubStdlib(logging.Filter):
    """Scrubs records from libraries that log through the standard library (faust, aiokafka)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not kill the worker
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        return True


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was
    configured: a tool configured inside a test (or under anything else that swaps the
    stream and closes it afterwards) must not keep writing to the closed one."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(service: str, level: str = "info") -> None:
    """Configure structlog and the standard library once, in a composition root."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.addFilter(_ScrubStdlib())
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks become text first, so that they are scrubbed too.
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _redact_processor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
