"""In docker-compose.yml each service logs in to PostgreSQL as its own user, and the
one-shot ``init`` creates exactly those users with the passwords the services use.

(``tests/e2e/test_logins.py`` runs ``leadloop logins`` on the real PostgreSQL.)
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from tests.contract.test_compose import environment, services, with_defaults

from leadloop.db import SERVICE_ROLES


def _env(name: str) -> dict[str, str]:
    return {k: with_defaults(v) for k, v in environment(services()[name]).items()}


def test_each_service_logs_in_as_its_own_user_with_the_password_init_gives_it() -> None:
    init = _env("init")
    for service, group in SERVICE_ROLES.items():
        url = urlsplit(_env(service)["DATABASE_URL"])
        password_var = f"LEADLOOP_{service.upper().replace('-', '_')}_DB_PASSWORD"
        assert url.username == f"{group}_app", service
        assert url.password == init[password_var], (
            f"{service}: its DATABASE_URL password is not the one init sets "
            f"({password_var}); the login would fail"
        )
        # The same variable must drive both sides when a user sets it.
        raw_url = environment(services()[service])["DATABASE_URL"]
        assert f"${{{password_var}:-" in raw_url, service


def test_no_long_running_service_uses_the_database_owner() -> None:
    owner = urlsplit(_env("init")["DATABASE_URL"]).username
    assert owner == _env("postgres")["POSTGRES_USER"]
    for name in services():
        url = _env(name).get("DATABASE_URL")
        if name != "init" and url:
            assert urlsplit(url).username != owner, f"{name} logs in as the database owner"


def test_init_creates_the_logins_after_the_migrations_that_grant_their_roles() -> None:
    command = services()["init"]["command"]
    script = command[-1] if isinstance(command, list) else command
    steps = [shlex.split(step) for step in script.split("&&")]
    assert ["leadloop", "migrate"] in steps
    assert ["leadloop", "logins"] in steps
    assert steps.index(["leadloop", "migrate"]) < steps.index(["leadloop", "logins"])
