"""``erase`` reads the people to erase from a file or stdin, never from argv: the old
``--email``/``--phone`` flags refuse, pointing at ``--from-file``, and no message
repeats an address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from leadloop_ingest.domain.erasure import (
    ErasureCounts,
    ErasureSubject,
    InvalidSubject,
    subjects_from_lines,
)
from leadloop_ingest.tools import erase as erase_mod
from leadloop_ingest.tools.__main__ import app

ADDRESS = "Erase.Me.5521@Example.org"


@pytest.fixture(autouse=True)
def _process_logging_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command configures logging for the whole process, with loggers cached on
    first use: in the test process that would outlive this file and blind later tests'
    ``capture_logs``. What is checked here is the input handling."""
    monkeypatch.setattr(erase_mod, "configure_logging", lambda: None)


def test_lines_name_one_person_each() -> None:
    lines = [
        "# people who asked on 2026-12-01",
        f"email={ADDRESS}, phone=+86 139 4417 2288",
        "",
        "phone=139 4417 2299, region=cn",
        "other.person@example.com",
        "+8613944172211",
    ]
    assert subjects_from_lines(lines) == [
        ErasureSubject(email="erase.me.5521@example.org", phone="+8613944172288"),
        ErasureSubject(email=None, phone="+8613944172299"),
        ErasureSubject(email="other.person@example.com", phone=None),
        ErasureSubject(email=None, phone="+8613944172211"),
    ]
    assert subjects_from_lines(["13944172299"], default_region="CN") == [
        ErasureSubject(email=None, phone="+8613944172299")
    ]


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([], "names nobody"),
        (["ok@example.com", "mail=x@example.com"], "line 2: unknown field"),
        (["email=not-an-address"], "line 1: the email is not a valid address"),
        (["phone=13944172299"], "line 1: the phone is not a valid number"),
        (["email=a@example.com, email=b@example.com"], "line 1: email given twice"),
    ],
)
def test_a_bad_line_is_named_by_number_without_its_value(lines: list[str], problem: str) -> None:
    with pytest.raises(InvalidSubject, match=problem) as caught:
        subjects_from_lines(lines)
    assert "example.com" not in str(caught.value)
    assert "13944172299" not in str(caught.value)


@pytest.mark.parametrize("flag", ["--email", "--phone"])
def test_the_old_flags_refuse_and_point_to_from_file(flag: str) -> None:
    result = CliRunner().invoke(app, ["erase", flag, ADDRESS])
    assert result.exit_code == 2
    assert "--from-file" in result.output
    assert "process list" in result.output
    assert ADDRESS.lower() not in result.output.lower()


@pytest.fixture
def erased(monkeypatch: pytest.MonkeyPatch) -> list[ErasureSubject]:
    """Records whom the command would erase, with no database."""
    calls: list[ErasureSubject] = []

    async def fake_erase_person(subject: ErasureSubject, **_: Any) -> ErasureCounts:
        calls.append(subject)
        return ErasureCounts(leads=1, rows={"leads": 1})

    monkeypatch.setattr(erase_mod, "erase_person", fake_erase_person)
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:1/unused")
    monkeypatch.setenv("LEADLOOP_IDENTITY_PEPPER", "a-real-looking-pepper-4417")
    return calls


def test_reads_the_people_from_stdin(erased: list[ErasureSubject]) -> None:
    result = CliRunner().invoke(
        app, ["erase"], input=f"email={ADDRESS}\nphone=139 4417 2288, region=CN\n"
    )
    assert result.exit_code == 0, result.output
    assert erased == [
        ErasureSubject(email="erase.me.5521@example.org", phone=None),
        ErasureSubject(email=None, phone="+8613944172288"),
    ]
    assert "erase.me" not in result.output.lower()
    assert "person 2 of 2" in result.output


def test_reads_the_people_from_a_file(erased: list[ErasureSubject], tmp_path: Path) -> None:
    people = tmp_path / "people.txt"
    people.write_text(f"{ADDRESS}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["erase", "--from-file", str(people)])
    assert result.exit_code == 0, result.output
    assert erased == [ErasureSubject(email="erase.me.5521@example.org", phone=None)]


def test_a_bad_line_stops_before_anyone_is_erased(erased: list[ErasureSubject]) -> None:
    result = CliRunner().invoke(app, ["erase"], input=f"{ADDRESS}\nemail=nobody\n")
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert erased == []
