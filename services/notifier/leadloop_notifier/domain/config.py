"""config/notify.yaml as typed, frozen models: teams, channel orders, reminders, bridge.

The channel transports' own settings (``channels:``) are validated by the channel
adapter at start-up; here they stay opaque mappings so the domain knows only their names
and kinds. Secrets are never in the file: a team's robot address (a webhook key or
token) is named by an environment variable (``address_env``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MESSAGE_BYTES",
    "ROBOT_KINDS",
    "AlertRoute",
    "NodeReminder",
    "NotifyConfig",
    "TeamChannel",
    "TeamConfig",
]

#: Kinds whose destination is a group chat (the robot), not a person: their rate limit
#: is per robot, whatever the message is about.
ROBOT_KINDS = frozenset({"wecom_robot", "dingtalk_robot", "feishu_bot", "slack_webhook"})

#: The most text one message may carry, in UTF-8 bytes, by channel kind: a coalesced batch
#: is cut to fit, so that no transport has to truncate (and hide) a notice. WeCom's text
#: limit is 2048 bytes (markdown 4096); DingTalk states none, Feishu 20 KB a body, Slack
#: advises under 4000 characters of text.
MESSAGE_BYTES = {
    "wecom_app": 4096,  # markdown (the default); text: 2048
    "wecom_robot": 4096,
    "dingtalk_robot": 4000,
    "feishu_bot": 8000,
    "feishu_app": 8000,
    "slack": 3500,
    "slack_webhook": 3500,
    "email": 50_000,
}

ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TeamChannel(_Frozen):
    """A group chat of a team: a configured channel and the env var holding its address."""

    channel: ChannelName
    address_env: EnvName


class TeamConfig(_Frozen):
    #: Template set: a folder of templates (shipped: ``zh-CN``, ``en``).
    templates: Literal["zh-CN", "en"] | Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    #: Rows for one (recipient, channel) due within this many seconds go out as one message.
    coalesce_seconds: Annotated[float, Field(ge=0, le=3600)] = 60
    #: Deep link into the CRM; ``{lead_id}`` is replaced.
    crm_link: Annotated[str, Field(pattern=r"^https?://\S*\{lead_id\}\S*$")]
    #: The order in which a person is reached: the first channel they have an address for;
    #: on a permanent failure the next one (once).
    person_channels: tuple[ChannelName, ...] = ()
    #: Where pooled leads (no owner) are announced; none: not announced.
    pool_channel: TeamChannel | None = None
    #: Show the lead's name in notices to this team's people (not in team chats or
    #: alerts). Off by default: the name is read from PostgreSQL at send time, and each
    #: read is audited (notifier_name_reads).
    include_name: bool = False


class NodeReminder(_Frozen):
    """A reminder at a pipeline node (需求确认 / 报价 / 回访).

    ``after_business_hours`` / ``after_business_days``: sent when the lead has sat in
    ``stage`` that long (the team's calendar), unless it moved on; neither: sent on
    entering the stage. ``after_days`` (calendar days, sent at the next working moment)
    is for the post-sale revisit after ``won``.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
    stage: Literal["contacted", "qualified", "proposal", "negotiation", "won"]
    after_business_hours: Annotated[float, Field(gt=0, le=10_000)] | None = None
    after_business_days: Annotated[int, Field(gt=0, le=365)] | None = None
    after_days: Annotated[int, Field(gt=0, le=3650)] | None = None

    @model_validator(mode="after")
    def _one_delay(self) -> Self:
        given = [
            x
            for x in (self.after_business_hours, self.after_business_days, self.after_days)
            if x is not None
        ]
        if len(given) > 1:
            raise ValueError("give at most one of after_business_hours/_days, after_days")
        return self


class AlertRoute(_Frozen):
    """``POST /v1/alertmanager/{name}`` posts to this team chat."""

    channel: ChannelName
    address_env: EnvName
    templates: str = "en"


class NotifyConfig(_Frozen):
    #: Transport settings per channel name (validated by the channel adapter).
    #: None: the notifier records what it sees and sends nothing (a fresh checkout).
    channels: dict[ChannelName, dict[str, Any]] = Field(default_factory=dict)
    #: Team settings; teams not listed use ``default``.
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    default: TeamConfig
    reminders: tuple[NodeReminder, ...] = ()
    alertmanager: dict[ChannelName, AlertRoute] = Field(default_factory=dict)
    #: The daily digest at the start of each rep's working day.
    digest: bool = True

    @model_validator(mode="after")
    def _known_channels(self) -> Self:
        used: set[str] = set()
        for team in (self.default, *self.teams.values()):
            used.update(team.person_channels)
            if team.pool_channel is not None:
                used.add(team.pool_channel.channel)
        used.update(route.channel for route in self.alertmanager.values())
        unknown = sorted(used - self.channels.keys())
        if unknown:
            raise ValueError(f"channels used but not configured: {', '.join(unknown)}")
        for name, channel in self.channels.items():
            if "kind" not in channel:
                raise ValueError(f"channels.{name}.kind is required")
        return self

    def team(self, team_id: str) -> TeamConfig:
        return self.teams.get(team_id, self.default)

    def kind_of(self, channel: str) -> str:
        return str(self.channels[channel]["kind"])

    def message_bytes(self, channel: str) -> int:
        """How much text one message on ``channel`` may carry (see ``MESSAGE_BYTES``)."""
        options = self.channels[channel]
        kind = str(options["kind"])
        if kind in ("wecom_app", "wecom_robot") and options.get("msgtype", "markdown") == "text":
            return 2048
        return MESSAGE_BYTES.get(kind, 2048)
