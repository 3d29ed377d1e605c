"""The analyzer process pool: batches, deadlines that kill, crashes that heal."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from scripted_pipelines import CRASH, HANG, SLOW, build_light
from warm_pipelines import build_warmable

from analyzers.pipeline import AnalysisRequest
from schemas.errors import ServiceUnavailable, StageTimeout
from schemas.events import AnalysisName
from streams.analysis.batcher import AnalysisBatcher
from streams.analysis.pool import AnalysisPool, OutputFields
from streams.analysis.wire import plain_fields

pytestmark = pytest.mark.timeout(120)

KW = frozenset({AnalysisName.LANGUAGE, AnalysisName.KEYWORDS})


def req(text: str) -> AnalysisRequest:
    return AnalysisRequest(text=text, analyses=KW)


@contextlib.asynccontextmanager
async def running_pool(*args: Any, **kwargs: Any) -> AsyncIterator[AnalysisPool]:
    pool = AnalysisPool(*args, **kwargs)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


async def test_batch_is_analysed_in_order() -> None:
    async with running_pool(functools.partial(build_light), processes=1) as pool:
        batch = await pool.run([req("你好世界"), req("hello world")], timeout_s=10)
        out = [plain_fields(o) for o in batch]
        assert [o["language"] for o in out] == ["zh", "en"]
        assert out[0]["keywords"] == [{"text": "你好世界", "weight": 1.0}]
        assert pool.versions["keywords"] == "scripted-1"


async def test_hanging_batch_times_out_and_process_is_replaced() -> None:
    restarts: list[str] = []
    async with running_pool(build_light, processes=1, on_restart=restarts.append) as pool:
        started = time.monotonic()
        with pytest.raises(StageTimeout):
            await pool.run([req(f"text {HANG}")], timeout_s=1.0)
        assert time.monotonic() - started < 3.0
        # The replacement serves the next batch.
        out = await pool.run([req("after the hang")], timeout_s=30)
        assert out[0]["language"] == "en"
        assert restarts == ["batch timed out"]


async def test_crashing_process_raises_retriable_error_and_heals() -> None:
    async with running_pool(build_light, processes=1) as pool:
        with pytest.raises(ServiceUnavailable) as info:
            await pool.run([req(f"boom {CRASH}")], timeout_s=10)
        assert info.value.retriable
        out = await pool.run([req("still alive")], timeout_s=30)
        assert out[0]["language"] == "en"
        assert pool.restarts == 1


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


async def test_a_process_takes_its_next_batch_while_busy_and_answers_in_order() -> None:
    # One process, two batches at once: the second waits in the process's socket.
    async with running_pool(build_light, processes=1, queue_depth=2) as pool:
        assert pool.capacity == 2
        first = asyncio.ensure_future(pool.run([req(f"first {SLOW}")], timeout_s=10))
        second = asyncio.ensure_future(pool.run([req("second one")], timeout_s=10))
        # A third has no room until one of them is answered.
        third = asyncio.ensure_future(pool.run([req("third one")], timeout_s=10))
        await asyncio.sleep(0.2)
        assert not first.done() and not second.done() and not third.done()
        out = await asyncio.gather(first, second, third)
        assert [plain_fields(o[0])["keywords"][0]["text"] for o in out] == ["firs", "seco", "thir"]


async def test_a_queued_batch_deadline_starts_when_its_turn_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRIPTED_SLOW_S", "1.0")  # read by the spawned process
    async with running_pool(build_light, processes=1, queue_depth=2) as pool:
        slow = asyncio.ensure_future(pool.run([req(f"slow {SLOW}")], timeout_s=5))
        await asyncio.sleep(0.05)  # written first
        started = time.monotonic()
        # 0.8 s would have passed while it waited behind the slow one; it is not late.
        quick = await pool.run([req("quick one")], timeout_s=0.8)
        assert quick[0]["language"] == "en"
        assert time.monotonic() - started > 0.8, "it did wait behind the slow batch"
        assert (await slow)[0]["language"] == "en"
        assert pool.restarts == 0


@pytest.mark.parametrize(
    ("marker", "error", "reason"),
    [(HANG, StageTimeout, "batch timed out"), (CRASH, ServiceUnavailable, "process died")],
)
async def test_a_batch_queued_behind_a_failing_one_is_rerun_on_the_replacement(
    marker: str, error: type[Exception], reason: str
) -> None:
    restarts: list[str] = []
    async with running_pool(
        build_light, processes=1, queue_depth=2, on_restart=restarts.append
    ) as pool:
        failing = asyncio.ensure_future(pool.run([req(f"text {marker}")], timeout_s=1.0))
        behind = asyncio.ensure_future(pool.run([req("innocent bystander")], timeout_s=30))
        with pytest.raises(error):
            await failing
        out = await behind
        assert out[0]["language"] == "en"
        assert restarts == [reason]


async def test_queue_depth_one_sends_a_batch_only_to_a_free_process() -> None:
    async with running_pool(build_light, processes=1, queue_depth=1) as pool:
        assert pool.capacity == 1
        slow = asyncio.ensure_future(pool.run([req(f"slow {SLOW}")], timeout_s=10))
        # Were it written at once, its 0.3 s deadline would run out behind the slow one.
        waiting = asyncio.ensure_future(pool.run([req("waits its turn")], timeout_s=0.3))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await slow
        assert (await waiting)[0]["language"] == "en"


async def test_closing_fails_waiting_batches_with_a_retriable_error() -> None:
    pool = AnalysisPool(build_light, processes=1, queue_depth=1)
    await pool.start()
    busy = asyncio.ensure_future(pool.run([req(f"slow {SLOW}")], timeout_s=10))
    waiting = asyncio.ensure_future(pool.run([req("never sent")], timeout_s=10))
    await asyncio.sleep(0.1)
    await pool.close()
    with pytest.raises(ServiceUnavailable) as info:
        await waiting
    assert info.value.retriable
    await asyncio.gather(busy, return_exceptions=True)


async def test_after_a_timeout_the_suspects_are_not_queued_behind_the_hang() -> None:
    # Two processes, two batches each. The first batch times out; its events are then
    # retried one by one, each alone in a process. Had they queued behind the retried
    # hang, they would have waited out a second deadline (2 x timeout in all).
    timeout_s = 1.5
    pool = AnalysisPool(build_light, processes=2, standby=2, queue_depth=2)
    await pool.start()
    batcher = AnalysisBatcher(pool, max_batch=8, max_wait_s=0.05, timeout_s=timeout_s)
    try:
        started = time.monotonic()
        finished: list[float] = []

        async def timed(text: str) -> OutputFields:
            try:
                return await batcher.analyze(req(text))
            finally:
                finished.append(time.monotonic() - started)

        texts = [f"bad {HANG}"] + [f"event {i}" for i in range(7)]
        tasks = [asyncio.ensure_future(timed(t)) for t in texts]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], StageTimeout)
        assert all(isinstance(r, dict) and r["language"] == "en" for r in results[1:])
        # The hang itself fails last, after its second deadline; the others before.
        innocent_done = sorted(finished)[-2]
        assert innocent_done < 2 * timeout_s, f"{innocent_done:.2f}s: queued behind the hang"
    finally:
        await batcher.close()
        await pool.close()


async def test_a_batch_that_must_be_alone_is_not_starved_by_steady_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRIPTED_SLOW_S", "0.2")  # read by the spawned process
    async with running_pool(build_light, processes=1, queue_depth=2) as pool:
        loop_until = time.monotonic() + 3.0

        async def steady_load() -> None:
            # Always a batch at work and one waiting: the process is never idle.
            while time.monotonic() < loop_until:
                await pool.run([req(f"load {SLOW}")], timeout_s=10)

        load = [asyncio.ensure_future(steady_load()) for _ in range(2)]
        await asyncio.sleep(0.3)
        out = await pool.run([req("suspect")], timeout_s=10, alone=True)
        assert out[0]["language"] == "en"
        assert time.monotonic() < loop_until, "it waited for the load to stop"
        await asyncio.gather(*load)


async def test_batcher_queues_only_full_batches_behind_a_busy_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCRIPTED_SLOW_S", "1.0")  # read by the spawned process
    async with running_pool(build_light, processes=1, queue_depth=2) as pool:
        sizes: list[int] = []
        batcher = AnalysisBatcher(
            pool, max_batch=4, max_wait_s=0.01, timeout_s=10, on_batch=sizes.append
        )
        try:
            busy = [
                asyncio.ensure_future(batcher.analyze(req(f"slow {i} {SLOW}"))) for i in range(4)
            ]
            await asyncio.sleep(0.2)
            assert sizes == [4]
            # The process is busy: a partial batch waits and grows...
            partial = [asyncio.ensure_future(batcher.analyze(req(f"next {i}"))) for i in range(3)]
            await asyncio.sleep(0.2)
            assert sizes == [4]
            # ...and goes as soon as it is full, to wait beside the busy process.
            last = asyncio.ensure_future(batcher.analyze(req("fourth")))
            await asyncio.sleep(0.2)
            assert sizes == [4, 4]
            assert not any(t.done() for t in busy)
            results = await asyncio.gather(*busy, *partial, last)
            assert all(r["language"] == "en" for r in results)
        finally:
            await batcher.close()


async def test_stages_are_warmed_up_once_before_the_first_batch() -> None:
    async with running_pool(build_warmable, processes=1) as pool:
        out = await pool.run([req("hello"), req("你好")], timeout_s=30)
        assert [plain_fields(o)["keywords"] for o in out] == [
            [{"text": "warm-ups:1", "weight": 1.0}]
        ] * 2
