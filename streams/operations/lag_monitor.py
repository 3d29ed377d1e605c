"""Consumer-group lag of the input topic, measured from Kafka itself.

Faust's own view of progress lives inside the consumer; what an operator needs is the
broker's: how far the group's *committed* offset trails the log end. The worker's
:class:`LagMonitor` polls that every couple of seconds for the partitions assigned to
it, with clients of its own that never join the group, and publishes per-partition
gauges. ``contentstream lag`` (streams/commands/lag.py) reads the same numbers for a
whole topic from any machine with broker access.

Lag in seconds is the age of the oldest event not yet committed: the Kafka timestamp of
the record at the committed offset. Reading it costs one small fetch, and only when the
committed offset has moved since the last poll (the answer is cached per offset).

A partition is *stuck* when it has lag and its committed offset has not moved for
longer than ``stuck_partition_s``: the worker holds it but makes no progress on it, so
readiness fails and names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.records import TopicPartition
from streams.operations.metrics import WorkerMetrics
from streams.settings import Settings

log = logging.getLogger(__name__)


def partition_name(tp: TopicPartition) -> str:
    return f"{tp[0]}[{tp[1]}]"


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """One partition as the broker sees it for one consumer group."""

    topic: str
    partition: int
    log_start: int
    log_end: int
    committed: int | None  # None: the group has never committed on this partition

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    @property
    def next_offset(self) -> int:
        """Where the group resumes: the committed offset, or the oldest record kept.

        Records below the log start are gone (retention), so they are no backlog even
        when the committed offset is older; the group's reset policy is ``earliest``.
        """
        if self.committed is None:
            return self.log_start
        return max(self.committed, self.log_start)

    @property
    def lag(self) -> int:
        return max(0, self.log_end - self.next_offset)


class OffsetSource(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, group_id: str, tps: list[TopicPartition]) -> list[PartitionOffsets]:
        """Log start, log end and committed offset of each partition (in ``tps`` order)."""
        ...

    async def timestamp_at(self, tp: TopicPartition, offset: int) -> float | None:
        """Kafka timestamp (seconds) of the record at ``offset``; None if there is none."""
        ...


class KafkaOffsetReader:
    """Reads offsets with an admin client and a group-less consumer.

    Neither client joins the consumer group: the committed offsets come from an
    OffsetFetch request to the group coordinator, so reading them never triggers a
    rebalance of the workers.
    """

    def __init__(self, settings: Settings, *, request_timeout_s: float = 10.0) -> None:
        from streams.security import aiokafka_client_kwargs

        client_kwargs = aiokafka_client_kwargs(settings)
        timeout_ms = int(request_timeout_s * 1000)
        self._fetch_timeout_ms = min(timeout_ms, 2000)
        self._admin = AIOKafkaAdminClient(request_timeout_ms=timeout_ms, **client_kwargs)
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=timeout_ms,
            # One record is needed per timestamp lookup; the broker still returns a
            # whole first batch when it is larger than this.
            max_partition_fetch_bytes=64 * 1024,
            fetch_max_bytes=1024 * 1024,
            **client_kwargs,
        )
        self._timeout_s = request_timeout_s
        self._lookup_tps: set[KafkaTopicPartition] = set()
        self._coordinators: dict[str, int] = {}

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._admin.start(), self._timeout_s)
            await asyncio.wait_for(self._consumer.start(), self._timeout_s)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._admin.close()

    async def partitions(self, topic: str) -> list[int]:
        """Partition numbers of ``topic``; raises LookupError when it does not exist."""
        # Asking for a missing topic by name would let a broker with automatic topic
        # creation create it: look in the full list first.
        if topic not in set(await self._admin.list_topics()):
            raise LookupError(f"topic {topic!r} does not exist")
        described: list[dict[str, Any]] = await self._admin.describe_topics([topic])
        for entry in described:
            if entry.get("topic") == topic and not entry.get("error_code"):
                return sorted(int(p["partition"]) for p in entry.get("partitions", []))
        raise LookupError(f"topic {topic!r} does not exist")

    async def read(self, group_id: str, tps: list[TopicPartition]) -> list[PartitionOffsets]:
        ktps = [KafkaTopicPartition(topic, partition) for topic, partition in tps]
        # Also the cheap "is the broker there" probe when nothing is assigned.
        committed = await self._committed(group_id, ktps)
        if not ktps:
            return []
        starts = await self._consumer.beginning_offsets(ktps)
        ends = await self._consumer.end_offsets(ktps)
        result = []
        for ktp in ktps:
            meta = committed.get(ktp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            result.append(
                PartitionOffsets(
                    topic=ktp.topic,
                    partition=ktp.partition,
                    log_start=int(starts[ktp]),
                    log_end=int(ends[ktp]),
                    committed=offset,
                )
            )
        return result

    async def _committed(
        self, group_id: str, ktps: list[KafkaTopicPartition]
    ) -> dict[KafkaTopicPartition, Any]:
        coordinator = self._coordinators.get(group_id)
        if coordinator is None:
            coordinator = self._coordinators[group_id] = await self._admin.find_coordinator(
                group_id
            )
        try:
            offsets: dict[KafkaTopicPartition, Any] = await self._admin.list_consumer_group_offsets(
                group_id, group_coordinator_id=coordinator, partitions=ktps
            )
            return offsets
        except Exception:
            # The coordinator may have moved (broker restart): look it up again next time.
            self._coordinators.pop(group_id, None)
            raise

    async def timestamp_at(self, tp: TopicPartition, offset: int) -> float | None:
        ktp = KafkaTopicPartition(*tp)
        consumer = self._consumer
        if ktp not in self._lookup_tps:
            self._lookup_tps.add(ktp)
            consumer.assign(sorted(self._lookup_tps))
            # Paused partitions are never fetched in the background: only on request.
            consumer.pause(*self._lookup_tps)
        consumer.seek(ktp, offset)
        consumer.resume(ktp)
        try:
            batch = await consumer.getmany(ktp, timeout_ms=self._fetch_timeout_ms, max_records=1)
        finally:
            consumer.pause(ktp)
        records = batch.get(ktp) or []
        if not records or records[0].timestamp is None or records[0].timestamp < 0:
            return None
        return float(records[0].timestamp) / 1000.0


@dataclass(slots=True)
class _PartitionState:
    committed: int | None
    progress_at: float  # last time the committed offset moved, the lag was 0 or appeared
    timestamp_offset: int = -1  # the offset whose timestamp is cached below
    timestamp: float | None = None
    lag: int = 0
    stuck: bool = False


class LagMonitor:
    """Polls the group's lag for the assigned partitions and keeps the gauges current."""

    def __init__(
        self,
        source: OffsetSource,
        *,
        group_id: str,
        assigned: Callable[[], Iterable[TopicPartition]],
        metrics: WorkerMetrics,
        stuck_after_s: float,
        interval_s: float = 2.0,
        reachable_within_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._group = group_id
        self._assigned = assigned
        self._metrics = metrics
        self._stuck_after = stuck_after_s
        self._interval = interval_s
        self._reachable_within = reachable_within_s or max(15.0, 3 * interval_s)
        self._clock = clock
        self._state: dict[TopicPartition, _PartitionState] = {}
        self._last_success: float | None = None
        self._failing_since: float | None = None
        self._last_failure_log = 0.0
        self.polls = 0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        assigned: Callable[[], Iterable[TopicPartition]],
        metrics: WorkerMetrics,
        **kwargs: Any,
    ) -> LagMonitor:
        """The monitor of a worker: its group, its assigned partitions."""
        return cls(
            KafkaOffsetReader(settings),
            group_id=settings.app_id,
            assigned=assigned,
            metrics=metrics,
            stuck_after_s=settings.stuck_partition_s,
            **kwargs,
        )

    # --- what health checks ask ----------------------------------------------------------

    def stuck(self) -> list[str]:
        return [partition_name(tp) for tp, st in sorted(self._state.items()) if st.stuck]

    def broker_connected(self) -> bool:
        if self._last_success is None:
            return False
        return self._clock() - self._last_success <= self._reachable_within

    def lag(self) -> dict[TopicPartition, int]:
        """Lag in events per partition at the last poll (tests, debugging)."""
        return {tp: st.lag for tp, st in sorted(self._state.items())}

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled; never raises (a failed poll is counted and logged)."""
        try:
            while True:
                try:
                    await self._source.start()
                    break
                except Exception as exc:
                    self._failed(exc)
                    await asyncio.sleep(self._interval)
            while True:
                await self.refresh()
                await asyncio.sleep(self._interval)
        finally:
            await self._source.close()
            self._forget(set(self._state))

    async def refresh(self) -> None:
        """One poll: read offsets, update the gauges and the stuck set."""
        self.polls += 1
        tps = sorted(set(self._assigned()))
        self._forget(set(self._state) - set(tps))
        try:
            offsets = await self._source.read(self._group, tps)
        except Exception as exc:
            self._failed(exc)
            return
        now = self._clock()
        self._last_success = now
        if self._failing_since is not None:
            log.info("lag monitor reaches Kafka again")
            self._failing_since = None
        still_assigned = set(self._assigned())  # a rebalance may have run meanwhile
        for po in offsets:
            if po.tp in still_assigned:
                await self._update(po, now)

    async def _update(self, po: PartitionOffsets, now: float) -> None:
        m = self._metrics
        labels = {"topic": po.topic, "partition": str(po.partition)}
        state = self._state.get(po.tp)
        if state is None:
            # Progress before this worker held the partition is unknown: measure from now.
            state = self._state[po.tp] = _PartitionState(committed=po.committed, progress_at=now)
            m.last_commit.labels(**labels).set(now)
        elif po.committed != state.committed:
            state.committed = po.committed
            state.progress_at = now
            m.last_commit.labels(**labels).set(now)
        lag, previous_lag = po.lag, state.lag
        state.lag = lag
        if lag == 0 or previous_lag == 0:
            # Caught up, or the lag just appeared: the stuck timer starts now at the
            # earliest (never earlier than the first poll that saw the lag).
            state.progress_at = now
        was_stuck = state.stuck
        state.stuck = lag > 0 and now - state.progress_at > self._stuck_after
        if state.stuck and not was_stuck:
            log.warning(
                "partition %s stuck: lag %d, committed offset unchanged for %.0fs",
                partition_name(po.tp),
                lag,
                now - state.progress_at,
                extra={"topic": po.topic, "partition": po.partition, "offset": po.next_offset},
            )
        elif was_stuck and not state.stuck:
            log.info("partition %s moves again", partition_name(po.tp))

        m.consumer_lag.labels(**labels).set(lag)
        m.log_end_offset.labels(**labels).set(po.log_end)
        if po.committed is not None:
            m.committed_offset.labels(**labels).set(po.committed)
        m.partition_stuck.labels(**labels).set(1 if state.stuck else 0)
        m.consumer_lag_seconds.labels(**labels).set(await self._age(po, state, now))

    async def _age(self, po: PartitionOffsets, state: _PartitionState, now: float) -> float:
        if po.lag == 0:
            return 0.0
        offset = po.next_offset
        if state.timestamp_offset != offset:
            try:
                state.timestamp = await self._source.timestamp_at(po.tp, offset)
            except Exception as exc:
                log.debug("no timestamp for %s@%d: %s", partition_name(po.tp), offset, exc)
                state.timestamp = None
            state.timestamp_offset = offset if state.timestamp is not None else -1
        if state.timestamp is None:
            # Record unreadable (just deleted by retention, fetch timed out): estimate
            # with the time since the partition last progressed.
            return max(0.0, now - state.progress_at)
        return max(0.0, now - state.timestamp)

    def _forget(self, tps: set[TopicPartition]) -> None:
        """Drop revoked partitions, so their lag is reported by their new owner only."""
        m = self._metrics
        for tp in tps:
            self._state.pop(tp, None)
            for gauge in (
                m.consumer_lag,
                m.consumer_lag_seconds,
                m.committed_offset,
                m.last_commit,
                m.log_end_offset,
                m.partition_stuck,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp[0], str(tp[1]))

    def _failed(self, exc: BaseException) -> None:
        self._metrics.lag_monitor_errors.inc()
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_failure_log >= 30.0:
            self._last_failure_log = now
            log.warning("lag monitor cannot read offsets: %s: %s", type(exc).__name__, exc)
