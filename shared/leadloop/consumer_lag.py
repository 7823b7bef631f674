"""How far a worker's Kafka consumer is behind, served on its ``/metrics``.

Per service and logical topic (registry topics only: the labels are bounded, never a
key), over the partitions assigned to this worker:

- ``leadloop_consumer_lag_records``: high watermark minus the committed offset, summed.
  The committed offset, not the fetch position: faust fetches ahead into its buffers,
  so the position moves on while a stuck handler processes nothing.
- ``leadloop_consumer_lag_seconds``: age of the oldest record not yet processed, the
  largest over the partitions (see ``ConsumerLag.observe`` for how it is measured).
- ``leadloop_consumer_progress_total``: records this worker finished (every stream
  done with them), from zero for each topic once a partition of it is assigned, so
  that "no progress" is a zero increase rather than a missing series.
- ``leadloop_topic_retention_seconds{topic}``: the topic's ``retention.ms`` as the
  registry creates it (``leadloop topics create``). The registry and not the broker's
  ``DescribeConfigs``: the services' Kafka logins are not granted it, and a retention
  changed by hand on the broker is drift that ``leadloop topics`` should report, not
  something each worker should quietly follow.

rules/consumers.yml alerts on a stall (lag grows, progress stays zero) and on lag that
approaches the retention, before unprocessed records expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from faust.types import TP
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "LAG_INTERVAL_S",
    "LAG_RECORDS_METRIC",
    "LAG_SECONDS_METRIC",
    "PROGRESS_METRIC",
    "RETENTION_METRIC",
    "ConsumerLag",
    "Offsets",
    "partition_lag",
]

#: Records behind, per service and topic (high watermark − committed offset).
LAG_RECORDS_METRIC = "leadloop_consumer_lag_records"
#: Age in seconds of the oldest record not yet processed, per service and topic.
LAG_SECONDS_METRIC = "leadloop_consumer_lag_seconds"
#: Records finished, per service and topic (served as ``..._total``).
PROGRESS_METRIC = "leadloop_consumer_progress"
#: A topic's retention in seconds, as the registry creates it.
RETENTION_METRIC = "leadloop_topic_retention_seconds"
#: How often a worker asks the broker for its partitions' high watermarks: one
#: ListOffsets request per pass, cheap next to the stall window the alert uses.
LAG_INTERVAL_S = 5.0


class Offsets(NamedTuple):
    """What the broker and the consumer say about one partition. ``committed`` is the
    next offset to process; None for either when unknown."""

    highwater: int | None
    committed: int | None


@dataclass
class _PartitionState:
    #: offset → record timestamp (epoch seconds) of records handed to the agent and not
    #: finished yet; a handful per partition (the batch in flight).
    pending: dict[int, float] = field(default_factory=dict)
    #: When this partition was last seen with nothing outstanding, or last finished a
    #: record (epoch seconds); None before the first observation.
    clear_at: float | None = None


class ConsumerLag(Collector):
    """The lag and progress of one worker's consumer, by topic.

    Fed by a faust sensor (``received`` and ``finished``, per record, a dictionary
    update each) and by a timer (``observe``, every ``LAG_INTERVAL_S``). Collecting is
    reading the last observation: a scrape never waits for the broker.
    """

    def __init__(
        self,
        service: str,
        *,
        topics: Mapping[str, str],
        retention_s: Mapping[str, float],
        now: Callable[[], float] = time.time,
    ) -> None:
        #: Broker topic name → logical name; other topics (table changelogs) are not
        #: reported: faust writes them but does not consume them, so they have no lag.
        self.topics = dict(topics)
        self.service = service
        self._retention_s = dict(retention_s)
        self._now = now
        self._partitions: dict[TP, _PartitionState] = {}
        self._progress: dict[str, int] = {}
        self._lag_records: dict[str, int] = {}
        self._lag_seconds: dict[str, float] = {}

    def received(self, tp: TP, offset: int, timestamp: float | None) -> None:
        """The agent took the record at ``offset`` (faust ``on_message_in``)."""
        if tp.topic in self.topics:
            state = self._partitions.setdefault(tp, _PartitionState())
            state.pending.setdefault(offset, self._now() if timestamp is None else timestamp)

    def finished(self, tp: TP, offset: int) -> None:
        """Every stream is done with the record at ``offset`` (faust ``on_message_out``)."""
        topic = self.topics.get(tp.topic)
        if topic is None:
            return
        state = self._partitions.setdefault(tp, _PartitionState())
        state.pending.pop(offset, None)
        state.clear_at = self._now()
        self._progress[topic] = self._progress.get(topic, 0) + 1

    def observe(self, assigned: Mapping[TP, Offsets]) -> None:
        """Recompute the lag of the partitions assigned now.

        The age of the oldest unprocessed record is the timestamp of the oldest record
        the agent holds and has not finished: when a worker is behind, its agent always
        holds the next records (faust hands them over as soon as a batch is done), and
        when a handler is stuck they are exactly the batch it is stuck on. That is the
        record's own time (producer or broker timestamp), so a backlog consumed slowly
        still ages towards the retention, which the time since the offset last moved
        would hide. When the agent holds none (just assigned, the backlog not fetched
        yet) it is the time since the partition last had nothing outstanding: a lower
        bound, for the few seconds until the records arrive.
        """
        now = self._now()
        records: dict[str, int] = {}
        seconds: dict[str, float] = {}
        for tp, offsets in assigned.items():
            topic = self.topics.get(tp.topic)
            if topic is None:
                continue
            self._progress.setdefault(topic, 0)
            state = self._partitions.setdefault(tp, _PartitionState())
            lag = partition_lag(offsets)
            age = 0.0
            if lag > 0:
                # Records below the committed offset are done; entries left from a
                # revoked assignment or a skipped batch would otherwise look ancient.
                floor = offsets.committed or 0
                for offset in [o for o in state.pending if o < floor]:
                    del state.pending[offset]
                oldest = min(state.pending.values(), default=None)
                if oldest is None:
                    state.clear_at = now if state.clear_at is None else state.clear_at
                    oldest = state.clear_at
                age = max(0.0, now - oldest)
            else:
                state.pending.clear()
                state.clear_at = now
            records[topic] = records.get(topic, 0) + lag
            seconds[topic] = max(seconds.get(topic, 0.0), age)
        # A topic of which no partition is assigned any more is not behind here.
        self._lag_records = {t: records.get(t, 0) for t in self._progress}
        self._lag_seconds = {t: seconds.get(t, 0.0) for t in self._progress}
        for tp in [tp for tp in self._partitions if tp not in assigned]:
            del self._partitions[tp]

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "topic"]
        lag = GaugeMetricFamily(
            LAG_RECORDS_METRIC,
            "Records behind: high watermark minus committed offset over this worker's"
            " partitions of the topic",
            labels=labels,
        )
        age = GaugeMetricFamily(
            LAG_SECONDS_METRIC,
            "Age of the oldest record of the topic this worker has not processed yet",
            labels=labels,
        )
        progress = CounterMetricFamily(
            PROGRESS_METRIC, "Records of the topic this worker finished", labels=labels
        )
        retention = GaugeMetricFamily(
            RETENTION_METRIC,
            "The topic's retention (retention.ms of the topic registry) in seconds",
            labels=["topic"],
        )
        for topic in sorted(self._progress):
            lag.add_metric([self.service, topic], float(self._lag_records.get(topic, 0)))
            age.add_metric([self.service, topic], self._lag_seconds.get(topic, 0.0))
            progress.add_metric([self.service, topic], float(self._progress[topic]))
            if topic in self._retention_s:
                retention.add_metric([topic], self._retention_s[topic])
        yield from (lag, age, progress, retention)


def partition_lag(offsets: Offsets) -> int:
    """Records of one partition not processed yet; 0 while either offset is unknown
    (nothing to say is not a lag)."""
    if offsets.highwater is None or offsets.committed is None:
        return 0
    return max(0, offsets.highwater - offsets.committed)
