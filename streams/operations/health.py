"""Liveness and readiness of a worker, and the event-loop responsiveness probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from streams.operations.metrics import WorkerMetrics


class LoopLagProbe:
    """Schedules itself every ``interval_s`` and records how late it ran.

    A late probe means something blocked the event loop; long enough, and the Kafka
    consumer misses heartbeats and the group rebalances.
    """

    def __init__(self, metrics: WorkerMetrics | None = None, *, interval_s: float = 0.05) -> None:
        self._metrics = metrics
        self._interval = interval_s
        self.last_run = time.monotonic()
        self.last_lag = 0.0
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            lag = max(0.0, loop.time() - expected)
            self.last_run = time.monotonic()
            self.last_lag = lag
            self.max_lag = max(self.max_lag, lag)
            if self._metrics is not None:
                self._metrics.event_loop_lag.set(lag)
                self._metrics.event_loop_lag_max.set(self.max_lag)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def seconds_since_last_run(self) -> float:
        return time.monotonic() - self.last_run


class WorkerHealth:
    """/healthz (liveness) and /readyz (readiness) answers.

    Liveness: the process runs and its event loop is responsive; a failing liveness
    probe gets the container restarted, so it checks nothing outside the process.
    Readiness: Kafka reachable, partitions assigned, analyzers loaded and warmed up (every
    analyzer process has run its stages' ``warm_up``, e.g. a transformers model's dummy
    batches of every length bucket, before the pool starts; a model reload by SIGHUP
    keeps the worker ready, the old processes serving until the new ones are), and no
    assigned partition stuck (lag with no commit progress, see streams/operations/lag_monitor.py).
    Without ``broker_connected`` readiness does not check the broker.
    """

    def __init__(
        self,
        *,
        probe: LoopLagProbe,
        analyzers_ready: Callable[[], bool],
        assigned_partitions: Callable[[], int],
        stuck_partitions: Callable[[], list[str]],
        broker_connected: Callable[[], bool] | None = None,
        max_loop_silence_s: float = 5.0,
    ) -> None:
        self._probe = probe
        self._analyzers_ready = analyzers_ready
        self._assigned = assigned_partitions
        self._stuck = stuck_partitions
        self._broker = broker_connected
        self._max_silence = max_loop_silence_s

    def liveness(self) -> dict[str, Any]:
        silence = self._probe.seconds_since_last_run()
        return {
            "ok": silence < self._max_silence,
            "event_loop_lag_s": round(self._probe.last_lag, 4),
            "seconds_since_loop_probe": round(silence, 3),
        }

    def readiness(self) -> dict[str, Any]:
        reasons = []
        broker = self._broker() if self._broker is not None else None
        if broker is False:
            reasons.append("Kafka not reachable")
        if not self._analyzers_ready():
            reasons.append("analyzers not loaded")
        assigned = self._assigned()
        if assigned == 0:
            reasons.append("no partitions assigned")
        stuck = self._stuck()
        if stuck:
            reasons.append(f"stuck partitions: {', '.join(stuck)}")
        return {
            "ok": not reasons,
            "reasons": reasons,
            "assigned_partitions": assigned,
            "stuck_partitions": stuck,
            "broker_connected": broker,
        }
