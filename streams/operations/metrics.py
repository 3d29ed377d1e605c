"""Prometheus metrics of a worker.

Conventions: prefix ``contentstream_``, base units (seconds), counters end in
``_total``, no per-event or per-hash labels. Pool processes do not touch these: their
stage timings come back with each result and are observed here, in the parent, so the
figures stay right with any number of processes and no multiprocess directory.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
STAGE_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

OUTCOMES = ("ok", "partial", "dead_lettered", "duplicate", "dropped")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "contentstream_events_consumed_total",
            "Raw events read from Kafka.",
            ["topic"],
            registry=r,
        )
        self.events_finished = Counter(
            "contentstream_events_finished_total",
            "Events finished, by outcome (ok, partial, dead_lettered, duplicate, dropped).",
            ["outcome"],
            registry=r,
        )
        self.stage_duration = Histogram(
            "contentstream_stage_duration_seconds",
            "Time spent in one analysis stage per event (amortised over its batch).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "contentstream_end_to_end_latency_seconds",
            "Result published minus the event's produced_at.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_latency = Histogram(
            "contentstream_processing_latency_seconds",
            "Output (result or dead letter) acknowledged by Kafka minus the time the "
            "processor took the record in.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "contentstream_in_flight_events", "Events being processed now.", registry=r
        )
        self.in_flight_limit = Gauge(
            "contentstream_in_flight_limit", "Most events processed at once.", registry=r
        )
        self.analysis_batch_size = Histogram(
            "contentstream_analysis_batch_size",
            "Events per batch sent to an analyzer process.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_batch_size = Histogram(
            "contentstream_model_batch_size",
            "Texts per forward call of the transformers stage.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.dedup_hits = Counter(
            "contentstream_dedup_hits_total", "Events whose analysis was reused.", registry=r
        )
        self.dedup_misses = Counter(
            "contentstream_dedup_misses_total", "Events not seen before.", registry=r
        )
        self.dedup_unavailable = Counter(
            "contentstream_dedup_unavailable_total",
            "Lookups or stores skipped because the dedup store was unavailable.",
            registry=r,
        )
        self.dead_letters = Counter(
            "contentstream_dead_letters_total",
            "Dead letters, by error code.",
            ["code"],
            registry=r,
        )
        self.retries = Counter(
            "contentstream_retries_total", "Retried analysis attempts.", registry=r
        )
        self.pool_restarts = Counter(
            "contentstream_pool_restarts_total",
            "Analyzer processes replaced (timeout, crash).",
            registry=r,
        )
        self.analyzer_calls = Counter(
            "contentstream_analyzer_events_total",
            "Events sent to the analyzers (repeats served from dedup are not).",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "contentstream_consumer_lag_events",
            "Log-end offset minus committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.consumer_lag_seconds = Gauge(
            "contentstream_consumer_lag_seconds",
            "Age of the oldest event not yet committed (0 when caught up).",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "contentstream_committed_offset",
            "Offset committed for the group.",
            ["topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "contentstream_last_commit_timestamp_seconds",
            "Unix time the committed offset last moved.",
            ["topic", "partition"],
            registry=r,
        )
        self.log_end_offset = Gauge(
            "contentstream_consumer_log_end_offset",
            "Log-end offset (high watermark) of an assigned input partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_stuck = Gauge(
            "contentstream_partition_stuck",
            "1 while an assigned partition has lag but its committed offset has not moved "
            "for longer than the stuck threshold (the worker is then not ready).",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_monitor_errors = Counter(
            "contentstream_lag_monitor_errors_total",
            "Lag-monitor polls that could not read offsets from Kafka.",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "contentstream_assigned_partitions",
            "Partitions assigned to this worker.",
            registry=r,
        )
        self.rebalances = Counter(
            "contentstream_rebalances_total", "Partition assignments received.", registry=r
        )
        self.event_loop_lag = Gauge(
            "contentstream_event_loop_lag_seconds",
            "How late the last event-loop probe ran (a stalled loop misses heartbeats).",
            registry=r,
        )
        self.event_loop_lag_max = Gauge(
            "contentstream_event_loop_lag_max_seconds",
            "Largest event-loop probe delay since start.",
            registry=r,
        )
        self.up = Gauge("contentstream_worker_up", "1 while the worker runs.", registry=r)
        for outcome in OUTCOMES:
            self.events_finished.labels(outcome=outcome)
        self._stage_children: dict[str, Any] = {}

    def observe_stages(self, timings_ms: dict[str, float], count: int = 1) -> None:
        """``count`` events each spent ``timings_ms`` per stage.

        The analyzer processes time a stage once per batch and give every event of the
        batch the average, so a batch's events arrive with equal timings: they are
        recorded in one step (the same counts and sums as ``count`` observations)."""
        children = self._stage_children
        for stage, ms in timings_ms.items():
            child = children.get(stage)
            if child is None:
                child = children[stage] = self.stage_duration.labels(stage=stage)
            if count == 1:
                child.observe(ms / 1000.0)
            else:
                observe_values(child, [ms / 1000.0] * count)


def observe_values(histogram: Any, values: list[float]) -> None:
    """Many observations in one step: each bucket and the sum are incremented once
    (``observe`` takes a lock and walks the buckets per value, ~2 µs each).
    prometheus_client has no bulk observe; this touches the same values ``observe``
    does, and falls back to it if their names ever change."""
    if not values:
        return
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)
        counts[index] = counts.get(index, 0) + 1
    for index, count in counts.items():
        buckets[index].inc(count)
    total.inc(sum(values))
