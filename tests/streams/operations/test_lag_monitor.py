"""streams/operations/lag_monitor.py with a scripted offset source and clock (no Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import pytest
from prometheus_client import generate_latest

from streams.kafka.records import TopicPartition
from streams.operations.lag_monitor import LagMonitor, PartitionOffsets
from streams.operations.metrics import WorkerMetrics

TOPIC = "content.raw"
P0: TopicPartition = (TOPIC, 0)
P1: TopicPartition = (TOPIC, 1)


@dataclass
class FakeSource:
    """Offsets and record timestamps as a broker would report them."""

    log_start: dict[TopicPartition, int] = field(default_factory=dict)
    log_end: dict[TopicPartition, int] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    timestamps: dict[tuple[TopicPartition, int], float] = field(default_factory=dict)
    fail: bool = False
    lookups: list[tuple[TopicPartition, int]] = field(default_factory=list)
    started: bool = False
    closed: bool = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def read(self, group_id: str, tps: list[TopicPartition]) -> list[PartitionOffsets]:
        assert group_id == "group"
        if self.fail:
            raise ConnectionError("broker gone")
        return [
            PartitionOffsets(
                topic=tp[0],
                partition=tp[1],
                log_start=self.log_start.get(tp, 0),
                log_end=self.log_end.get(tp, 0),
                committed=self.committed.get(tp),
            )
            for tp in tps
        ]

    async def timestamp_at(self, tp: TopicPartition, offset: int) -> float | None:
        self.lookups.append((tp, offset))
        return self.timestamps.get((tp, offset))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def sample(metrics: WorkerMetrics, name: str, tp: TopicPartition) -> float | None:
    return metrics.registry.get_sample_value(name, {"topic": tp[0], "partition": str(tp[1])})


def make_monitor(
    source: FakeSource,
    assigned: set[TopicPartition],
    clock: Clock,
    *,
    stuck_after_s: float = 60.0,
) -> tuple[LagMonitor, WorkerMetrics]:
    metrics = WorkerMetrics()
    monitor = LagMonitor(
        source,
        group_id="group",
        assigned=lambda: assigned,
        metrics=metrics,
        stuck_after_s=stuck_after_s,
        interval_s=0.01,
        clock=clock,
    )
    return monitor, metrics


async def test_lag_offsets_and_age_of_oldest_uncommitted_event() -> None:
    clock = Clock()
    source = FakeSource(
        log_end={P0: 120, P1: 40},
        committed={P0: 100, P1: 40},
        timestamps={(P0, 100): clock.now - 42.5},
    )
    monitor, metrics = make_monitor(source, {P0, P1}, clock)
    await monitor.refresh()

    assert sample(metrics, "contentstream_consumer_lag_events", P0) == 20
    assert sample(metrics, "contentstream_consumer_lag_seconds", P0) == pytest.approx(42.5)
    assert sample(metrics, "contentstream_committed_offset", P0) == 100
    assert sample(metrics, "contentstream_consumer_log_end_offset", P0) == 120
    assert sample(metrics, "contentstream_consumer_lag_events", P1) == 0
    assert sample(metrics, "contentstream_consumer_lag_seconds", P1) == 0
    assert monitor.lag() == {P0: 20, P1: 0}
    # Only the partition with lag needed a record fetched.
    assert source.lookups == [(P0, 100)]
    assert monitor.broker_connected()


async def test_group_without_commits_counts_from_the_oldest_record() -> None:
    clock = Clock()
    source = FakeSource(log_start={P0: 30}, log_end={P0: 50})
    monitor, metrics = make_monitor(source, {P0}, clock)
    await monitor.refresh()
    assert sample(metrics, "contentstream_consumer_lag_events", P0) == 20
    assert sample(metrics, "contentstream_committed_offset", P0) is None
    assert source.lookups == [(P0, 30)]


def test_records_removed_by_retention_are_no_backlog() -> None:
    po = PartitionOffsets(TOPIC, 0, log_start=500, log_end=600, committed=100)
    assert po.next_offset == 500
    assert po.lag == 100
    assert PartitionOffsets(TOPIC, 0, 0, 10, committed=10).lag == 0


async def test_timestamp_is_fetched_once_per_committed_offset() -> None:
    clock = Clock()
    source = FakeSource(
        log_end={P0: 10},
        committed={P0: 4},
        timestamps={(P0, 4): clock.now - 5, (P0, 7): clock.now - 1},
    )
    monitor, metrics = make_monitor(source, {P0}, clock)
    await monitor.refresh()
    clock.now += 3
    await monitor.refresh()
    # Same committed offset, same record: the age grows with the clock, no new fetch.
    assert source.lookups == [(P0, 4)]
    assert sample(metrics, "contentstream_consumer_lag_seconds", P0) == pytest.approx(8)
    source.committed[P0] = 7
    await monitor.refresh()
    assert source.lookups == [(P0, 4), (P0, 7)]
    assert sample(metrics, "contentstream_consumer_lag_seconds", P0) == pytest.approx(4)


async def test_partition_with_lag_and_no_commit_progress_becomes_stuck_then_recovers() -> None:
    clock = Clock()
    source = FakeSource(log_end={P0: 10, P1: 5}, committed={P0: 0, P1: 5})
    monitor, metrics = make_monitor(source, {P0, P1}, clock, stuck_after_s=30)
    await monitor.refresh()
    assert monitor.stuck() == []
    clock.now += 29
    await monitor.refresh()
    assert monitor.stuck() == []
    clock.now += 2
    await monitor.refresh()
    assert monitor.stuck() == ["content.raw[0]"]
    assert sample(metrics, "contentstream_partition_stuck", P0) == 1
    assert sample(metrics, "contentstream_partition_stuck", P1) == 0
    # The lag-free partition never counts as stuck, however old its last commit.
    clock.now += 1000
    await monitor.refresh()
    assert monitor.stuck() == ["content.raw[0]"]

    source.committed[P0] = 3
    await monitor.refresh()
    assert monitor.stuck() == []
    assert sample(metrics, "contentstream_partition_stuck", P0) == 0
    assert sample(metrics, "contentstream_last_commit_timestamp_seconds", P0) == clock.now


async def test_stuck_timer_starts_when_an_idle_partition_gets_lag() -> None:
    clock = Clock()
    source = FakeSource(log_end={P0: 5}, committed={P0: 5})
    monitor, _ = make_monitor(source, {P0}, clock, stuck_after_s=30)
    await monitor.refresh()
    clock.now += 3600  # idle for an hour: nothing to commit, not stuck
    await monitor.refresh()
    source.log_end[P0] = 6
    clock.now += 20
    await monitor.refresh()  # the first poll that sees the lag starts the timer
    clock.now += 29
    await monitor.refresh()
    assert monitor.stuck() == []
    clock.now += 2
    await monitor.refresh()
    assert monitor.stuck() == ["content.raw[0]"]


async def test_revoked_partitions_leave_the_metrics() -> None:
    clock = Clock()
    assigned = {P0, P1}
    source = FakeSource(log_end={P0: 3, P1: 4}, committed={P0: 3, P1: 4})
    monitor, metrics = make_monitor(source, assigned, clock)
    await monitor.refresh()
    assigned.discard(P1)
    await monitor.refresh()
    assert sample(metrics, "contentstream_consumer_lag_events", P0) == 0
    assert sample(metrics, "contentstream_consumer_lag_events", P1) is None
    body = generate_latest(metrics.registry).decode()
    assert 'partition="1"' not in body


async def test_unreachable_broker_is_counted_and_reported() -> None:
    clock = Clock()
    source = FakeSource(log_end={P0: 3}, committed={P0: 3})
    monitor, metrics = make_monitor(source, {P0}, clock)
    assert not monitor.broker_connected()  # never reached yet
    await monitor.refresh()
    assert monitor.broker_connected()
    source.fail = True
    await monitor.refresh()
    assert metrics.registry.get_sample_value("contentstream_lag_monitor_errors_total") == 1
    assert monitor.broker_connected()  # one failed poll is within the grace period
    clock.now += 60
    await monitor.refresh()
    assert not monitor.broker_connected()
    # The last known values stay until the broker answers again.
    assert sample(metrics, "contentstream_consumer_lag_events", P0) == 0
    source.fail = False
    await monitor.refresh()
    assert monitor.broker_connected()


async def test_run_polls_until_cancelled_and_then_closes_the_source() -> None:
    clock = Clock()
    source = FakeSource(log_end={P0: 3}, committed={P0: 1}, timestamps={(P0, 1): clock.now})
    monitor, metrics = make_monitor(source, {P0}, clock)
    task = asyncio.ensure_future(monitor.run())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if monitor.polls >= 3:
            break
    assert monitor.polls >= 3
    assert sample(metrics, "contentstream_consumer_lag_events", P0) == 2
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert source.started and source.closed
    assert sample(metrics, "contentstream_consumer_lag_events", P0) is None
