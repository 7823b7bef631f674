"""CRM targets: the native connectors of the hand-off service and their configuration.

``config/crm.yaml`` lists the targets; ``load_crm_file`` validates it (errors name the
file and the field path) and ``build_target`` turns one entry into a ``Target``,
reading its secrets from the environment (a ``*_env`` field names the variable; a
missing variable or a placeholder shorter than 16 characters is refused, and the error
names the variable, never its value). Example::

    targets:
      - name: partner-hook
        kind: webhook
        url: https://crm-bridge.example.com/leadloop
        secret_env: LEADLOOP_CRM_WEBHOOK_SECRET
      - name: sf-main
        kind: salesforce
        login_url: https://acme.my.salesforce.com
        instance_url: https://acme.my.salesforce.com
        api_version: v62.0
        client_id_env: LEADLOOP_SF_CLIENT_ID
        client_secret_env: LEADLOOP_SF_CLIENT_SECRET
        external_id_field: Leadloop_Lead_Id__c
        pool: {team-emea: 00G5g000001AbCdEAF}     # team -> Lead queue
        owner_ids: {rep-1: 0055g00000AbCdEAAZ}    # rep -> user, when crm.reps has none
        on_erase: delete
      - name: hubspot
        kind: hubspot
        token_env: LEADLOOP_HUBSPOT_TOKEN
        id_property: leadloop_lead_id
        rate_per_s: 9
      - name: jdy
        kind: jiandaoyun
        api_key_env: LEADLOOP_JDY_API_KEY
        app_id: 59264073a2a60c0c08e20bfb
        entry_id: 59264073a2a60c0c08e20bfd
        fields: {lead_id: _widget_1432728651402, name: _widget_1432728651403}

Adding a CRM: one module here with a class implementing ``domain.cards.Target`` and a
config model with a ``kind`` literal added to ``TargetConfig``, plus a branch in
``build_target`` (docs/crm-targets.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from leadloop.clock import Clock
from leadloop_handoff.adapters.targets._http import SessionFactory
from leadloop_handoff.adapters.targets.config import (
    CrmConfigError,
    CrmFile,
    HubSpotConfig,
    JiandaoyunConfig,
    SalesforceConfig,
    TargetConfig,
    WebhookConfig,
    load_crm_file,
)
from leadloop_handoff.adapters.targets.hubspot import HubSpotTarget
from leadloop_handoff.adapters.targets.jiandaoyun import JiandaoyunTarget
from leadloop_handoff.adapters.targets.salesforce import SalesforceTarget
from leadloop_handoff.adapters.targets.webhook import WebhookTarget
from leadloop_handoff.domain.cards import Target

__all__ = [
    "MIN_SECRET_LENGTH",
    "CrmConfigError",
    "CrmFile",
    "SessionFactory",
    "TargetConfig",
    "build_target",
    "load_crm_file",
]

#: A secret shorter than this is a placeholder ("changeme", "xxx", "todo" …).
MIN_SECRET_LENGTH = 16


def read_secret(env: Mapping[str, str], variable: str, target: str) -> str:
    """The value of ``variable``; the error names the target and variable only."""
    value = env.get(variable)
    if value is None or not value.strip():
        raise CrmConfigError(f"crm target {target}: environment variable {variable} is not set")
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise CrmConfigError(
            f"crm target {target}: environment variable {variable} looks like a placeholder "
            f"(shorter than {MIN_SECRET_LENGTH} characters); set the real secret"
        )
    return value.strip()


def build_target(
    cfg: TargetConfig,
    env: Mapping[str, str],
    client: aiohttp.ClientSession | SessionFactory,
    clock: Clock | None = None,
) -> Target:
    """The ``Target`` for one configured entry, its secrets read from ``env`` now (so a
    missing secret stops start-up, not the first delivery). ``client`` is an open
    session (its owner closes it) or a factory the target calls on its first send and
    whose session the target's ``aclose`` closes (``_http.HttpTarget``)."""
    if isinstance(cfg, WebhookConfig):
        secret = read_secret(env, cfg.secret_env, cfg.name)
        return WebhookTarget(cfg, secret.encode(), client, clock)
    if isinstance(cfg, SalesforceConfig):
        client_id = read_secret(env, cfg.client_id_env, cfg.name)
        client_secret = read_secret(env, cfg.client_secret_env, cfg.name)
        return SalesforceTarget(cfg, client_id, client_secret, client, clock)
    if isinstance(cfg, HubSpotConfig):
        return HubSpotTarget(cfg, read_secret(env, cfg.token_env, cfg.name), client, clock)
    if isinstance(cfg, JiandaoyunConfig):
        return JiandaoyunTarget(cfg, read_secret(env, cfg.api_key_env, cfg.name), client)
    raise TypeError(f"no target for {type(cfg).__name__}")  # a config model without a branch
