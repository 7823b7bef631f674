"""``config/crm-inbound.yaml``: every vendor endpoint by target name, validated once.

A :class:`Target` is one endpoint, ``POST /v1/crm/hooks/<kind>/<target name>``, of one
of the three vendors: the vendor's names for the contract's fields and the maps from
vendor values to stages, loss reasons and activity kinds. One model for all vendors so
that the file has one shape and the validator can say, per kind, what is missing.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from leadloop.events import ActivityKind, LossReason, Stage

__all__ = ["CRM_STAGES", "FieldNames", "Inbound", "Target"]

#: Stages a CRM may publish (``new`` and ``assigned`` are leadloop's own).
CRM_STAGES: Final = frozenset(
    {
        Stage.CONTACTED,
        Stage.QUALIFIED,
        Stage.PROPOSAL,
        Stage.NEGOTIATION,
        Stage.WON,
        Stage.LOST,
    }
)

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{2,127}$")]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
OrgId = Annotated[str, StringConstraints(pattern=r"^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]


class FieldNames(BaseModel):
    """The vendor's names for the fields the contract needs (HubSpot properties, 简道云
    widget ids, Salesforce API field names). Unset = the vendor does not send it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lead_id: Name
    rep_id: Name | None = None
    stage: Name | None = None
    loss_reason: Name | None = None
    amount: Name | None = None
    close_date: Name | None = None
    activity_kind: Name | None = None
    outcome: Name | None = None
    occurred_at: Name | None = None


class Target(BaseModel):
    """One inbound vendor endpoint: ``POST /v1/crm/hooks/<kind>/<target name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["hubspot", "jiandaoyun", "salesforce"]
    #: Name of the environment variable holding the secret (HubSpot: the app's client
    #: secret; 简道云: the push secret). Never the secret itself. Salesforce has none.
    secret_env: EnvName | None = None
    #: Salesforce: the org whose Outbound Messages are accepted (15 or 18 characters).
    organization_id: (
        Annotated[str, StringConstraints(pattern=r"^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")] | None
    ) = None
    #: 简道云 and Salesforce: what one record of this form / object is.
    emits: Literal["stage_change", "activity"] | None = None
    fields: FieldNames
    #: HubSpot: the properties whose changes are stage changes.
    stage_properties: tuple[Name, ...] = ("lifecyclestage", "dealstage")
    #: HubSpot: the CRM API (read with a private-app token from ``api_token_env``).
    api_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = (
        "https://api.hubapi.com"
    )
    api_token_env: EnvName | None = None
    #: HubSpot: scheme and host HubSpot calls (the URL in the app's settings) when a
    #: proxy in front of ingest changes them; the signature covers the full URI.
    public_base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+$")] | None = None
    stages: dict[Name, Stage] = Field(default_factory=dict)
    loss_reasons: dict[Name, LossReason] = Field(default_factory=dict)
    #: Vendor activity type -> contract kind (HubSpot: the object type, e.g. ``calls``).
    activity_kinds: dict[Name, ActivityKind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        bad = sorted(v for v, s in self.stages.items() if s not in CRM_STAGES)
        if bad:
            raise ValueError(f"stages: {bad} map to a stage only leadloop sets")
        if self.kind == "salesforce":
            if self.organization_id is None:
                raise ValueError("organization_id is required for kind salesforce")
            if self.secret_env is not None:
                raise ValueError("secret_env: Salesforce Outbound Messages carry no signature")
        elif self.secret_env is None:
            raise ValueError(f"secret_env is required for kind {self.kind}")
        if self.kind == "hubspot" and self.api_token_env is None:
            raise ValueError("api_token_env is required for kind hubspot (records are read)")
        if self.kind != "hubspot" and self.emits is None:
            raise ValueError(f"emits is required for kind {self.kind}")
        emits_stages = self.kind == "hubspot" or self.emits == "stage_change"
        emits_activities = self.kind == "hubspot" or self.emits == "activity"
        if emits_stages and self.kind != "hubspot" and self.fields.stage is None:
            raise ValueError("fields.stage is required to emit stage changes")
        if emits_activities and self.kind != "hubspot" and self.fields.activity_kind is None:
            raise ValueError("fields.activity_kind is required to emit activities")
        if emits_stages and not self.stages:
            raise ValueError("stages must map at least one vendor value")
        if emits_activities and not self.activity_kinds:
            raise ValueError("activity_kinds must map at least one vendor value")
        return self


class Inbound(BaseModel):
    """``config/crm-inbound.yaml``: every vendor endpoint by target name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: dict[TargetName, Target]
