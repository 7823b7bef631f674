"""deploy/kubernetes/: valid for the API server and true to the services it runs.

Everything is checked offline. The Kubernetes objects are validated (strict: an unknown
field is an error) against the OpenAPI schemas that the pinned kubernetes-validate
package ships, for the oldest and the newest Kubernetes version it knows; KEDA's
ScaledObject and TriggerAuthentication, which are CRDs, against their openAPIV3Schema
copied beside this file from kedacore/keda v2.20.2 (commit
68a5b5028f35b22d50597c69819ab32c4e92f21a, config/crd/bases/keda.sh_scaledobjects.yaml
and keda.sh_triggerauthentications.yaml), made strict the same way.

Then the manifests are held against the code: probe ports against each service's
settings, consumer groups and topics against the topic registry, replica bounds against
partition counts, lag thresholds against the readiness limit, the pod's environment
against the settings classes that read it.
"""

from __future__ import annotations

import copy
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg.connect_utils
import pytest
import yaml
from jsonschema import Draft7Validator
from kubernetes_validate import utils as kubernetes_validate
from pydantic import BaseModel

from leadloop import topics
from leadloop.db import SERVICE_ROLES
from leadloop.runtime import MAX_READY_LAG
from leadloop.settings import ServiceSettings
from leadloop_assignment.settings import AssignmentSettings
from leadloop_handoff.settings import HandoffSettings
from leadloop_ingest.settings import IngestSettings
from leadloop_metrics.settings import MetricsSettings
from leadloop_notifier.settings import NotifierSettings
from leadloop_sla_monitor.settings import SlaSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
HERE = Path(__file__).parent
#: Applied by hand before the rest, so not in kustomization.yaml (see its header).
JOBS_FILE = "jobs.yaml"
#: The oldest and the newest Kubernetes the pinned kubernetes-validate has schemas for.
K8S_VERSIONS = ("1.30.0", "1.37.0")
KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): HERE / "keda-scaledobject-v2.20.2.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): HERE / "keda-triggerauthentication-v2.20.2.json",
}
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "assignment": AssignmentSettings,
    "sla-monitor": SlaSettings,
    "metrics": MetricsSettings,
    "handoff": HandoffSettings,
    "notifier": NotifierSettings,
}
#: Names of variables whose values are secrets (as in test_compose.py).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|PEPPER|TOKEN|KEY")
#: libpq's variables, which asyncpg reads as libpq does; the only non-leadloop names.
LIBPQ_VARS = {
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGSSLROOTCERT",
}
KEDA_SASL = {"SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256"}


# --- loading -----------------------------------------------------------------------------


@cache
def documents(name: str) -> tuple[dict[str, Any], ...]:
    text = (K8S / name).read_text(encoding="utf-8")
    return tuple(doc for doc in yaml.safe_load_all(text) if doc is not None)


def manifest_files() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def all_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name in manifest_files() for doc in documents(name)]


def one(name: str, kind: str) -> dict[str, Any]:
    [doc] = [d for d in documents(name) if d["kind"] == kind]
    return doc


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [found] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def config_map() -> dict[str, str]:
    data: dict[str, str] = one("config.yaml", "ConfigMap")["data"]
    return data


# --- validation --------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties and does not say otherwise: the API server would prune an unknown field
    of a CRD silently, so a misspelt one would simply not take effect."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def keda_validator(api_version: str, kind: str) -> Draft7Validator:
    schema = json.loads(KEDA_SCHEMAS[(api_version, kind)].read_text(encoding="utf-8"))
    return Draft7Validator(strict(schema))


