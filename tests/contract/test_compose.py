"""docker-compose.yml is a valid Compose file that wires the whole system.

No Docker engine is needed. The file is validated against the Compose Specification JSON
Schema vendored beside this test as ``compose-spec.json``: byte for byte
``schema/compose-spec.json`` of compose-spec/compose-go (GitHub) at tag v2.13.0, commit
0670a1c375c19defea19147bd82eb126a7c33b29 — the module Docker Compose v2 validates with
(compose-spec/compose-spec keeps only a draft-07 copy of it). To update, copy the file
from a newer tag and change ``SCHEMA_SHA256`` and this note together.

The schema says what Compose accepts; the other tests say what leadloop needs: every
service folder built from the one Dockerfile with its own build arguments, a health check
on everything that keeps running, dependencies that exist and can be satisfied, mounted
files that are in the repository, and dev-only secrets that say so.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "73ca5878c77570ba222a558016c7b3c6770ba5f3377786593e32180666512f8f"

#: The long-running services: a package with a console script of its own. leadloop-review
#: only adds commands to `leadloop` (entry points) and runs as one, not as a container.
SERVICE_DIRS = sorted(
    p
    for p in (ROOT / "services").iterdir()
    if p.is_dir()
    and not p.name.startswith((".", "_"))
    and "[project.scripts]" in (p / "pyproject.toml").read_text(encoding="utf-8")
)
#: Names of variables whose values are secrets; their compose defaults must be dev-only.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|PEPPER|TOKEN|KEY")


@cache
def compose() -> dict[str, Any]:
    # PyYAML's safe loader resolves anchors and `<<` merge keys, as Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def interpolations(text: str) -> list[tuple[str, str, str]]:
    """Every ``${NAME<op>ARG}`` in ``text`` as (name, op, arg); braces inside ARG nest,
    as in compose-go's template package (``${X:-{"a": "b"}}`` is one expression)."""
    found = []
    start = text.find("${")
    while start != -1:
        if text[start - 1 : start] == "$":  # `$${` is an escaped, literal `${`
            start = text.find("${", start + 2)
            continue
        depth, i = 0, start + 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        body = text[start + 2 : i]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", body, re.DOTALL)
        assert m, f"malformed interpolation ${{{body}}}"
        found.append((m[1], m[2] or "", m[3] or ""))
        start = text.find("${", i)
    return found


def with_defaults(value: str) -> str:
    """``value`` as Compose would interpolate it in an environment that sets nothing."""
    out, i = [], 0
    while (start := value.find("${", i)) != -1:
        out.append(value[i:start])
        name, op, arg = interpolations(value[start:])[0]
        assert op in (":-", "-"), f"${{{name}}} has no default"
        out.append(arg)
        i = start + len(f"${{{name}{op}{arg}}}")
    out.append(value[i:])
    return "".join(out)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def one_shot_services() -> set[str]:
    """Services something waits on to *complete*: they run once and exit."""
    return {
        name
        for svc in services().values()
        for name, condition in depends_on(svc).items()
        if condition == "service_completed_successfully"
    }


def dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    return (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()


def build_args(service: dict[str, Any]) -> dict[str, str]:
    build = service.get("build")
    args = (build.get("args") if isinstance(build, dict) else None) or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    return {k: "" if v is None else str(v) for k, v in args.items()}


def built_services(service_dir: Path) -> list[str]:
    """Compose services whose image is ``service_dir``'s service (build argument SERVICE)."""
    return [n for n, s in services().items() if build_args(s).get("SERVICE") == service_dir.name]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        # Docker drops comment lines even inside a continued instruction.
        if line.lstrip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    split = (s.strip().partition(" ") for s in logical)
    return [(word.upper(), rest.strip()) for word, _, rest in split]


#: Instructions whose ``$NAME`` Docker leaves alone at build time: they run in the
#: container, which has the image's ENV but no build arguments.
RUNTIME_INSTRUCTIONS = {"CMD", "ENTRYPOINT", "HEALTHCHECK"}
#: ``$NAME`` or ``${NAME}``; other forms (``${NAME:?message}``) are left alone.
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each variable that ``values`` names replaced; the others as written."""
    return VARIABLE.sub(lambda m: values.get(m[1] or m[2], m[0]), text)


def built_instructions(path: Path, args: Mapping[str, str]) -> list[tuple[str, str]]:
    """The instructions as ``docker build`` with ``args`` sees them: ``$NAME`` and
    ``${NAME}`` replaced by the ARG or ENV declared before (RUN's shell does the same),
    an ARG taking the build argument, else its default, else "". An ARG declared before
    the first FROM reaches only FROM lines, unless a stage declares it again. Names the
    file never declares (the base image's PATH) stay as written."""
    global_args: dict[str, str] | None = None
    scope: dict[str, str] = {}
    steps = []
    for kind, rest in dockerfile_instructions(path):
        if kind not in RUNTIME_INSTRUCTIONS:
            rest = substitute(rest, scope)
        if kind == "FROM":
            global_args = scope if global_args is None else global_args
            scope = {}
        elif kind == "ARG":
            name, has_default, default = rest.partition("=")
            if not has_default and global_args is not None:
                default = global_args.get(name, "")
            scope[name] = args.get(name, default)
        elif kind == "ENV":
            scope.update(image_env([(kind, rest)]))
        steps.append((kind, rest))
    return steps


def image_env(steps: list[tuple[str, str]]) -> dict[str, str]:
    """The environment the image's ENV instructions set (``KEY=value`` pairs)."""
    env: dict[str, str] = {}
    for kind, rest in steps:
        if kind == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def container_command(steps: list[tuple[str, str]]) -> list[str]:
    """CMD as the process it starts: the exec form's argv, or the words of ``sh -c``
    with the image's ENV expanded (the shell's ``exec`` dropped: it replaces itself)."""
    argv = json.loads([rest for kind, rest in steps if kind == "CMD"][-1])
    if argv[:2] != ["sh", "-c"]:
        return argv
    words = shlex.split(substitute(argv[2], image_env(steps)))
    return words[1:] if words[0] == "exec" else words


def bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                sources.append(source)
        elif volume.get("type") == "bind":
            sources.append(volume["source"])
    return sources


# --- the Compose Specification -------------------------------------------------------


def test_vendored_schema_is_the_pinned_upstream_file() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, (
        "tests/contract/compose-spec.json changed; replace it only with an upstream copy "
        "and update SCHEMA_SHA256 and the module docstring"
    )


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(document: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator().iter_errors(document)
    )


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_schema_rejects_what_compose_would_reject() -> None:
    """Guards the guard: a misspelt key and a wrong type must both be reported."""
    broken = json.loads(json.dumps(compose()))
    broken["services"]["kafka"]["helthcheck"] = broken["services"]["kafka"].pop("healthcheck")
    broken["services"]["postgres"]["ports"] = "15432:5432"
    errors = schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any(e.startswith("services/postgres/ports") for e in errors), errors


# --- leadloop's own wiring ------------------------------------------------------------


def test_one_dockerfile_builds_every_service() -> None:
    built = {name: dockerfile_of(svc) for name, svc in services().items() if "build" in svc}
    assert built
    for name, dockerfile in built.items():
        assert dockerfile == DOCKERFILE.resolve(), f"{name} is built from {dockerfile}"
    for service_dir in SERVICE_DIRS:
        assert not (service_dir / "Dockerfile").exists(), (
            f"{service_dir.name} has its own Dockerfile; the root Dockerfile builds every service"
        )


@pytest.mark.parametrize("service_dir", SERVICE_DIRS, ids=lambda p: p.name)
def test_every_service_folder_is_built_with_its_own_arguments(service_dir: Path) -> None:
    package = "leadloop_" + service_dir.name.replace("-", "_")
    built = [n for n in built_services(service_dir) if n not in one_shot_services()]
    assert built, f"no long-running compose service is built with SERVICE={service_dir.name}"
    for name in built:
        build = services()[name]["build"]
        assert (ROOT / build["context"]).resolve() == ROOT, (
            f"{name}: the build context must be the repository root (it needs shared/ and "
            "constraints.txt)"
        )
        assert build_args(services()[name]).get("PACKAGE") == package, name


@pytest.mark.parametrize("service_dir", SERVICE_DIRS, ids=lambda p: p.name)
def test_service_image_runs_its_package_unprivileged_and_probes_healthz(
    service_dir: Path,
) -> None:
    package = "leadloop_" + service_dir.name.replace("-", "_")
    assert built_services(service_dir), (
        f"no compose service is built with SERVICE={service_dir.name}"
    )
    for name in built_services(service_dir):
        svc = services()[name]
        dockerfile = dockerfile_of(svc)
        assert dockerfile is not None
        steps = built_instructions(dockerfile, build_args(svc))
        by_kind: dict[str, list[str]] = {}
        for kind, args in steps:
            by_kind.setdefault(kind, []).append(args)

        assert by_kind["FROM"] == ["python:3.11-slim"]
        assert any(
            f"pip install --no-cache-dir -c constraints.txt ./shared ./services/{service_dir.name}"
            in run
            for run in by_kind.get("RUN", [])
        ), name
        users = by_kind.get("USER", [])
        assert users, "the Dockerfile switches to an unprivileged USER"
        assert users[-1] not in ("", "root", "0"), f"{name} must not run as root"
        if "command" not in svc:
            assert container_command(steps) == ["python", "-m", package], name

        port = image_env(steps).get("LEADLOOP_HTTP__PORT", "")
        assert port.isdigit(), f"{name}: the image sets LEADLOOP_HTTP__PORT, not {port!r}"
        assert by_kind.get("EXPOSE") == [port], name
        for published in svc.get("ports") or []:
            assert str(published).rsplit(":", 1)[-1] == port, f"{name} publishes {published}"
        health = by_kind.get("HEALTHCHECK", [])
        assert health, "the Dockerfile defines a HEALTHCHECK"
        assert "/healthz" in health[-1]
        assert "urllib" in health[-1], "slim images have no curl; probe with python's urllib"


@pytest.mark.parametrize("name", sorted(n for n, s in services().items() if "build" in s))
def test_dockerfile_copies_only_files_that_exist(name: str) -> None:
    dockerfile = dockerfile_of(services()[name])
    assert dockerfile is not None
    assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
    context = ROOT / services()[name]["build"]["context"]
    for kind, args in built_instructions(dockerfile, build_args(services()[name])):
        if kind not in ("COPY", "ADD") or "--from" in args:
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (context / source).exists(), f"{name}: COPY {source} is missing"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".state", ".venv"} <= patterns
    assert any("__pycache__" in p for p in patterns)


@pytest.mark.parametrize("name", sorted(services()))
def test_every_long_running_service_has_a_health_check(name: str) -> None:
    svc = services()[name]
    check = svc.get("healthcheck") or {}
    if name in one_shot_services():
        assert svc.get("restart", "no") == "no", f"{name} runs once; it must not restart"
        return
    assert check.get("disable") not in (True, "true"), f"{name} disables its health check"
    if check.get("test"):
        return
    dockerfile = dockerfile_of(svc)
    assert dockerfile is not None, f"{name} uses a published image and declares no healthcheck"
    assert any(kind == "HEALTHCHECK" for kind, _ in dockerfile_instructions(dockerfile)), (
        f"{name}: neither compose nor {dockerfile.name} defines a health check"
    )


def test_dependencies_exist_and_can_be_satisfied() -> None:
    for name, svc in services().items():
        for target, condition in depends_on(svc).items():
            assert target in services(), f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert not (services()[target].get("healthcheck") or {}).get("disable"), (
                    f"{name} waits for {target} to be healthy, but its check is disabled"
                )


def test_dependencies_have_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "active", f"dependency cycle: {' -> '.join((*path, name))}"
        state[name] = "active"
        for target in depends_on(services()[name]):
            visit(target, (*path, name))
        state[name] = "done"

    for name in services():
        visit(name, ())


def test_migrations_and_topics_exist_before_any_service_starts() -> None:
    init = one_shot_services()
    assert init, "a one-shot init service runs `leadloop migrate` and `leadloop topics create`"
    commands = " ".join(
        " ".join(c) if isinstance(c, list) else c
        for c in (services()[n].get("command", "") for n in init)
    )
    assert "leadloop migrate" in commands
    assert "leadloop topics create" in commands
    for service_dir in SERVICE_DIRS:
        for name in built_services(service_dir):
            svc = services()[name]
            if name not in init:
                assert set(depends_on(svc)) & init, f"{name} must wait for the init service"
                assert all(
                    depends_on(svc)[n] == "service_completed_successfully"
                    for n in set(depends_on(svc)) & init
                )


@pytest.mark.parametrize("name", sorted(services()))
def test_mounted_paths_are_in_the_repository(name: str) -> None:
    for source in bind_sources(services()[name]):
        assert not source.startswith(("/", "~")), f"{name} mounts a host path: {source}"
        assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_services_reach_kafka_and_postgres_by_service_name() -> None:
    for service_dir in SERVICE_DIRS:
        for name in built_services(service_dir):
            env = {k: with_defaults(v) for k, v in environment(services()[name]).items()}
            kafka_host = env["LEADLOOP_KAFKA__BOOTSTRAP_SERVERS"].split(":", 1)[0]
            db = urlsplit(env["DATABASE_URL"])
            assert kafka_host in services(), f"{name}: no compose service {kafka_host}"
            assert db.scheme == "postgresql", name
            assert db.hostname in services(), f"{name}: no compose service {db.hostname}"


def test_secrets_come_from_the_environment() -> None:
    for name, svc in services().items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                assert "${" in value, f"{name}: {key} is written in the file, not read from env"


def test_secrets_default_to_values_marked_dev_only() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    secret_vars = [i for i in interpolations(text) if SECRET_NAME.search(i[0])]
    assert secret_vars, "the compose file reads its secrets from the environment"
    placeholders = {"", "changeme", "change-me", "secret", "password", "xxx", "todo"}
    for name, op, arg in secret_vars:
        if op in (":?", "?"):
            continue  # required: no default to leak
        assert op in (":-", "-"), f"${{{name}}} needs a dev-only default or :? (required)"
        values = json.loads(arg).values() if arg.startswith("{") else [arg]
        for value in values:
            assert value.startswith("dev-only-"), f"{name}: default {value!r} is not dev-only"
            assert value.lower() not in placeholders


def test_grafana_provisioning_matches_the_mounts() -> None:
    grafana = services()["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith(".")}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    assert provisioning == ROOT / "deploy/grafana/provisioning"

    datasources = yaml.safe_load(
        (provisioning / "datasources/prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert [d["uid"] for d in datasources] == ["leadloop-prometheus"]
    assert urlsplit(datasources[0]["url"]).hostname in services()

    providers = yaml.safe_load(
        (provisioning / "dashboards/leadloop.yml").read_text(encoding="utf-8")
    )["providers"]
    for provider in providers:
        assert provider["type"] == "file"
        assert provider["options"]["path"] in mounts, "the dashboards path must be mounted"
        assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"

    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_prometheus_in_compose_scrapes_and_alerts_compose_services() -> None:
    prometheus = services()["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"] if v.startswith(".")}
    config_path = ROOT / mounts["/etc/prometheus/prometheus.yml"]
    assert mounts["/etc/prometheus/rules"] == "./deploy/prometheus/rules"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    targets = [
        target
        for section in (config["scrape_configs"], config["alerting"]["alertmanagers"])
        for job in section
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert "metrics:18084" in targets
    for target in targets:
        assert target.split(":")[0] in services(), f"{config_path.name}: unknown host {target}"
