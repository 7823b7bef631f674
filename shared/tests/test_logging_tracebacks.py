"""Tracebacks go through the PII scrubber: structlog's ``exc_info``, an exception passed
as a value, the standard library's ``logger.exception`` (faust, aiokafka, asyncio), an
uncaught exception, and asyncpg's error text with PostgreSQL's DETAIL line."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pytest
import structlog

from leadloop.logging import configure, get_logger

EMAIL, PHONE, NAME = "wei.zhang@example.com", "+86 139 1234 5678", "Zhang Wei"
SECRETS = ("wei.zhang", "139 1234", "Zhang Wei")


def failure() -> ValueError:
    try:
        raise ValueError(f"cannot reach {EMAIL} at {PHONE}")
    except ValueError as exc:
        return exc


def unique_violation() -> asyncpg.PostgresError:
    """What asyncpg raises on a duplicate key: str(exc) carries the row's values."""
    return asyncpg.exceptions.UniqueViolationError.new(
        {
            "C": "23505",
            "M": 'duplicate key value violates unique constraint "leads_email_key"',
            "D": f"Key (name, email)=({NAME}, {EMAIL}) already exists.",
        }
    )


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Configures the logging in the test's own phase (capsys swaps stderr per phase,
    and the handlers keep the stream they were given), and undoes it afterwards."""
    hooks = sys.excepthook
    yield
    sys.excepthook = hooks
    structlog.reset_defaults()


def clean(text: str) -> None:
    assert text, "nothing was logged"
    for secret in SECRETS:
        assert secret not in text, text


def test_structlog_exc_info_is_scrubbed(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("test")
    exc = failure()
    get_logger("t").error("send_failed", exc_info=exc)
    err = capsys.readouterr().err
    clean(err)
    assert "ValueError: cannot reach [redacted] at [redacted]" in err


def test_an_exception_as_a_value_is_scrubbed(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("test")
    get_logger("t").warning("retrying", error=failure(), db_error=unique_violation())
    clean(capsys.readouterr().err)


def test_asyncpg_detail_is_dropped(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure("test")
    try:
        raise unique_violation()
    except asyncpg.PostgresError:
        get_logger("t").exception("store_failed")
        logging.getLogger("asyncpg").exception("store failed")
    err = capsys.readouterr().err
    clean(err)
    assert "DETAIL:  [redacted]" in err
    assert 'violates unique constraint "leads_email_key"' in err  # the useful part stays


def test_stdlib_tracebacks_are_scrubbed(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("test")
    try:
        raise failure()
    except ValueError:
        logging.getLogger("faust.worker").exception("agent crashed")
    logging.getLogger("mode").error("stack", stack_info=True)
    err = capsys.readouterr().err
    clean(err)
    assert "Traceback" in err


def test_an_uncaught_exception_is_scrubbed() -> None:
    program = (
        "from leadloop.logging import configure\n"
        "configure('test')\n"
        f"raise RuntimeError('lead {EMAIL} {PHONE} failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    clean(done.stderr)
    assert "RuntimeError: lead [redacted] [redacted] failed" in done.stderr
