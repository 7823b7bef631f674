"""config/crm.yaml: errors name the file and the field; secrets come from the environment."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from leadloop.config_file import ConfigFileError
from leadloop_handoff.adapters.targets import (
    CrmConfigError,
    CrmFile,
    build_target,
    load_crm_file,
)
from leadloop_handoff.adapters.targets.config import (
    HubSpotConfig,
    JiandaoyunConfig,
    SalesforceConfig,
    WebhookConfig,
)
from leadloop_handoff.adapters.targets.hubspot import HubSpotTarget
from leadloop_handoff.adapters.targets.jiandaoyun import JiandaoyunTarget
from leadloop_handoff.adapters.targets.salesforce import SalesforceTarget
from leadloop_handoff.adapters.targets.webhook import WebhookTarget

EXAMPLE = """\
targets:
  - name: partner-hook
    kind: webhook
    url: https://crm-bridge.example.com/leadloop
    secret_env: LEADLOOP_CRM_WEBHOOK_SECRET
  - name: sf-main
    kind: salesforce
    login_url: https://acme.my.salesforce.com
    instance_url: https://acme.my.salesforce.com
    client_id_env: LEADLOOP_SF_CLIENT_ID
    client_secret_env: LEADLOOP_SF_CLIENT_SECRET
    pool: {team-emea: 00G5g000001AbCdEAF}
    owner_ids: {rep-1: 0055g00000AbCdEAAZ}
  - name: hubspot
    kind: hubspot
    token_env: LEADLOOP_HUBSPOT_TOKEN
    on_erase: anonymise
  - name: jdy
    kind: jiandaoyun
    api_key_env: LEADLOOP_JDY_API_KEY
    app_id: 59264073a2a60c0c08e20bfb
    entry_id: 59264073a2a60c0c08e20bfd
    fields: {lead_id: _widget_1432728651402, name: _widget_1432728651403}