def problems(doc: dict[str, Any]) -> list[str]:
    """Why the API server (or, for KEDA's kinds, KEDA's CRD) would refuse ``doc``."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in KEDA_SCHEMAS:
        return [
            f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in keda_validator(*key).iter_errors(doc)
        ]
    found = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(map(str, error.absolute_path))
            found.append(f"{version}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            found.append(f"{version}: {error.message}")
    return found


def test_kustomization_lists_every_manifest_but_the_jobs() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    # Only `resources`: what `kubectl apply -k` sends is exactly the files checked here.
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    assert sorted(kustomization["resources"]) == sorted(
        name for name in manifest_files() if name != JOBS_FILE
    )


@pytest.mark.parametrize(
    ("name", "doc"),
    all_documents(),
    ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in all_documents()],
)
def test_every_manifest_is_valid(name: str, doc: dict[str, Any]) -> None:
    assert problems(doc) == []


def _broken(name: str, kind: str, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(one(name, kind))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        # A typo in a field name: pruned by the API server without strict validation.
        _broken(
            "ingest.yaml",
            "Deployment",
            ("spec", "template", "spec", "containers", 0, "readinesProbe"),
            {"httpGet": {"path": "/readyz", "port": "http"}},
        ),
        _broken("metrics.yaml", "Deployment", ("spec", "revisionHistoryLimit"), "five"),
        _broken("handoff.yaml", "PodDisruptionBudget", ("spec", "maxUnavailables"), 1),
        _broken("config.yaml", "ConfigMap", ("data", "PGPORT"), 5432),
        # KEDA: trigger metadata is a map of strings; min/max are integers; no such field.
        _broken(
            "assignment.yaml",
            "ScaledObject",
            ("spec", "triggers", 0, "metadata", "lagThreshold"),
            1000,
        ),
        _broken("notifier.yaml", "ScaledObject", ("spec", "maxReplicas"), 6),
        _broken("sla-monitor.yaml", "ScaledObject", ("spec", "scaleTargetRef"), {}),
        _broken(
            "ingest.yaml",
            "TriggerAuthentication",
            ("spec", "secretTargetRef", 0),
            {"parameter": "password", "name": "leadloop-ingest"},
        ),
    ],
    ids=[
        "misspelt-probe",
        "string-for-integer",
        "unknown-pdb-field",
        "non-string-configmap-value",
        "keda-integer-metadata",
        "keda-unknown-field",
        "keda-missing-target",
        "keda-secret-without-key",
    ],
)
def test_the_validators_reject_a_broken_manifest(doc: dict[str, Any]) -> None:
    assert problems(doc), "the validator accepted a broken manifest"


# --- each service ------------------------------------------------------------------------


@pytest.mark.parametrize("service", SETTINGS)
def test_each_service_has_its_objects(service: str) -> None:
    kinds = sorted(doc["kind"] for doc in documents(f"{service}.yaml"))
    assert kinds == sorted(
        ["Deployment", "Service", "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication"]
    )
    for doc in documents(f"{service}.yaml"):
        assert doc["metadata"]["name"] == f"leadloop-{service}"
    assert sorted(manifest_files()) == sorted(
        ["config.yaml", JOBS_FILE, *(f"{name}.yaml" for name in SETTINGS)]
    )


@pytest.mark.parametrize("service", SETTINGS)
def test_probes_are_on_the_services_http_port(service: str) -> None:
    deployment = one(f"{service}.yaml", "Deployment")
    main = container(deployment)
    port = SETTINGS[service].model_fields["http"].default.port
    [declared] = main["ports"]
    assert declared == {"name": "http", "containerPort": port, "protocol": "TCP"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {item["name"]: item.get("value") for item in main["env"]}
    assert env["LEADLOOP_HTTP__PORT"] == str(port)
    assert env["LEADLOOP_HTTP__HOST"] == "0.0.0.0"
    [served] = one(f"{service}.yaml", "Service")["spec"]["ports"]
    assert served["port"] == port
    assert served["targetPort"] == "http"
    # The image the Dockerfile builds for the service, at the project's version.
    assert main["image"] == f"leadloop-{service}:0.1.0"


@pytest.mark.parametrize("service", SETTINGS)
def test_pods_run_locked_down_with_resources(service: str) -> None:
    pod = one(f"{service}.yaml", "Deployment")["spec"]["template"]["spec"]
    main = container(one(f"{service}.yaml", "Deployment"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The Dockerfile's user.
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # A read-only root: faust's data dir must be on a writable volume.
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    data_dir = next(e["value"] for e in main["env"] if e["name"] == "LEADLOOP_DATA_DIR")
    assert any(
        data_dir.startswith(path + "/") and not m.get("readOnly") for path, m in mounts.items()
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in mounts.values():
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]]
    resources = main["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}
    assert "replicas" not in one(f"{service}.yaml", "Deployment")["spec"]


@pytest.mark.parametrize("service", SETTINGS)
def test_the_disruption_budget_keeps_a_worker(service: str) -> None:
    deployment = one(f"{service}.yaml", "Deployment")
    pdb = one(f"{service}.yaml", "PodDisruptionBudget")["spec"]
    scaled = one(f"{service}.yaml", "ScaledObject")["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"] == pdb["selector"]
    assert set(pdb) & {"minAvailable", "maxUnavailable"} == {"maxUnavailable"}
    # Fewer down than the minimum count: a drain never stops the whole group.
    assert 1 <= pdb["maxUnavailable"] < scaled["minReplicaCount"]


@pytest.mark.parametrize("service", SETTINGS)
def test_autoscaling_follows_the_consumer_groups_lag(service: str) -> None:
    prefix = config_map()["LEADLOOP_KAFKA__TOPIC_PREFIX"]
    scaled = one(f"{service}.yaml", "ScaledObject")["spec"]
    auth = one(f"{service}.yaml", "TriggerAuthentication")
    assert scaled["scaleTargetRef"] == {"name": f"leadloop-{service}"}
    consumed = {spec.name: spec.partitions for spec in topics.REGISTRY if service in spec.consumers}
    assert consumed, f"{service} consumes nothing"

    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    named = [t["metadata"]["topic"] for t in triggers]
    assert sorted(named) == sorted(topics.qualified(name, prefix) for name in consumed)
    for trigger in triggers:
        meta = trigger["metadata"]
        # faust's group id is the app id, <prefix>leadloop-<service> (leadloop.kafka.make_app).
        assert meta["consumerGroup"] == f"{prefix}leadloop-{service}"
        assert meta["bootstrapServersFromEnv"] == "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS"
        # Scale out well before a worker's lag makes it unready.
        assert 0 < int(meta["lagThreshold"]) < MAX_READY_LAG
        assert meta["offsetResetPolicy"] == "earliest"
        assert meta["sasl"] == KEDA_SASL[config_map()["LEADLOOP_KAFKA__SASL_MECHANISM"]]
        assert meta["tls"] == "enable"
        assert meta.get("allowIdleConsumers", "false") == "false"
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}

    # A worker beyond the partition count gets no partition: it would only idle.
    assert 2 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    assert scaled["maxReplicaCount"] <= max(consumed.values())

    # KEDA reads the offsets as the service's principal, with the service's password.
    main = container(one(f"{service}.yaml", "Deployment"))
    env = {e["name"]: e for e in main["env"]}
    assert auth["spec"]["env"] == [
        {"parameter": "username", "name": "LEADLOOP_KAFKA__USERNAME", "containerName": main["name"]}
    ]
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"password", "ca"}
    password_ref = env["LEADLOOP_KAFKA__PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (refs["password"]["name"], refs["password"]["key"]) == (
        password_ref["name"],
        password_ref["key"],
    )
    cafile = Path(config_map()["LEADLOOP_KAFKA__SSL_CAFILE"])
    [ca_mount] = [m for m in main["volumeMounts"] if Path(m["mountPath"]) == cafile.parent]
    pod = one(f"{service}.yaml", "Deployment")["spec"]["template"]["spec"]
    [ca_volume] = [v for v in pod["volumes"] if v["name"] == ca_mount["name"]]
    assert (refs["ca"]["name"], refs["ca"]["key"]) == (
        ca_volume["secret"]["secretName"],
        cafile.name,
    )


# --- secrets and the environment -----------------------------------------------------------


def test_no_secret_is_shipped_or_put_in_a_config_map() -> None:
    assert not [doc for _, doc in all_documents() if doc["kind"] == "Secret"]
    assert not [key for key in config_map() if SECRET_NAME.search(key)]


@pytest.mark.parametrize(("name", "doc"), all_documents())
def test_secret_variables_come_from_secrets(name: str, doc: dict[str, Any]) -> None:
    if doc["kind"] not in {"Deployment", "Job"}:
        return
    for main in doc["spec"]["template"]["spec"]["containers"]:
        for item in main.get("env", []):
            if SECRET_NAME.search(item["name"]):
                assert "secretKeyRef" in item.get("valueFrom", {}), f"{name}: {item['name']}"
            # No password in a URL: it comes as PGPASSWORD.
            if item["name"] == "DATABASE_URL":
                userinfo = item["value"].split("//", 1)[1].split("@", 1)[0]
                assert ":" not in userinfo, f"{name}: a password in DATABASE_URL"


def pod_environment(service: str, cafile: Path) -> dict[str, str]:
    """The environment a worker starts with: the ConfigMap, then the container's
    variables with ``$(NAME)`` expanded as the kubelet does, secrets as test values."""
    main = container(one(f"{service}.yaml", "Deployment"))
    env = dict(config_map())
    env["LEADLOOP_KAFKA__SSL_CAFILE"] = str(cafile)
    for item in main["env"]:
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = (
                '{"web_form": "k8s-test-webhook-0123456789"}'
                if ref["key"].endswith("-secrets")
                else f"k8s-test-{ref['name']}-{ref['key']}"
            )
    return env


def _has_field(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested = field.annotation
    return (
        isinstance(nested, type) and issubclass(nested, BaseModel) and _has_field(nested, path[1:])
    )


@pytest.mark.parametrize("service", SETTINGS)
def test_the_pods_environment_makes_the_services_settings(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.crt"
    cafile.write_text("not read: the settings only check that the file is there\n")
    env = pod_environment(service, cafile)
    settings_class = SETTINGS[service]

    # The settings ignore unknown variables, so a misspelt name would be dropped quietly.
    for name in env:
        if name in LIBPQ_VARS or name == "DATABASE_URL":
            continue
        assert name.startswith("LEADLOOP_"), name
        path = name.removeprefix("LEADLOOP_").lower().split("__")
        assert _has_field(settings_class, path), f"{service} has no setting for {name}"

    for name in list(os.environ):
        if name.startswith(("LEADLOOP_", "PG")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)  # config/ as the mounted ConfigMap holds it
    settings = settings_class()
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.username == service
    assert settings.kafka.password is not None
    assert settings.kafka.password.get_secret_value() == env["LEADLOOP_KAFKA__PASSWORD"]
    assert settings.http.port == settings_class.model_fields["http"].default.port

    # asyncpg takes the login from the URL and the password from PGPASSWORD (the same
    # parser its connect uses; TLS left out here, the test has no CA to verify with).
    addrs, params = asyncpg.connect_utils._parse_connect_dsn_and_args(
        dsn=settings.database_url.get_secret_value(),
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        ssl=False,
        service=None,
        servicefile=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
    )
    assert addrs == [(env["PGHOST"], int(env["PGPORT"]))]
    assert params.user == SERVICE_ROLES[service] + "_app"
    assert params.password == env["PGPASSWORD"]
    assert params.database == env["PGDATABASE"]


def test_the_migrate_job_sets_the_logins_the_services_use() -> None:
    job = next(d for d in documents(JOBS_FILE) if d["metadata"]["name"] == "leadloop-migrate")
    [main] = job["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in main["env"] if "valueFrom" in e}
    for service in SETTINGS:
        variable = f"LEADLOOP_{service.upper().replace('-', '_')}_DB_PASSWORD"
        deployment_env = container(one(f"{service}.yaml", "Deployment"))["env"]
        [used] = [
            e["valueFrom"]["secretKeyRef"] for e in deployment_env if e["name"] == "PGPASSWORD"
        ]
        assert refs[variable] == used, service
    assert set(SERVICE_ROLES) == set(SETTINGS)


def test_the_readmes_scaling_table_matches_the_registry() -> None:
    text = (K8S / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in SETTINGS:
            rows[cells[0]] = (cells[1], cells[2])
    assert set(rows) == set(SETTINGS)
    for service, (group, listed) in rows.items():
        assert group == f"`leadloop-{service}`"
        consumed = {
            spec.name: spec.partitions for spec in topics.REGISTRY if service in spec.consumers
        }
        assert set(re.findall(r"[a-z]+\.[a-z-]+", listed)) == set(consumed), service
        assert {int(n) for n in re.findall(r"\((\d+)", listed)} == set(consumed.values()), service
