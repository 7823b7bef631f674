"""review's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from leadloop.settings import ServiceSettings

__all__ = ["ReviewSettings"]


class ReviewSettings(ServiceSettings):
    """The database (``DATABASE_URL``, a login of the ``leadloop_review`` role in
    production); nothing else yet."""
