"""review's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from leadloop.settings import ServiceSettings

__all__ = ["ReviewSettings"]


class ReviewSettings(ServiceSettings):
    """The database (``DATABASE_URL``, a login of the ``leadloop_review`` role in
    production) and Kafka (``LEADLOOP_KAFKA__*``, as the ``review`` principal), to
    announce the reports the scheduled run writes on ``review.published``."""

    #: ``LEADLOOP_REVIEW_ANNOUNCE``: announce the written reports. Unset: announce when
    #: Kafka is configured (any ``LEADLOOP_KAFKA__*`` in the environment).
    review_announce: bool | None = None

    @property
    def announces(self) -> bool:
        if self.review_announce is not None:
            return self.review_announce
        return "kafka" in self.model_fields_set
