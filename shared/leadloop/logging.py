"""Structured logging (structlog, JSON lines on stderr) that never prints personal data.

Two guards: keys that name personal data are replaced outright, and every string
value is scrubbed of anything shaped like an email address or a phone number, so a
careless ``log.info("bad", detail=str(exc))`` cannot leak a contact either.
"""

from __future__ import annotations

import logging
import re
import sys
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


def scrub(text: str) -> str:
    """Replace email- and phone-shaped substrings (ISO timestamps are left intact)."""
    return _PHONE.sub(lambda m: m.group(1) or _REDACTED, _EMAIL.sub(_REDACTED, text))


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: (_REDACTED if k in PII_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in PII_KEYS:
            event_dict[key] = _REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


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


def configure(service: str, level: str = "info") -> None:
    """Configure structlog and the standard library once, in a composition root."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ScrubStdlib())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
