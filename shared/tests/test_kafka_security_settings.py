"""Kafka security settings: PLAINTEXT by default, SASL_SSL on request with verified TLS
and SCRAM; a missing secret stops start-up without printing values; faust and aiokafka
get the same connection; the ACLs follow the topic registry. No broker is involved."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import ValidationError
from tests.support.secure_kafka import acls_module

from leadloop.kafka import faust_credentials
from leadloop.settings import ConfigError, KafkaSettings, ServiceSettings, load
from leadloop.topics import REGISTRY

GOOD_URL = "postgresql://leadloop:db-pw-7f3a@127.0.0.1:5432/leadloop"
KAFKA_PASSWORD = "kafka-Pw-9d2c71e0b4"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEADLOOP_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", GOOD_URL)


@pytest.fixture(scope="module")
def cafile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CA certificate (ssl refuses to load anything else)."""
    folder = tmp_path_factory.mktemp("ca")
    cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=unit-test-ca"
    subprocess.run(
        [*cmd.split(), "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem")],
        check=True,
        capture_output=True,
    )
    return folder / "ca.pem"


def sasl_env(monkeypatch: pytest.MonkeyPatch, cafile: Path, **overrides: str | None) -> None:
    values: dict[str, str | None] = {
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:29092",
        "LEADLOOP_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "LEADLOOP_KAFKA__USERNAME": "ingest",
        "LEADLOOP_KAFKA__PASSWORD": KAFKA_PASSWORD,
        "LEADLOOP_KAFKA__SSL_CAFILE": str(cafile),
        **overrides,
    }
    for name, value in values.items():
        if value is not None:
            monkeypatch.setenv(name, value)


def test_the_default_is_plaintext_with_nothing_else() -> None:
    kafka = load(ServiceSettings).kafka
    assert kafka.security_protocol == "PLAINTEXT"
    assert kafka.client_kwargs() == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.ssl_context() is None
    assert faust_credentials(kafka) is None


def test_sasl_ssl_from_the_environment_maps_to_aiokafka(
    monkeypatch: pytest.MonkeyPatch, cafile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sasl_env(monkeypatch, cafile)
    settings = load(ServiceSettings)
    kwargs = settings.kafka.client_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "127.0.0.1:29092",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingest",
        "sasl_plain_password": KAFKA_PASSWORD,
    }
    # The broker's certificate and host name are checked; old protocols are off.
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert any(c["subject"] == ((("commonName", "unit-test-ca"),),) for c in context.get_ca_certs())
    assert KAFKA_PASSWORD not in repr(settings)
    assert KAFKA_PASSWORD not in str(settings.kafka)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValidationError):
        settings.kafka.username = "admin"  # type: ignore[misc]  # frozen


