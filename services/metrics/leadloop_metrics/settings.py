"""metrics' settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["MetricsSettings"]


class MetricsSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18084)
    #: Channel ids served as `source` label values; any other source is `other`.
    #: How often the served totals are re-read from PostgreSQL (covers other workers).
    refresh_seconds: float = 2.0
    sources: tuple[str, ...] = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
