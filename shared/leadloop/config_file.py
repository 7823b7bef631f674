"""Loading a YAML configuration file into its pydantic model: the one way every service
reads ``config/*.yaml``.

Whatever goes wrong — the file is missing or unreadable, is not YAML, is not a mapping,
or does not validate — becomes one :class:`ConfigFileError` whose message names the file
and, for each problem, the field (pydantic's location, ``teams.0.reps.1.rep_id``) and
what is wrong with it. Values are never repeated: configuration files hold secrets'
variable names next to people's addresses, and a message ends up in logs.

A service's entry point runs under :func:`exit_on_config_error`, which prints the
message as ``<service>: <message>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from leadloop.settings import ConfigError

__all__ = ["EXIT_STATUS", "ConfigFileError", "exit_on_config_error", "load_yaml", "read_yaml"]

#: The exit status of a process refused by its configuration (as for bad settings).
EXIT_STATUS = 2

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(Exception):
    """A configuration file cannot be used.

    ``problems`` are ``(field, reason)`` pairs; ``field`` is a dotted path into the file,
    ``""`` when the problem is the file as a whole. The message has one line per
    problem, ``<file>: <field>: <reason>``, and never contains a value of the file.
    """

    def __init__(self, path: Path | str, field: str, reason: str, *more: tuple[str, str]) -> None:
        self.path = Path(path)
        self.problems: tuple[tuple[str, str], ...] = ((field, reason), *more)
        super().__init__(
            "\n".join(
                f"{self.path}: {f}: {r}" if f else f"{self.path}: {r}" for f, r in self.problems
            )
        )

    @classmethod
    def invalid(
        cls, path: Path | str, exc: ValidationError, within: tuple[int | str, ...] = ()
    ) -> ConfigFileError:
        """The error for a failed validation of (the part at ``within`` of) the file:
        each field by its path from the top of the file, with pydantic's message."""
        problems = [
            (_field_path((*within, *err["loc"])), err["msg"])
            for err in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        return cls(path, *problems[0], *problems[1:])


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``("teams", 0, "reps", 1, "rep_id")`` → ``teams.0.reps.1.rep_id``."""
    return ".".join(str(part) for part in loc)


def read_yaml(path: Path, *, allow_empty: bool = False) -> dict[str, Any]:
    """The top-level mapping of the YAML file at ``path``.

    An empty file is ``{}`` with ``allow_empty``, else refused. Raises
    :class:`ConfigFileError` when the file cannot be read, is not YAML (with the line
    and column of the mistake) or its top level is not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigFileError(path, "", f"cannot read ({reason})") from None
    except UnicodeDecodeError:
        raise ConfigFileError(path, "", "cannot read (not UTF-8 text)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(path, "", _yaml_reason(exc)) from None
    if data is None and allow_empty:
        return {}
    if data is None:
        raise ConfigFileError(path, "", "the file is empty; expected a mapping")
    if not isinstance(data, Mapping):
        found = "a list" if isinstance(data, list) else "a single value"
        raise ConfigFileError(path, "", f"expected a mapping at the top level, found {found}")
    return dict(data)


def load_yaml(path: Path, model: type[M], *, allow_empty: bool = False) -> M:
    """``model`` validated from the YAML file at ``path``; raises :class:`ConfigFileError`
    naming the file and every failing field (see :func:`read_yaml` for the rest)."""
    data = read_yaml(path, allow_empty=allow_empty)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError.invalid(path, exc) from None


def exit_on_config_error(service: str) -> _ExitOnConfigError:
    """A context for a service's start-up (or an operator command) in which a
    :class:`ConfigFileError` prints ``<service>: <message>`` on stderr, one line per
    problem, and exits with :data:`EXIT_STATUS` instead of a traceback.

        with exit_on_config_error("assignment"):
            rules = load_rules(path)
    """
    return _ExitOnConfigError(service)


class _ExitOnConfigError:
    # A class, not @contextmanager: an ``__exit__`` that returns None tells type
    # checkers that nothing is swallowed, so a ``return`` inside the block is final.
    def __init__(self, service: str) -> None:
        self._service = service

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, ConfigFileError):
            lines = str(exc).splitlines()
            sys.stderr.write("".join(f"{self._service}: {line}\n" for line in lines))
            raise ConfigError(EXIT_STATUS) from None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    # The problem text names the kind of token, not the file's contents.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    if mark is None:
        return f"invalid YAML ({problem})"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1} ({problem})"
