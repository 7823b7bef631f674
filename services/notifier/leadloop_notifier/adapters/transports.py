"""The channel adapter's ``Channel`` as the handler's ``Transport``."""

from __future__ import annotations

from leadloop_notifier.adapters.channels import Channel, Message, Sent

__all__ = ["ChannelTransport"]


class ChannelTransport:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.kind = channel.kind
        self.per_minute = channel.per_minute

    async def deliver(
        self,
        address: str,
        subject: str,
        text: str,
        markdown: str | None,
        html: str | None,
        dedupe_key: str | None = None,
    ) -> Sent:
        return await self._channel.send(address, Message(subject, text, markdown, html, dedupe_key))

    async def aclose(self) -> None:
        await self._channel.aclose()
