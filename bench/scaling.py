"""Scaling out: one worker vs two in one consumer group.

Each worker runs one analyzer process (two workers x one process fill the two cores
of the reference machine); the topics have four partitions, so two workers split
them two and two. Both groups are started and ready (partitions assigned, analyzers
loaded) before any event is produced, so no rebalance falls inside a measurement.

The two set-ups take turns (one, two, one, two: ``ROUNDS`` bursts each) and each rate
combines its bursts, so a slow phase of a shared host weighs on both sides of the
ratio. One after the other, three full runs in one evening gave 1.47, 1.65 and 1.90.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.corpus import numbered_texts, take
from bench.memory import cpu_by_role, cpu_spent, machine_row, process_tree
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
ROUNDS = 2


def _timed(bursts: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    """(duration, burst) for the bursts that have a rate: duration = events / rate."""
    return [(b["events"] / b["events_per_s"], b) for b in bursts if b["events_per_s"] > 0]


def combined_rate(bursts: list[dict[str, Any]]) -> float:
    """Events per second over several bursts: their events over the sum of their
    durations (each duration = events / that burst's windowed rate)."""
    timed = _timed(bursts)
    seconds = sum(d for d, _ in timed)
    return sum(b["events"] for _, b in timed) / seconds if seconds else 0.0


def combined_share(bursts: list[dict[str, Any]], key: str) -> float | None:
    """A machine CPU share over several bursts, each weighted by its duration."""
    timed = [(d, b[key]) for d, b in _timed(bursts) if key in b]
    seconds = sum(d for d, _ in timed)
    return sum(d * share for d, share in timed) / seconds if seconds else None


def _rates(bursts: list[dict[str, Any]]) -> str:
    return " / ".join(f"{b['events_per_s']:,.0f}" for b in bursts)


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
        n1 = self.ctx.size(3000, 10_000) // ROUNDS
        n2 = 2 * n1
        texts = numbered_texts(self.ctx.corpus.texts, 3 * n1 * ROUNDS)
        ones: list[dict[str, Any]] = []
        twos: list[dict[str, Any]] = []
        start = 0
        try:
            for turn in range(ROUNDS):
                one_texts = take(texts, start, n1)
                ones.append(await self._burst(self.one, f"one{turn}", one_texts, 60 + n1 / 20))
                two_texts = take(texts, start + n1, n2)
                twos.append(await self._burst(self.two, f"two{turn}", two_texts, 60 + n2 / 40))
                start += n1 + n2
            single: dict[str, Any] = {"events_per_s": combined_rate(ones), "bursts": ones}
            double: dict[str, Any] = {"events_per_s": combined_rate(twos), "bursts": twos}
            for group, bursts in ((single, ones), (double, twos)):
                for key in ("machine_busy_share", "machine_steal_share"):
                    share = combined_share(bursts, key)
                    if share is not None:
                        group[key] = round(share, 3)
            single["worker"] = worker_stats(self.one_workers[0].metrics())
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
            (
                f"1 worker × 1 process (events/s), {ROUNDS} bursts taking turns with the 2",
                f"{single['events_per_s']:,.0f} ({_rates(ones)})",
            ),
            (
                "2 workers × 1 process, one group (events/s)",
                f"{double['events_per_s']:,.0f} ({_rates(twos)})",
            ),
            (
                "machine CPU busy / stolen during the bursts: 1 worker; 2 workers",
                f"{machine_row(single)}; {machine_row(double)}",
            ),
        ]
        result.raw = {
            "partitions": PARTITIONS,
            "pool_processes_per_worker": 1,
            "rounds": ROUNDS,
            "one": single,
            "two": double,
            "worker_ready_s": self.ready_s,
            "memory": self.memory,
        }
        return result

    async def _burst(
        self, deployment: Deployment, prefix: str, texts: list[str], timeout_s: float
    ) -> dict[str, Any]:
        """One burst through ``deployment``'s workers; also the CPU seconds the other
        group's processes took meanwhile (idle, they should take next to none)."""
        mine = self.one_workers if deployment is self.one else self.two_workers
        idle = self.two_workers if deployment is self.one else self.one_workers
        before = cpu_by_role(w.pid for w in idle)
        burst = await burst_through(deployment, prefix, texts, timeout_s, mine)
        after = cpu_by_role(w.pid for w in idle)
        burst["idle_group_cpu_s"] = round(sum(cpu_spent(before, after).values()), 3)
        return burst

    async def close(self) -> None:
        await asyncio.to_thread(stop_workers, self.workers)