def test_faust_gets_the_same_connection_as_every_other_client(
    monkeypatch: pytest.MonkeyPatch, cafile: Path
) -> None:
    sasl_env(monkeypatch, cafile, LEADLOOP_KAFKA__SASL_MECHANISM="SCRAM-SHA-256")
    kafka = load(ServiceSettings).kafka
    creds = faust_credentials(kafka)
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_256
    assert KAFKA_PASSWORD not in repr(creds)
    # What faust hands its aiokafka consumer, producer and admin client:
    faust_side: dict[str, Any] = dict(credentials_to_aiokafka_auth(creds))
    ours = kafka.client_kwargs()
    del ours["bootstrap_servers"]
    assert faust_side.pop("ssl_context").verify_mode == ours.pop("ssl_context").verify_mode
    assert faust_side == ours


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"LEADLOOP_KAFKA__PASSWORD": None}, "kafka.password is missing"),
        ({"LEADLOOP_KAFKA__PASSWORD": "changeme"}, "kafka.password is missing or a placeholder"),
        ({"LEADLOOP_KAFKA__USERNAME": None}, "kafka.username is required"),
        ({"LEADLOOP_KAFKA__SSL_CAFILE": "/nonexistent/ca.pem"}, "kafka.ssl_cafile"),
        ({"LEADLOOP_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "kafka.security_protocol"),
        ({"LEADLOOP_KAFKA__SASL_MECHANISM": "PLAIN"}, "kafka.sasl_mechanism"),
    ],
)
def test_an_incomplete_sasl_configuration_stops_start_up_without_printing_secrets(
    monkeypatch: pytest.MonkeyPatch,
    cafile: Path,
    capsys: pytest.CaptureFixture[str],
    overrides: dict[str, str | None],
    named: str,
) -> None:
    sasl_env(monkeypatch, cafile, **overrides)
    with pytest.raises(ConfigError) as exc:
        load(ServiceSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err
    assert KAFKA_PASSWORD not in err
    assert "db-pw-7f3a" not in err


def test_plaintext_ignores_credentials_it_does_not_use() -> None:
    # A username left in the environment does not switch anything on by itself.
    kafka = KafkaSettings(username="ingest")
    assert kafka.client_kwargs()["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_username" not in kafka.client_kwargs()


# --- ACLs from the registry ---------------------------------------------------------------


def test_acls_grant_each_producer_write_and_each_consumer_read_and_nothing_else() -> None:
    acls = acls_module()
    entries = acls.acls("p.")
    topic_grants = {
        (a.principal, a.operation, a.name) for a in entries if a.resource_type == "TOPIC"
    }
    expected = {
        (acls.principal(who), "WRITE", f"p.{spec.name}")
        for spec in REGISTRY
        for who in spec.producers
    } | {
        (acls.principal(who), "READ", f"p.{spec.name}")
        for spec in REGISTRY
        for who in spec.consumers
    }
    # The one documented extra: operators replay fixed dead letters onto leads.raw.
    assert topic_grants == expected | {("ops", "WRITE", "p.leads.raw")}
    assert all(a.pattern_type == "LITERAL" for a in entries if a.resource_type == "TOPIC")
    # Examples the security test relies on.
    assert ("assignment", "WRITE", "p.leads.accepted") not in topic_grants
    assert ("channels", "READ", "p.leads.raw") not in topic_grants
    # metrics writes nothing but the records it could not process.
    assert {t for p, op, t in topic_grants if p == "metrics" and op == "WRITE"} == {
        "p.metrics.dead-letter"
    }


def test_each_service_reads_exactly_its_own_consumer_group() -> None:
    acls = acls_module()
    groups = {
        (a.principal, a.pattern_type, a.name) for a in acls.acls("p.") if a.resource_type == "GROUP"
    }
    for service in acls.SERVICES:
        # faust's group id is the app id make_app gives the service.
        assert {g for g in groups if g[0] == service} == {
            (service, "LITERAL", f"p.leadloop-{service}")
        }
    assert ("crm", "PREFIXED", "p.crm") in groups
    assert all(a.operation == "READ" for a in acls.acls("p.") if a.resource_type == "GROUP")


def test_the_acl_spec_is_what_kafka_sh_acls_reads() -> None:
    acls = acls_module()
    lines = acls.render_spec(acls.acls("")).splitlines()
    assert "User:ingest WRITE TOPIC LITERAL leads.accepted" in lines
    assert "User:assignment READ GROUP LITERAL leadloop-assignment" in lines
    assert all(len(line.split()) == 5 for line in lines)
    assert "| `User:ingest` |" in acls.render_table(acls.acls(""))


def test_the_acl_table_in_docs_is_the_generated_one() -> None:
    acls = acls_module()
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    committed = doc.split("<!-- acl-table:start -->\n", 1)[1].split("<!-- acl-table:end -->", 1)[0]
    assert committed == acls.render_table(acls.acls("")), (
        "docs/security.md is stale: paste `python deploy/kafka/acls.py table` between the markers"
    )
