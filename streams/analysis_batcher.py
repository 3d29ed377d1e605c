"""Micro-batching of analysis requests across events.

Events arrive one by one from Kafka, but analyzers (and above all a transformers model)
are much faster per document in batches. Requests wait at most ``max_wait_s`` for a
batch to fill; while every pool process is busy, batches grow by themselves, which is
the cheapest form of adaptivity under load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from analyzers.pipeline import AnalysisRequest
from schemas.errors import StageTimeout
from streams.analysis_pool import AnalysisPool, OutputFields


@dataclass(slots=True)
class _Pending:
    request: AnalysisRequest
    future: asyncio.Future[OutputFields]


class AnalysisBatcher:
    def __init__(
        self,
        pool: AnalysisPool,
        *,
        max_batch: int,
        max_wait_s: float,
        timeout_s: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_wait = max_wait_s
        self._timeout = timeout_s
        self._on_batch = on_batch
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def analyze(self, request: AnalysisRequest) -> OutputFields:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[OutputFields] = loop.create_future()
        self._pending.append(_Pending(request, fut))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._flush)
        return await fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            task = asyncio.ensure_future(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        if self._on_batch is not None:
            self._on_batch(len(live))
        try:
            outputs = await self._pool.run([p.request for p in live], self._timeout)
        except StageTimeout as exc:
            if len(live) == 1:
                _fail(live[0], exc)
                return
            # One request in the batch hangs; which one is unknown, so each gets a fresh
            # process and its own deadline, in parallel across the pool.
            await asyncio.gather(*(self._run([p]) for p in live))
            return
        except Exception as exc:
            for p in live:
                _fail(p, exc)
            return
        for p, out in zip(live, outputs, strict=True):
            if not p.future.done():
                p.future.set_result(out)

    async def close(self) -> None:
        self._flush()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


def _fail(p: _Pending, exc: BaseException) -> None:
    if not p.future.done():
        p.future.set_exception(exc)
