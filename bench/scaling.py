"""Scaling out: one worker vs two in one consumer group.

Each worker runs one analyzer process (two workers x one process fill the two cores
of the reference machine); the topics have four partitions, so two workers split
them two and two. Both groups are started and ready (partitions assigned, analyzers
loaded) before any event is produced, so no rebalance falls inside a measurement.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.corpus import take
from bench.memory import process_tree
from bench.transport import (
    BenchContext,
    Deployment,
    SuiteResult,
    WorkerProcess,
    burst_through,
    stop_workers,
    worker_stats,
)

PARTITIONS = 4


class ScalingSuite:
    name = "scaling"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        env = {"CONTENTSTREAM_POOL_PROCESSES": "1"}
        self.one = Deployment(ctx, "scale1", partitions=PARTITIONS, env=env)
        self.two = Deployment(ctx, "scale2", partitions=PARTITIONS, env=env)
        self.one_workers = [WorkerProcess(self.one, "w1")]
        self.two_workers = [WorkerProcess(self.two, "w1"), WorkerProcess(self.two, "w2")]
        self.ready_s: list[float] = []
        self.memory: list[dict[str, Any]] = []

    @property
    def workers(self) -> list[WorkerProcess]:
        return [*self.one_workers, *self.two_workers]

    async def prepare(self) -> None:
        await self.one.create_topics()
        await self.two.create_topics()
        for w in self.workers:
            w.start()

    async def wait_ready(self, timeout_s: float) -> None:
        self.ready_s = list(await asyncio.gather(*(w.wait_ready(timeout_s) for w in self.workers)))

    async def measure(self) -> SuiteResult:
        texts = self.ctx.corpus.texts
        n1 = self.ctx.size(3000, 10_000)
        n2 = 2 * n1
        try:
            single = await burst_through(
                self.one, "one", take(texts, 0, n1), 60.0 + n1 / 20.0, self.one_workers
            )
            single["worker"] = worker_stats(self.one_workers[0].metrics())
            await asyncio.to_thread(stop_workers, self.one_workers)
            double = await burst_through(
                self.two, "two", take(texts, n1, n2), 60.0 + n2 / 40.0, self.two_workers
            )
            double["workers"] = [worker_stats(w.metrics()) for w in self.two_workers]
            for w in self.two_workers:
                self.memory.extend(process_tree(w.pid))
        finally:
            await self.close()
        ratio = double["events_per_s"] / single["events_per_s"] if single["events_per_s"] else 0.0
        result = SuiteResult(self.name)
        result.figures = {
            "one_events_per_s": single["events_per_s"],
            "two_events_per_s": double["events_per_s"],
            "ratio": ratio,
        }
        result.rows = [
            ("1 worker × 1 process (events/s)", f"{single['events_per_s']:,.0f}"),
            ("2 workers × 1 process, one group (events/s)", f"{double['events_per_s']:,.0f}"),
        ]
        result.raw = {
            "partitions": PARTITIONS,
            "pool_processes_per_worker": 1,
            "one": single,
            "two": double,
            "worker_ready_s": self.ready_s,
            "memory": self.memory,
        }
        return result

    async def close(self) -> None:
        await asyncio.to_thread(stop_workers, self.workers)
