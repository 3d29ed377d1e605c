"""The analyzer process pool: batches, deadlines that kill, crashes that heal."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from scripted_pipelines import CRASH, HANG, build_light

from analyzers.pipeline import AnalysisRequest
from schemas.errors import ServiceUnavailable, StageTimeout
from schemas.events import AnalysisName
from streams.analysis_batcher import AnalysisBatcher
from streams.analysis_pool import AnalysisPool
from streams.analysis_wire import plain_fields

pytestmark = pytest.mark.timeout(120)

KW = frozenset({AnalysisName.LANGUAGE, AnalysisName.KEYWORDS})


def req(text: str) -> AnalysisRequest:
    return AnalysisRequest(text=text, analyses=KW)


async def test_batch_is_analysed_in_order() -> None:
    pool = AnalysisPool(functools.partial(build_light), processes=1)
    await pool.start()
    try:
        batch = await pool.run([req("你好世界"), req("hello world")], timeout_s=10)
        out = [plain_fields(o) for o in batch]
        assert [o["language"] for o in out] == ["zh", "en"]
        assert out[0]["keywords"] == [{"text": "你好世界", "weight": 1.0}]
        assert pool.versions["keywords"] == "scripted-1"
    finally:
        await pool.close()


async def test_hanging_batch_times_out_and_process_is_replaced() -> None:
    restarts: list[str] = []
    pool = AnalysisPool(build_light, processes=1, on_restart=restarts.append)
    await pool.start()
    try:
        started = time.monotonic()
        with pytest.raises(StageTimeout):
            await pool.run([req(f"text {HANG}")], timeout_s=1.0)
        assert time.monotonic() - started < 3.0
        # The replacement serves the next batch.
        out = await pool.run([req("after the hang")], timeout_s=30)
        assert out[0]["language"] == "en"
        assert restarts == ["batch timed out"]
    finally:
        await pool.close()


async def test_crashing_process_raises_retriable_error_and_heals() -> None:
    pool = AnalysisPool(build_light, processes=1)
    await pool.start()
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await pool.run([req(f"boom {CRASH}")], timeout_s=10)
        assert info.value.retriable
        out = await pool.run([req("still alive")], timeout_s=30)
        assert out[0]["language"] == "en"
        assert pool.restarts == 1
    finally:
        await pool.close()


async def test_batcher_isolates_the_hanging_event_of_a_batch() -> None:
    pool = AnalysisPool(build_light, processes=2)
    await pool.start()
    sizes: list[int] = []
    batcher = AnalysisBatcher(
        pool, max_batch=8, max_wait_s=0.05, timeout_s=1.5, on_batch=sizes.append
    )
    try:
        texts = [f"event {i}" for i in range(5)] + [f"bad {HANG}"]
        results = await asyncio.gather(
            *(batcher.analyze(req(t)) for t in texts), return_exceptions=True
        )
        assert isinstance(results[-1], StageTimeout)
        assert all(isinstance(r, dict) and r["language"] == "en" for r in results[:-1])
        assert sizes[0] == 6, "the events were first sent as one batch"
    finally:
        await batcher.close()
        await pool.close()
