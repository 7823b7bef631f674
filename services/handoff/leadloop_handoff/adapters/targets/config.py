"""The models of ``config/crm.yaml`` and its loader.

One file lists every CRM target. Each entry is validated by the model of its ``kind``
(a pydantic discriminated union), so a typo fails at start-up with the file and the
field path, never at the first delivery. Secrets are not in the file: a ``*_env``
field names the environment variable that holds the secret, read by ``build_target``.
Endpoints must be HTTPS (plain HTTP only on loopback, for local fakes): a card carries
a lead's contact details.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from leadloop.config_file import load_yaml

__all__ = [
    "CrmConfigError",
    "CrmFile",
    "HubSpotConfig",
    "HubSpotProperties",
    "JiandaoyunConfig",
    "JiandaoyunFields",
    "SalesforceConfig",
    "SalesforceCustomFields",
    "TargetConfig",
    "WebhookConfig",
    "load_crm_file",
]


class CrmConfigError(ValueError):
    """A CRM target's secret cannot be read (``build_target``); the message names the
    target and the variable, never a secret's value."""


#: The name of an environment variable, never its value.
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")]
#: A Salesforce field API name (``LastName``, ``Leadloop_Lead_Id__c``).
SalesforceName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")]
#: A HubSpot internal property name (lower case, digits, underscores).
HubSpotName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
#: A 简道云 widget id as the open API names it (``_widget_1432728651402``).
WidgetId = Annotated[str, Field(pattern=r"^_widget_[A-Za-z0-9_]{1,64}$")]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _endpoint(url: str) -> str:
    """HTTPS, or HTTP to loopback only; no credentials, query or fragment in the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("must use https (plain http is allowed on loopback only)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not carry credentials, a query or a fragment")
    return url.rstrip("/")


Endpoint = Annotated[str, AfterValidator(_endpoint)]


class _Target(BaseModel):
    """Fields every target has. ``owner_ids`` maps leadloop rep ids to CRM user ids when
    crm.reps carries no ``external_ids`` for this CRM; ``pool`` maps team ids to the CRM
    queue or owner that receives pooled leads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,40}$")]
    enabled: bool = True
    max_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    rate_per_s: Annotated[float, Field(gt=0, le=1000)] = 10
    #: With the default backoff (1 s doubling to 300 s) 20 attempts span about an hour, so
    #: a CRM down for ten minutes loses nothing (services/handoff/tests/test_handoff_flow.py).
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 20
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10
    owner_ids: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = {}
    pool: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = {}


class WebhookConfig(_Target):
    """The generic signed webhook; ``on_erase: delete`` sends a ``lead.erased`` event."""

    kind: Literal["webhook"]
    url: Endpoint
    secret_env: EnvVarName
    on_erase: Literal["delete", "none"] = "delete"


class SalesforceCustomFields(BaseModel):
    """Lead custom fields (API names) for leadloop's routing facts; None: not sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: SalesforceName | None = "Leadloop_Priority__c"
    score: SalesforceName | None = "Leadloop_Score__c"
    rule: SalesforceName | None = "Leadloop_Rule__c"
    returning: SalesforceName | None = "Leadloop_Returning__c"


class SalesforceConfig(_Target):
    kind: Literal["salesforce"]
    #: ``https://{MyDomain}.my.salesforce.com``: where the OAuth token is fetched.
    login_url: Endpoint
    #: The org's REST endpoint (the token reply names it too; this one is used).
    instance_url: Endpoint
    api_version: Annotated[str, Field(pattern=r"^v[0-9]{2,3}\.0$")] = "v62.0"
    client_id_env: EnvVarName
    client_secret_env: EnvVarName
    #: The Lead field marked "External ID" that holds the leadloop lead id.
    external_id_field: SalesforceName = "Leadloop_Lead_Id__c"
    custom_fields: SalesforceCustomFields = SalesforceCustomFields()
    on_erase: Literal["delete", "anonymise", "none"] = "delete"


class HubSpotProperties(BaseModel):
    """Custom contact properties for leadloop's routing facts; None: not sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: HubSpotName | None = "leadloop_priority"
    score: HubSpotName | None = "leadloop_score"
    team: HubSpotName | None = "leadloop_team"
    rule: HubSpotName | None = "leadloop_rule"
    returning: HubSpotName | None = "leadloop_returning"


class HubSpotConfig(_Target):
    kind: Literal["hubspot"]
    base_url: Endpoint = "https://api.hubapi.com"
    #: The private app's access token.
    token_env: EnvVarName
    #: A contact property with unique values that holds the leadloop lead id.
    id_property: HubSpotName = "leadloop_lead_id"
    properties: HubSpotProperties = HubSpotProperties()
    on_erase: Literal["delete", "anonymise", "none"] = "delete"


class JiandaoyunFields(BaseModel):
    """Widget ids of the 简道云 form; ``lead_id`` is required (the lookup key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lead_id: WidgetId
    name: WidgetId | None = None
    email: WidgetId | None = None
    phone: WidgetId | None = None
    company: WidgetId | None = None
    title: WidgetId | None = None
    message: WidgetId | None = None
    country: WidgetId | None = None
    region: WidgetId | None = None
    city: WidgetId | None = None
    industry: WidgetId | None = None
    source: WidgetId | None = None
    owner: WidgetId | None = None
    team: WidgetId | None = None
    priority: WidgetId | None = None
    #: A number widget.
    score: WidgetId | None = None
    rule: WidgetId | None = None
    #: A text widget holding "是" / "否".
    returning: WidgetId | None = None


class JiandaoyunConfig(_Target):
    kind: Literal["jiandaoyun"]
    base_url: Endpoint = "https://api.jiandaoyun.com"
    api_key_env: EnvVarName
    app_id: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
    entry_id: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
    fields: JiandaoyunFields
    #: The member (username) shown as submitter; None: the company's creator.
    data_creator: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    on_erase: Literal["delete", "anonymise", "none"] = "delete"


TargetConfig = Annotated[
    WebhookConfig | SalesforceConfig | HubSpotConfig | JiandaoyunConfig,
    Field(discriminator="kind"),
]


class CrmFile(BaseModel):
    """``config/crm.yaml``: ``targets`` with unique names (names label metrics and
    outbox rows, so two targets cannot share one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: list[TargetConfig] = []

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: list[Any]) -> list[Any]:
        twice = sorted(n for n, k in Counter(t.name for t in targets).items() if k > 1)
        if twice:
            raise ValueError(f"target names must be unique; repeated: {', '.join(twice)}")
        return targets


def load_crm_file(path: Path | str) -> CrmFile:
    """Read and validate the file (an empty one: no targets); raises ``ConfigFileError``
    naming the file and each failing field."""
    return load_yaml(Path(path), CrmFile, allow_empty=True)
