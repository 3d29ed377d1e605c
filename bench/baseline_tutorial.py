"""The baseline: the seed tutorial's design, on the same input and the same broker.

A plain asyncio aiokafka consumer loop: for each record, decode it, run the same
analyzers (``build_pipeline``, one event per call) in a ``ThreadPoolExecutor(4)``,
await the result, publish it with ``send_and_wait``, next record. Offsets are
auto-committed. This is the pattern the worker replaces; the worker is judged against it.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from analyzers.pipeline import AnalysisPipeline, AnalysisRequest
from bench.corpus import take
from bench.transport import (
    MAX_MESSAGE_BYTES,
    BenchContext,
    SuiteResult,
    create_topics,
    produce_burst,
    unique_name,
    window_rate,
)

THREADS = 4


def analyze_one(pipeline: AnalysisPipeline, text: str) -> dict[str, Any]:
    return pipeline.analyze([AnalysisRequest(text=text)])[0].fields()


class TutorialSuite:
    name = "tutorial"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.topic_base = unique_name("tutorial")
        self.events = ctx.size(1500, 10_000)
        self.pipeline: AnalysisPipeline | None = None
        self._building: asyncio.Future[AnalysisPipeline] | None = None

    @property
    def source(self) -> str:
        return f"{self.topic_base}.raw"

    @property
    def sink(self) -> str:
        return f"{self.topic_base}.analyzed"

    async def prepare(self) -> None:
        from streams.analysis.pipeline_factory import resolve_pipeline_factory
        from streams.settings import load_settings

        await create_topics(self.ctx, [self.source, self.sink], 4)
        await produce_burst(
            self.ctx, self.source, "tut", take(self.ctx.corpus.texts, 0, self.events)
        )
        factory = resolve_pipeline_factory(load_settings())
        self._building = asyncio.ensure_future(asyncio.to_thread(factory))

    async def wait_ready(self, timeout_s: float) -> None:
        assert self._building is not None
        self.pipeline = await asyncio.wait_for(self._building, timeout_s)
        analyze_one(self.pipeline, "今天天气很好。")  # warm, as the worker's pool does

    async def measure(self) -> SuiteResult:
        assert self.pipeline is not None
        pipeline = self.pipeline
        consumer = AIOKafkaConsumer(
            self.source,
            bootstrap_servers=self.ctx.bootstrap,
            group_id=self.topic_base,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.ctx.bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES
        )
        executor = ThreadPoolExecutor(THREADS)
        loop = asyncio.get_running_loop()
        done_at: list[float] = []
        await consumer.start()
        await producer.start()
        cpu_started = time.process_time()
        try:
            deadline = time.monotonic() + 60.0 + self.events / 20.0
            async for record in consumer:
                event = orjson.loads(record.value or b"{}")
                fields = await loop.run_in_executor(
                    executor, analyze_one, pipeline, str(event.get("text", ""))
                )
                fields.update(
                    id=event.get("id"),
                    source=event.get("source"),
                    processed_at=datetime.now(UTC).isoformat(),
                )
                await producer.send_and_wait(self.sink, value=orjson.dumps(fields), key=record.key)
                done_at.append(time.perf_counter())
                if len(done_at) >= self.events or time.monotonic() > deadline:
                    break
        finally:
            cpu_spent = time.process_time() - cpu_started
            await consumer.stop()
            await producer.stop()
            executor.shutdown(wait=False)
        rate = window_rate(done_at)
        result = SuiteResult(self.name)
        result.figures = {"events_per_s": rate}
        result.rows = [
            ("tutorial design (events/s)", f"{rate:,.0f}" if not math.isnan(rate) else "n/a")
        ]
        result.raw = {
            "design": f"asyncio aiokafka loop, one event at a time, ThreadPoolExecutor({THREADS}), "
            "send_and_wait per result, auto-commit",
            "events": self.events,
            "processed": len(done_at),
            "events_per_s": round(rate, 1),
            "cpu_us_per_event": round(cpu_spent * 1e6 / max(len(done_at), 1), 1),
        }
        return result

    async def close(self) -> None:
        self.pipeline = None
