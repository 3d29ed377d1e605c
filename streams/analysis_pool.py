"""Analyzer processes: CPU work off the event loop, with deadlines that can kill.

Each child process builds the pipeline once (models loaded, warmed) and then serves
batches over a pipe. The event loop only pickles requests and waits on futures, so it
stays free for heartbeats. A batch that runs past its deadline gets its process killed
and replaced: ``concurrent.futures.ProcessPoolExecutor`` cannot do that, and a hung
analysis would otherwise pin a process forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from analyzers.pipeline import AnalysisPipeline, AnalysisRequest
from schemas.errors import ServiceUnavailable, StageTimeout
from streams.analysis_wire import decode_output, encode_output

log = logging.getLogger(__name__)

# Up to this many characters of text (≤ ~48 KB of UTF-8, under Linux's 64 KiB pipe
# buffer) a batch is written to the child from the event loop itself.
INLINE_SEND_CHARS = 16_000

PipelineFactory = Callable[[], AnalysisPipeline]
# Result fields; sentiment, keywords and entities as orjson.Fragment (analysis_wire).
OutputFields = dict[str, Any]

_WARMUP = [
    AnalysisRequest(text="今天天气很好，我们在北京开会。"),
    AnalysisRequest(text="The service was great and the food was excellent."),
]


def _child_main(conn: Connection, factory: PipelineFactory, nice: int) -> None:
    # Children must not inherit the parent's signal handling: the parent decides when
    # they stop (it sends None or kills them).
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if nice:
        # Analysis is throughput work; the parent's event loop (heartbeats, fetches,
        # acks) must win the CPU when cores are short.
        os.nice(nice)
    try:
        pipeline = factory()
        pipeline.analyze(_WARMUP)
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", pipeline.versions))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            outputs = pipeline.analyze(
                [
                    AnalysisRequest(text=text, analyses=frozenset(analyses), language_hint=hint)
                    for text, analyses, hint in job
                ]
            )
            conn.send(("ok", [encode_output(o) for o in outputs]))
        except BaseException as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    pending: asyncio.Future[tuple[str, Any]] | None = None
    reader: threading.Thread | None = None
    alive: bool = True
    jobs: int = 0
    started: float = field(default_factory=time.monotonic)


class AnalysisPool:
    """A fixed number of analyzer processes serving batches with per-batch deadlines,
    plus ``standby`` warm spares that replace a killed process without a cold start."""

    def __init__(
        self,
        factory: PipelineFactory,
        *,
        processes: int,
        standby: int = 0,
        nice: int = 0,
        start_timeout_s: float = 300.0,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self._factory = factory
        self._size = processes
        self._standby_size = standby
        self._nice = nice
        self._standby: list[_Child] = []
        self._start_timeout = start_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_restart = on_restart
        self.versions: dict[str, str] = {}
        self.restarts = 0
        self._tasks: set[asyncio.Future[None]] = set()

    def _background(self, coro: Any) -> None:
        # Keep a reference: the loop holds tasks weakly.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def size(self) -> int:
        return self._size

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c.process.pid is not None]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        children = await asyncio.gather(
            *(self._spawn() for _ in range(self._size + self._standby_size))
        )
        for child in children[: self._size]:
            self._idle.put_nowait(child)
        self._standby.extend(children[self._size :])

    async def _spawn(self) -> _Child:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_child_main,
            args=(child_conn, self._factory, self._nice),
            daemon=True,
            name="contentstream-analyzer",
        )
        process.start()
        child_conn.close()
        child = _Child(process=process, conn=parent_conn)
        self._children.add(child)
        assert self._loop is not None
        ready: asyncio.Future[tuple[str, Any]] = self._loop.create_future()
        child.pending = ready
        child.reader = threading.Thread(
            target=self._read_loop, args=(child,), daemon=True, name="analyzer-reader"
        )
        child.reader.start()
        try:
            status, detail = await asyncio.wait_for(ready, self._start_timeout)
        except TimeoutError:
            self._kill(child)
            raise ServiceUnavailable("analyzer process did not start in time") from None
        if status != "ready":
            self._kill(child)
            raise ServiceUnavailable(f"analyzer process failed to start: {detail}")
        self.versions = dict(detail)
        return child

    def _read_loop(self, child: _Child) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self._on_child_exit, child)
                return
            loop.call_soon_threadsafe(self._deliver, child, message)

    def _deliver(self, child: _Child, message: tuple[str, Any]) -> None:
        fut, child.pending = child.pending, None
        if fut is not None and not fut.done():
            fut.set_result(message)

    def _on_child_exit(self, child: _Child) -> None:
        child.alive = False
        fut, child.pending = child.pending, None
        if fut is not None and not fut.done():
            fut.set_exception(ServiceUnavailable("analyzer process exited"))

    def _kill(self, child: _Child) -> None:
        child.alive = False
        fut, child.pending = child.pending, None
        if fut is not None and not fut.done():
            fut.cancel()  # nobody awaits it any more (deadline passed or caller gone)
        self._children.discard(child)
        with contextlib.suppress(Exception):
            child.process.kill()
        with contextlib.suppress(Exception):
            child.conn.close()

    async def _replace(self, child: _Child, reason: str) -> None:
        self._kill(child)
        if self._closed:
            return
        self.restarts += 1
        if self._on_restart is not None:
            self._on_restart(reason)
        log.warning("replacing analyzer process (%s)", reason)
        if self._standby:
            # A warm spare takes over at once: loading models takes seconds, and the
            # events of the killed batch are waiting to be re-run.
            self._idle.put_nowait(self._standby.pop())
            await self._spawn_until_ok(into_standby=True)
        else:
            await self._spawn_until_ok(into_standby=False)

    async def _spawn_until_ok(self, *, into_standby: bool) -> None:
        while not self._closed:
            try:
                fresh = await self._spawn()
            except ServiceUnavailable as exc:
                log.error("could not start analyzer process: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if into_standby:
                self._standby.append(fresh)
            else:
                self._idle.put_nowait(fresh)
            return

    async def run(self, requests: list[AnalysisRequest], timeout_s: float) -> list[OutputFields]:
        """Analyse one batch in some idle process; StageTimeout past the deadline."""
        if self._closed:
            raise ServiceUnavailable("analysis pool is closed")
        child = await self._idle.get()
        if not child.alive:
            self._background(self._replace(child, "process died while idle"))
            return await self.run(requests, timeout_s)
        assert self._loop is not None
        fut: asyncio.Future[tuple[str, Any]] = self._loop.create_future()
        child.pending = fut
        try:
            # Plain tuples pickle several times faster than dataclasses. A small batch
            # fits the pipe's buffer and the idle child is already reading, so it is
            # written at once; a large one is written off the event loop (the thread
            # hop costs ~0.1-1 ms, which matters only for small, latency-bound batches).
            payload = [(r.text, tuple(r.analyses), r.language_hint) for r in requests]
            if sum(len(p[0]) for p in payload) <= INLINE_SEND_CHARS:
                child.conn.send(payload)
            else:
                await asyncio.to_thread(child.conn.send, payload)
        except (OSError, ValueError):
            self._background(self._replace(child, "pipe broken"))
            raise ServiceUnavailable("analyzer process pipe broken") from None
        try:
            status, detail = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            self._background(self._replace(child, "batch timed out"))
            raise StageTimeout(
                f"analysis of {len(requests)} event(s) ran past {timeout_s:g}s", stage="analysis"
            ) from None
        except ServiceUnavailable:
            self._background(self._replace(child, "process died"))
            raise
        except asyncio.CancelledError:
            # The caller gave up; the process may still be busy: replace it so a
            # half-done job cannot answer the next caller.
            self._background(self._replace(child, "caller cancelled"))
            raise
        child.jobs += 1
        self._idle.put_nowait(child)
        if status == "ok":
            return [decode_output(wire) for wire in detail]
        raise ServiceUnavailable(f"analyzer process error: {detail}")

    async def close(self) -> None:
        self._closed = True
        for child in list(self._children):
            with contextlib.suppress(Exception):
                child.conn.send(None)
        deadline = time.monotonic() + 5.0
        for child in list(self._children):
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.get_running_loop().run_in_executor(None, child.process.join, remaining)
            self._kill(child)