"""

ENV = {
    "LEADLOOP_CRM_WEBHOOK_SECRET": "w" * 32,
    "LEADLOOP_SF_CLIENT_ID": "3MVG9" + "a" * 20,
    "LEADLOOP_SF_CLIENT_SECRET": "s" * 40,
    "LEADLOOP_HUBSPOT_TOKEN": "pat-eu1-" + "0" * 30,
    "LEADLOOP_JDY_API_KEY": "k" * 32,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_crm_file(path)
    return str(caught.value).replace(str(path), "crm.yaml")


def test_example_loads_with_defaults(tmp_path: Path) -> None:
    crm = load_crm_file(write(tmp_path, EXAMPLE))
    assert isinstance(crm, CrmFile)
    assert [t.kind for t in crm.targets] == ["webhook", "salesforce", "hubspot", "jiandaoyun"]
    hook = crm.targets[0]
    assert (hook.enabled, hook.max_in_flight, hook.rate_per_s) == (True, 4, 10)
    assert (hook.max_attempts, hook.timeout_s, hook.on_erase) == (20, 10, "delete")
    sf = crm.targets[1]
    assert isinstance(sf, SalesforceConfig)
    assert sf.api_version == "v62.0"
    assert sf.external_id_field == "Leadloop_Lead_Id__c"
    assert sf.pool == {"team-emea": "00G5g000001AbCdEAF"}
    assert crm.targets[2].on_erase == "anonymise"


def test_an_empty_file_has_no_targets(tmp_path: Path) -> None:
    assert load_crm_file(write(tmp_path, "")).targets == []


def test_missing_field_names_file_and_path(tmp_path: Path) -> None:
    text = EXAMPLE.replace("    instance_url: https://acme.my.salesforce.com\n", "")
    assert error_of(tmp_path, text) == "crm.yaml: targets.1.salesforce.instance_url: Field required"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("name: partner-hook", "name: Partner Hook", "targets.0.webhook.name"),
        ("kind: hubspot", "kind: zoho", "targets.2"),
        ("url: https://crm-bridge", "url: http://crm-bridge", "targets.0.webhook.url"),
        ("    on_erase: anonymise", "    on_erase: shred", "targets.2.hubspot.on_erase"),
        ("_widget_1432728651403", "name_widget", "targets.3.jiandaoyun.fields.name"),
        ("app_id: 59264073a2a60c0c08e20bfb", "app_id: app", "targets.3.jiandaoyun.app_id"),
        (
            "    token_env: LEADLOOP_HUBSPOT_TOKEN",
            "    token: pat-eu1-0000",
            "targets.2.hubspot.token",
        ),
    ],
)
def test_invalid_values_name_their_field(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert old in EXAMPLE
    lines = error_of(tmp_path, EXAMPLE.replace(old, new)).splitlines()
    assert any(line.startswith(f"crm.yaml: {where}: ") for line in lines), lines
    assert not any("pat-eu1" in line for line in lines)  # values are never echoed


def test_a_secret_in_place_of_a_variable_name_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.replace("LEADLOOP_CRM_WEBHOOK_SECRET", "hunter2-hunter2-hunter2")
    message = error_of(tmp_path, text)
    assert message.startswith("crm.yaml: targets.0.webhook.secret_env: String should match pattern")
    assert "hunter2" not in message


def test_names_must_be_unique(tmp_path: Path) -> None:
    text = EXAMPLE.replace("name: hubspot", "name: jdy")
    assert error_of(tmp_path, text) == (
        "crm.yaml: targets: Value error, target names must be unique; repeated: jdy"
    )


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"missing\.yaml: cannot read"):
        load_crm_file(tmp_path / "missing.yaml")
    assert error_of(tmp_path, "targets: [\n  - name: x\n bad").startswith(
        "crm.yaml: invalid YAML at line"
    )


async def test_build_target_reads_secrets_from_env(tmp_path: Path) -> None:
    crm = load_crm_file(write(tmp_path, EXAMPLE))
    async with aiohttp.ClientSession() as client:
        built = [build_target(cfg, ENV, client) for cfg in crm.targets]
    kinds = [WebhookTarget, SalesforceTarget, HubSpotTarget, JiandaoyunTarget]
    assert [type(t) for t in built] == kinds
    assert [t.name for t in built] == ["partner-hook", "sf-main", "hubspot", "jdy"]
    assert [t.supports_pool for t in built] == [True, True, False, False]
    assert [t.supports_erase for t in built] == [True, True, True, True]


@pytest.mark.parametrize("value", [None, "", "changeme", "x" * 15])
async def test_missing_or_placeholder_secret_names_the_variable(
    tmp_path: Path, value: str | None
) -> None:
    crm = load_crm_file(write(tmp_path, EXAMPLE))
    env = dict(ENV)
    if value is None:
        del env["LEADLOOP_SF_CLIENT_SECRET"]
    else:
        env["LEADLOOP_SF_CLIENT_SECRET"] = value
    async with aiohttp.ClientSession() as client:
        with pytest.raises(CrmConfigError) as caught:
            build_target(crm.targets[1], env, client)
    message = str(caught.value)
    assert "sf-main" in message
    assert "LEADLOOP_SF_CLIENT_SECRET" in message
    if value:
        assert value not in message
    expected = "is not set" if not value else "looks like a placeholder"
    assert expected in message


def test_models_are_frozen_and_strict() -> None:
    hook = WebhookConfig(name="h", kind="webhook", url="http://127.0.0.1:9/x", secret_env="S_S")
    with pytest.raises(ValueError, match="frozen"):
        hook.name = "other"  # type: ignore[misc]
    assert (
        HubSpotConfig(name="h", kind="hubspot", token_env="T").base_url == "https://api.hubapi.com"
    )
    with pytest.raises(ValueError, match="lead_id"):
        JiandaoyunConfig.model_validate({
            "name": "j", "kind": "jiandaoyun", "api_key_env": "K", "app_id": "0" * 24,
            "entry_id": "0" * 24, "fields": {},
        })  # fmt: skip
