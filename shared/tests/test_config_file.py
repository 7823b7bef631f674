"""One loader for every configuration file: errors name the file and the field, never a
value, and a service's entry point exits with status 2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field

from leadloop.config_file import (
    EXIT_STATUS,
    ConfigFileError,
    exit_on_config_error,
    load_yaml,
    read_yaml,
)
from leadloop.settings import ConfigError

SECRET = "hunter2-do-not-print-me"


class Rep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    capacity: int = 100


class Team(BaseModel):
    team_id: str
    reps: list[Rep]


class Roster(BaseModel):
    teams: list[Team]
    note: str = ""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, *, allow_empty: bool = False) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as caught:
        load_yaml(path, Roster, allow_empty=allow_empty)
    return caught.value


def test_a_valid_file_gives_the_model_with_its_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "teams:\n  - team_id: t\n    reps: [{rep_id: a-1}]\n")
    roster = load_yaml(path, Roster)
    assert roster.teams[0].reps[0] == Rep(rep_id="a-1", capacity=100)
    assert roster.note == ""


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    error = error_of(tmp_path / "absent.yaml")
    assert str(error) == f"{tmp_path / 'absent.yaml'}: cannot read (No such file or directory)"
    assert error.path == tmp_path / "absent.yaml"


def test_a_directory_or_unreadable_file_is_named(tmp_path: Path) -> None:
    assert str(error_of(tmp_path)).startswith(f"{tmp_path}: cannot read (")
    path = write(tmp_path, "teams: []\n")
    if os.geteuid() != 0:  # root reads any file
        path.chmod(0)
        assert str(error_of(path)) == f"{path}: cannot read (Permission denied)"
    path.chmod(0o600)
    path.write_bytes(b"note: \xff\xfe\n")
    assert str(error_of(path)) == f"{path}: cannot read (not UTF-8 text)"


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"teams:\n  - team_id: t\n note: [{SECRET}\n")
    message = str(error_of(path))
    assert message.startswith(f"{path}: invalid YAML at line 3, column 2 (")
    assert SECRET not in message


@pytest.mark.parametrize(
    ("text", "found"),
    [("- a\n- b\n", "a list"), (f"{SECRET}\n", "a single value")],
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    path = write(tmp_path, text)
    assert str(error_of(path)) == f"{path}: expected a mapping at the top level, found {found}"


def test_an_empty_file_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert str(error_of(path)) == f"{path}: the file is empty; expected a mapping"
    assert read_yaml(path, allow_empty=True) == {}
    # Allowed, the empty file is an empty mapping: here still without its teams.
    assert str(error_of(path, allow_empty=True)) == f"{path}: teams: Field required"


def test_every_failing_field_is_named_by_its_path_without_its_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "teams:\n"
        "  - team_id: t\n"
        f"    reps: [{{rep_id: ok}}, {{rep_id: '{SECRET} !'}}, {{rep_id: b, capacity: many}}]\n"
        "  - reps: []\n"
        f"note: {{password: {SECRET}}}\n",
    )
    error = error_of(path)
    assert error.problems == (
        ("teams.0.reps.1.rep_id", "String should match pattern '^[a-z0-9-]+$'"),
        (
            "teams.0.reps.2.capacity",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ("teams.1.team_id", "Field required"),
        ("note", "Input should be a valid string"),
    )
    lines = str(error).splitlines()
    assert lines == [f"{path}: {field}: {reason}" for field, reason in error.problems]
    assert SECRET not in str(error)
    assert "many" not in str(error)


def test_an_unknown_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, f"teams:\n  - team_id: t\n    reps: [{{rep_id: a, pin: {SECRET}}}]\n")
    assert str(error_of(path)) == f"{path}: teams.0.reps.0.pin: Extra inputs are not permitted"


def test_a_check_after_validation_raises_the_same_error() -> None:
    error = ConfigFileError(Path("rules.yaml"), "teams.2.working_hours", "set, but no calendars")
    assert str(error) == "rules.yaml: teams.2.working_hours: set, but no calendars"
    assert error.problems == (("teams.2.working_hours", "set, but no calendars"),)


def test_the_entry_point_prints_service_and_message_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError) as exited, exit_on_config_error("assignment"):
        raise ConfigFileError("rules.yaml", "teams.0.team_id", "Field required", ("x", "why"))
    assert isinstance(exited.value, SystemExit)
    assert exited.value.code == EXIT_STATUS == 2
    assert capsys.readouterr().err == (
        "assignment: rules.yaml: teams.0.team_id: Field required\nassignment: rules.yaml: x: why\n"
    )


def test_other_errors_and_a_clean_block_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    with exit_on_config_error("metrics"):
        value = 1
    assert value == 1
    with pytest.raises(KeyError), exit_on_config_error("metrics"):
        raise KeyError("not a configuration file's fault")
    assert capsys.readouterr().err == ""
