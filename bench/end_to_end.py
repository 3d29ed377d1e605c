"""The analysis-only limit, and the full worker end to end through Kafka.

Analysis only: the worker's own ``AnalysisPool`` with the worker's pipeline (built by
``resolve_pipeline_factory(settings)``, as the worker does), the worker's pool size and
batch size, fed straight from memory with every process kept busy: what the analyzers
can do on this machine with no Kafka, no decoding, no dedup and no publishing.

End to end: a real worker with the default analyses. Saturation = a burst of events
produced as fast as possible to a ready worker, rated over the results' Kafka
timestamps. Latency = result timestamp - the event's ``produced_at``, with an
open-loop paced producer at 100% and at 50% of the measured saturation rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from analyzers.pipeline import AnalysisRequest
from bench.corpus import numbered_texts, take
from bench.memory import (
    cpu_seconds,
    machine_cpu_share,
    machine_cpu_ticks,
    machine_row,
    process_tree,
)
from bench.transport import (
    BenchContext,
    Deployment,
    ResultCollector,
    SuiteResult,
    WorkerProcess,
    bench_redis_url,
    burst_through,
    clear_dedup,
    latency_summary,
    percentile,
    produce_paced,
    stop_workers,
    window_rate,
    worker_stats,
)
from streams.analysis.pool import AnalysisPool
from streams.settings import Settings, load_settings


def worker_settings() -> Settings:
    """The settings a worker started from this environment would use."""
    return load_settings()


def saturation_count(ctx: BenchContext) -> int:
    """Events of the end-to-end saturation run; the analysis-only limit is measured on
    the very same texts, so the ratio of the two compares like with like."""
    return ctx.size(6000, len(ctx.corpus.texts))


class AnalysisOnlySuite:
    name = "analysis"

    def __init__(self, ctx: BenchContext) -> None:
        from streams.analysis.pipeline_factory import resolve_pipeline_factory

        self.ctx = ctx
        self.settings = worker_settings()
        self.pool = AnalysisPool(
            resolve_pipeline_factory(self.settings),
            processes=self.settings.effective_pool_processes,
            queue_depth=self.settings.pool_queue_depth,
        )
        self._starting: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        self._starting = asyncio.ensure_future(self.pool.start())

    async def wait_ready(self, timeout_s: float) -> None:
        assert self._starting is not None
        await asyncio.wait_for(self._starting, timeout_s)

    async def _rate(self, texts: Sequence[str]) -> dict[str, Any]:
        size = self.settings.analysis_batch_size
        batches = [
            [AnalysisRequest(text=t) for t in texts[i : i + size]]
            for i in range(0, len(texts), size)
        ]
        timeout = self.settings.stage_timeout_s * 4
        done_at: list[float] = []

        async def run(batch: list[AnalysisRequest]) -> None:
            await self.pool.run(batch, timeout)
            done_at.extend([time.perf_counter()] * len(batch))

        cpu_before = {pid: cpu_seconds(pid) or 0.0 for pid in self.pool.pids}
        machine_before = machine_cpu_ticks()
        started = time.perf_counter()
        # pool.run waits for an idle process, so this keeps every process busy.
        await asyncio.gather(*(run(b) for b in batches))
        elapsed = time.perf_counter() - started
        machine = machine_cpu_share(machine_before, machine_cpu_ticks())
        cpu = sum((cpu_seconds(pid) or 0.0) - cpu_before.get(pid, 0.0) for pid in self.pool.pids)
        whole = len(texts) / elapsed if elapsed > 0 else math.nan
        return {
            "docs": len(texts),
            "seconds": round(elapsed, 3),
            # Rated like the end-to-end run (between the 5th and 95th percentile of
            # completion times), so the ratio of the two has no estimator bias. A few
            # batches (the long documents) finish in too few clumps for a window.
            "docs_per_s": round(window_rate(done_at) if len(batches) >= 20 else whole, 1),
            "docs_per_s_whole_run": round(whole, 1),
            "pool_cpu_us_per_doc": round(cpu * 1e6 / max(len(texts), 1), 1),
            **machine,
        }

    async def measure(self) -> SuiteResult:
        result = SuiteResult(self.name)
        try:
            # Untimed warm-up on texts the timed pass does not use: the end-to-end rate
            # is taken between the 5th and 95th percentile of its results, so its
            # start-up is excluded too, and a cold pool made the quick ratio look better.
            texts = self.ctx.corpus.texts
            await self._rate(take(texts, max(0, len(texts) - 500), 500))
            # The texts of the end-to-end saturation run (numbered the same way).
            short = await self._rate(
                numbered_texts(self.ctx.corpus.texts, saturation_count(self.ctx))
            )
            long = await self._rate(self.ctx.corpus.long_texts)
        except BaseException:
            await self.close()
            raise
        processes = self.pool.size
        result.figures = {"docs_per_s": short["docs_per_s"], "long_docs_per_s": long["docs_per_s"]}
        result.rows = [
            (f"analysis only, {processes} processes (docs/s)", f"{short['docs_per_s']:,.0f}"),
            ("analysis only, ≥1000-char docs (docs/s)", f"{long['docs_per_s']:,.1f}"),
            ("analysis only, pool CPU µs/doc", f"{short['pool_cpu_us_per_doc']:,.0f}"),
            ("analysis only, machine CPU busy / stolen", machine_row(short)),
        ]
        result.raw = {
            "processes": processes,
            "batch_size": self.settings.analysis_batch_size,
            "analyzer_versions": self.pool.versions,
            "short": short,
            "long": long,
        }
        return result

    async def measure_again(self, result: SuiteResult) -> None:
        """The same limit once more, after the end-to-end run. The host's speed drifts
        between phases of a run (other tenants); the end-to-end ratio is taken against
        the faster of the two measurements, so a slow phase cannot flatter it."""
        again = await self._rate(numbered_texts(self.ctx.corpus.texts, saturation_count(self.ctx)))
        before = result.figures["docs_per_s"]
        result.raw["short_after_e2e"] = again
        result.figures["docs_per_s_before_e2e"] = before
        result.figures["docs_per_s_after_e2e"] = again["docs_per_s"]
        result.figures["docs_per_s"] = max(before, again["docs_per_s"])
        result.rows[0] = (
            f"analysis only, {self.pool.size} processes (docs/s): the higher of before / after e2e",
            f"{result.figures['docs_per_s']:,.0f} ({before:,.0f} / {again['docs_per_s']:,.0f})",
        )

    async def close(self) -> None:
        await self.pool.close()


async def paced_through(
    deployment: Deployment, prefix: str, texts: Sequence[str], rate: float, timeout_s: float
) -> dict[str, Any]:
    collector = ResultCollector(deployment.ctx, deployment.output_topic)
    await collector.start()
    try:
        await clear_dedup(bench_redis_url(deployment.ctx.redis_url))
        produced, arrivals_done = await asyncio.gather(
            produce_paced(deployment.ctx, deployment.raw_topic, prefix, texts, rate),
            collector.collect(prefix, len(texts), timeout_s),
        )
    finally:
        await collector.stop()
    sent, achieved = produced
    arrivals, complete = arrivals_done
    in_order = sorted(
        (a for a in arrivals if a.latency_s is not None), key=lambda a: a.produced_at_s or 0.0
    )
    latencies = [a.latency_s for a in in_order if a.latency_s is not None]
    quarter = max(1, len(latencies) // 4)
    first, last = latencies[:quarter], latencies[-quarter:]
    return {
        "target_rate": round(rate, 1),
        "achieved_rate": round(achieved, 1),
        "events": sent,
        "results": len(arrivals),
        "complete": complete,
        "latency": latency_summary(latencies),
        # A worker that cannot keep up shows latency growing through the run.
        "p50_ms_first_quarter": round(percentile(first, 50) * 1000.0, 1) if first else None,
        "p50_ms_last_quarter": round(percentile(last, 50) * 1000.0, 1) if last else None,
    }


class EndToEndSuite:
    name = "e2e"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.deployment = Deployment(ctx, "e2e")
        self.workers = [WorkerProcess(self.deployment, "w1")]
        self.ready_s: list[float] = []
        self.memory: list[dict[str, Any]] = []

    async def prepare(self) -> None:
        await self.deployment.create_topics()
        for w in self.workers:
            w.start()

    async def wait_ready(self, timeout_s: float) -> None:
        self.ready_s = list(await asyncio.gather(*(w.wait_ready(timeout_s) for w in self.workers)))

    async def measure(self) -> SuiteResult:
        ctx = self.ctx
        result = SuiteResult(self.name)
        # Numbered texts: the quick sample wraps around, and a repeat would be answered
        # from the dedup store (or the worker's own recent-analysis map) instead of
        # analysed, flattering rate and latency.
        count = saturation_count(ctx)
        # Enough for the saturation run and both paced runs without a repeat.
        texts = numbered_texts(ctx.corpus.texts, ctx.size(30_000, count + 300_000))
        try:
            offset = 0
            saturation = await burst_through(
                self.deployment,
                "sat",
                take(texts, offset, count),
                60.0 + count / 50.0,
                self.workers,
            )
            offset += count
            long = await burst_through(
                self.deployment,
                "long",
                ctx.corpus.long_texts,
                60.0 + len(ctx.corpus.long_texts),
                self.workers,
            )
            rate = saturation["events_per_s"]
            duration = ctx.size(4, 30)
            paced: dict[str, Any] = {}
            # 50% first: a backlog left by the 100% run cannot leak into it.
            for label, share in (("50%", 0.5), ("100%", 1.0)):
                if not rate or math.isnan(rate):
                    break
                n = max(10, int(rate * share * duration))
                paced[label] = await paced_through(
                    self.deployment,
                    f"paced{int(share * 100)}",
                    take(texts, offset, n),
                    rate * share,
                    120.0 + duration * 2,
                )
                offset += n
            stats = worker_stats(self.workers[0].metrics())
            self.memory = process_tree(self.workers[0].pid)
        finally:
            await self.close()
        result.figures = {
            "events_per_s": saturation["events_per_s"],
            "long_events_per_s": long["events_per_s"],
        }
        result.rows = [
            ("end to end, saturation (events/s)", f"{saturation['events_per_s']:,.0f}"),
            ("end to end, ≥1000-char docs (events/s)", f"{long['events_per_s']:,.1f}"),
            (
                "end to end, CPU µs/event: worker process / pool processes",
                f"{saturation.get('worker_cpu_us_per_event', math.nan):,.0f} / "
                f"{saturation.get('pool_cpu_us_per_event', math.nan):,.0f}",
            ),
            ("end to end, saturation: machine CPU busy / stolen", machine_row(saturation)),
        ]
        for label, run in paced.items():
            lat = run["latency"]
            result.figures[f"p99_ms_at_{label}"] = lat["p99_ms"]
            result.rows.append(
                (
                    f"latency at {label} of saturation ({run['achieved_rate']:,.0f} ev/s) "
                    "p50/p95/p99 ms (p50 first→last quarter)",
                    f"{lat['p50_ms']:,.0f} / {lat['p95_ms']:,.0f} / {lat['p99_ms']:,.0f} "
                    f"({run['p50_ms_first_quarter']:,.0f}→{run['p50_ms_last_quarter']:,.0f})",
                )
            )
        result.raw = {
            "saturation": saturation,
            "long": long,
            "paced": paced,
            "worker": stats,
            "worker_ready_s": self.ready_s,
            "memory": self.memory,
            "settings": {
                "pool_processes": worker_settings().effective_pool_processes,
                "dedup": "reuse (Redis, benchmark db, cleared per phase)"
                if ctx.redis_url
                else "reuse (in-process LRU)",
            },
        }
        return result

    async def close(self) -> None:
        await asyncio.to_thread(stop_workers, self.workers)


class FaustEndToEndSuite:
    """The Faust engine's saturation rate, beside the batch engine's (e2e) in one run:
    the same processor behind a Faust agent that takes batches (README, Engines)."""

    name = "e2e_faust"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.deployment = Deployment(ctx, "e2e_faust")
        self.workers = [WorkerProcess(self.deployment, "w1", CONTENTSTREAM_ENGINE="faust")]

    async def prepare(self) -> None:
        await self.deployment.create_topics()
        for w in self.workers:
            w.start()

    async def wait_ready(self, timeout_s: float) -> None:
        await asyncio.gather(*(w.wait_ready(timeout_s) for w in self.workers))

    async def measure(self) -> SuiteResult:
        result = SuiteResult(self.name)
        count = saturation_count(self.ctx)
        texts = [f"{t} faust" for t in numbered_texts(self.ctx.corpus.texts, count)]
        try:
            saturation = await burst_through(
                self.deployment, "sat", texts, 60.0 + count / 50.0, self.workers
            )
        finally:
            await self.close()
        result.figures = {"events_per_s": saturation["events_per_s"]}
        result.rows = [
            (
                "Faust engine end to end, saturation (events/s)",
                f"{saturation['events_per_s']:,.0f}",
            ),
            (
                "Faust engine, CPU µs/event: worker process / pool processes",
                f"{saturation.get('worker_cpu_us_per_event', math.nan):,.0f} / "
                f"{saturation.get('pool_cpu_us_per_event', math.nan):,.0f}",
            ),
        ]
        result.raw = {"saturation": saturation}
        return result

    async def close(self) -> None:
        await asyncio.to_thread(stop_workers, self.workers)
