"""Analyzer processes: CPU work off the event loop, with deadlines that can kill.

Each child process builds the pipeline once (models loaded, warmed) and then serves
batches over a socket pair (optionally with the next one waiting). The event
loop only pickles requests and waits on futures, so it stays free for heartbeats. A
batch that runs past its deadline gets its process killed and replaced:
``concurrent.futures.ProcessPoolExecutor`` cannot do that, and a hung analysis would
otherwise pin a process forever.

:meth:`AnalysisPool.reload` swaps the processes one by one onto a new pipeline (the
worker's SIGHUP): a new process serves only once it has loaded and warmed up, and an old
one is stopped only once it has answered every batch it was given, so no event is lost
or analysed by a half-loaded model; each result names the versions of the process that
produced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from analyzers.pipeline import AnalysisPipeline, AnalysisRequest
from schemas.errors import ServiceUnavailable, StageTimeout
from streams.analysis.wire import decode_output, encode_output

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
        for stage in getattr(pipeline, "stages", {}).values():
            # Transformers stages run dummy batches of every length bucket: their first
            # pass of each shape is several times a steady one (allocation, kernel
            # choice), a cost no event should pay.
            warm_up = getattr(stage, "warm_up", None)
            if callable(warm_up):
                warm_up()
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


class _Requeue(Exception):
    """A batch waiting behind another was lost with its process: run it elsewhere."""


@dataclass(eq=False)
class _Job:
    alone: bool  # nothing may be queued behind it
    # Set when the batch is at the head of its process's queue: its deadline runs.
    started: asyncio.Future[None]
    result: asyncio.Future[tuple[str, Any]]


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection
    # Batches written to the process, oldest first. The process answers them in that
    # order; the ones behind the head already wait in its socket, so it starts the
    # next the moment it has sent a result, without waiting for the event loop.
    inflight: deque[_Job] = field(default_factory=deque)
    load: int = 0  # batches given to it (being written or in flight)
    alone: int = 0  # of them, batches that must not have company (see run)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Future[tuple[str, Any]] | None = None  # its start-up message
    reader: threading.Thread | None = None
    alive: bool = True
    versions: dict[str, str] = field(default_factory=dict)  # of the pipeline it runs
    factory: PipelineFactory | None = None  # that built its pipeline
    retiring: bool = False  # replaced by a reload: stops once its batches are answered


class AnalysisPool:
    """A fixed number of analyzer processes serving batches with per-batch deadlines,
    plus ``standby`` warm spares that replace a killed process without a cold start.

    Each process takes up to ``queue_depth`` batches at once: one it works on, the
    rest already written to its socket, so it starts the next as soon as it has sent
    a result. With a depth of 1 a process idles while the event loop turns its result
    into the next dispatch: 7 % of its time at saturation, measured; that time is only
    lost where the process has a core to itself. A batch's deadline starts when it
    reaches the head of its process's queue."""

    def __init__(
        self,
        factory: PipelineFactory,
        *,
        processes: int,
        standby: int = 0,
        nice: int = 0,
        queue_depth: int = 1,
        start_timeout_s: float = 300.0,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        if queue_depth < 1:
            raise ValueError("queue_depth must be >= 1")
        self._factory = factory
        self._size = processes
        self._depth = queue_depth
        self._standby_size = standby
        self._nice = nice
        self._standby: list[_Child] = []
        self._start_timeout = start_timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._serving: list[_Child] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._children: set[_Child] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_restart = on_restart
        # The versions dedup keys are computed with. During a reload they stay the old
        # ones until every process runs the new model (see reload).
        self.versions: dict[str, str] = {}
        self.restarts = 0
        self.reloads = 0
        self._reload_lock: asyncio.Lock | None = None
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
    def capacity(self) -> int:
        """Batches the pool takes at once: worked on or waiting beside a process."""
        return self._size * self._depth

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c.process.pid is not None]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reload_lock = asyncio.Lock()
        children = await asyncio.gather(
            *(self._spawn() for _ in range(self._size + self._standby_size))
        )
        self.versions = dict(children[0].versions)
        for child in children[: self._size]:
            self._serve(child)
        self._standby.extend(children[self._size :])

    async def _spawn(self, factory: PipelineFactory | None = None) -> _Child:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        factory = factory or self._factory
        process = self._ctx.Process(
            target=_child_main,
            args=(child_conn, factory, self._nice),
            daemon=True,
            name="contentstream-analyzer",
        )
        process.start()
        child_conn.close()
        child = _Child(process=process, conn=parent_conn, factory=factory)
        self._children.add(child)
        assert self._loop is not None
        ready: asyncio.Future[tuple[str, Any]] = self._loop.create_future()
        child.ready = ready
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
        child.versions = dict(detail)
        return child

    # ------------------------------------------------------------ the reader thread

    def _read_loop(self, child: _Child) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                message = child.conn.recv()
            except Exception:  # EOF, or the connection closed under it by _kill
                with contextlib.suppress(RuntimeError):  # the event loop is gone already
                    loop.call_soon_threadsafe(self._on_child_exit, child)
                return
            loop.call_soon_threadsafe(self._deliver, child, message)

    # ------------------------------------------------------------ event loop side

    def _deliver(self, child: _Child, message: tuple[str, Any]) -> None:
        if not child.inflight:
            fut, child.ready = child.ready, None
            if fut is not None and not fut.done():
                fut.set_result(message)
            return
        done = child.inflight.popleft()
        if not done.result.done():
            done.result.set_result(message)
        if child.inflight:
            _start(child.inflight[0])
        self._release(child, done)

    def _on_child_exit(self, child: _Child) -> None:
        child.alive = False
        fut, child.ready = child.ready, None
        if fut is not None and not fut.done():
            fut.set_exception(ServiceUnavailable("analyzer process exited"))
        jobs, child.inflight = list(child.inflight), deque()
        if jobs:
            # The batch it was working on fails (retriable); those behind go elsewhere.
            if not jobs[0].result.done():
                jobs[0].result.set_exception(ServiceUnavailable("analyzer process exited"))
            _requeue(jobs[1:])
        if child in self._serving:
            reason = "process died" if jobs else "process died while idle"
            self._background(self._replace(child, reason))

    def _serve(self, child: _Child) -> None:
        if not child.alive:  # a spare that died while waiting
            self._background(self._replace(child, "process died while idle"))
            return
        self._serving.append(child)
        for _ in range(self._depth):
            self._wake()

    def _release(self, child: _Child, job: _Job) -> None:
        child.load -= 1
        child.alone -= job.alone
        if child.retiring and child.load == 0:
            self._stop(child)
        if child.alive and child in self._serving:
            # Room for one more, or (after a batch nothing could follow) for several.
            for _ in range(self._depth if job.alone else 1):
                self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _acquire(self, *, alone: bool) -> _Child:
        """The serving process with the fewest batches, once one has room. A process
        that holds a batch which must be alone takes nothing more until it is done."""
        assert self._loop is not None
        while True:
            if self._closed:
                raise ServiceUnavailable("analysis pool is closed")
            best: _Child | None = None
            for child in self._serving:
                if (
                    child.alive
                    and child.load < self._depth
                    and not child.alone
                    and (best is None or child.load < best.load)
                ):
                    best = child
            if best is not None:
                best.load += 1
                best.alone += alone
                return best
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the room this waiter was given
                raise

    def _kill(self, child: _Child, culprit: _Job | None = None) -> None:
        """Stop ``child``; its batches other than ``culprit`` are re-run elsewhere."""
        child.alive = False
        if child in self._serving:
            self._serving.remove(child)
        fut, child.ready = child.ready, None
        if fut is not None and not fut.done():
            fut.cancel()
        jobs, child.inflight = list(child.inflight), deque()
        if culprit is not None and not culprit.result.done():
            culprit.result.cancel()  # nobody awaits it any more (deadline passed or caller gone)
        _requeue([job for job in jobs if job is not culprit])
        self._children.discard(child)
        with contextlib.suppress(Exception):
            child.process.kill()
        with contextlib.suppress(Exception):
            child.conn.close()

    async def _replace(self, child: _Child, reason: str, culprit: _Job | None = None) -> None:
        if child not in self._children:
            return  # replaced already
        self._kill(child, culprit)
        if self._closed or child.retiring:
            return  # a reload has started its successor already
        self.restarts += 1
        if self._on_restart is not None:
            self._on_restart(reason)
        log.warning("replacing analyzer process (%s)", reason)
        if self._standby:
            # A warm spare takes over at once: loading models takes seconds, and the
            # events of the killed batch are waiting to be re-run.
            self._serve(self._standby.pop())
            await self._spawn_until_ok(into_standby=True)
        else:
            await self._spawn_until_ok(into_standby=False)

    async def _spawn_until_ok(self, *, into_standby: bool) -> None:
        fresh = await self._spawn_fresh()
        if fresh is None:
            return
        if into_standby:
            self._standby.append(fresh)
        else:
            self._serve(fresh)

    # ------------------------------------------------------------ reload

    async def reload(self, factory: PipelineFactory) -> bool:
        """Swap every process onto ``factory``'s pipeline, one by one, while serving.

        A new process is started (loaded and warmed up) before the old one it replaces
        stops taking batches, so capacity never drops and one extra model is in memory
        at a time; the old one is stopped once it has answered what it was given. If the
        first new process cannot start (a missing or broken model), nothing changes:
        one line is logged and False returned. Reloads asked for while one runs follow
        it, in order.

        ``versions`` (what dedup keys are made of) changes only when no old process
        is left, serving or finishing, so an analysis stored under a key of the new
        versions always comes from the new model; during the swap, events keyed with the
        old versions may be analysed by either, and their results say which.
        """
        if self._reload_lock is None:
            raise ServiceUnavailable("analysis pool is not started")
        async with self._reload_lock:
            if self._closed:
                return False
            try:
                fresh = await self._spawn(factory)
            except ServiceUnavailable as exc:
                log.error(
                    "model reload failed, still serving %s: %s",
                    _describe(self.versions),
                    exc,
                )
                return False
            self._factory = factory  # processes replaced from now on run the new model
            new_versions = dict(fresh.versions)
            old_standby, self._standby = self._standby, []
            for idle in old_standby:
                self._stop(idle)
            spare: _Child | None = fresh
            retired: list[_Child] = []
            for child in list(self._serving):
                if child.factory is factory:
                    continue  # a replacement of a process that died: new already
                if spare is None:
                    spare = await self._spawn_fresh()
                    if spare is None:  # closing
                        return False
                if child not in self._serving:
                    continue  # died meanwhile: its replacement runs the new model
                self._serving.remove(child)
                child.retiring = True
                retired.append(child)
                if child.load == 0:
                    self._stop(child)
                self._serve(spare)
                spare = None
            if spare is not None:
                self._standby.append(spare)
            while len(self._standby) < self._standby_size:
                spare = await self._spawn_fresh()
                if spare is None:
                    return False
                self._standby.append(spare)
            # The last answers of the old model are in before the versions change (a
            # process that hangs meets its batch's deadline and is killed).
            while any(child.alive for child in retired) and not self._closed:
                await asyncio.sleep(0.05)
            before, self.versions = self.versions, new_versions
            self.reloads += 1
            log.info("model reloaded: %s (was %s)", _describe(self.versions), _describe(before))
            return True

    async def _spawn_fresh(self) -> _Child | None:
        """A process of the current factory, retried until it starts (None: closing).
        The first process of a reload has shown that the model loads; a later failure
        is transient (memory, a slow disk) and the old processes serve meanwhile."""
        while not self._closed:
            try:
                return await self._spawn()
            except ServiceUnavailable as exc:
                log.error("could not start analyzer process: %s", exc)
                await asyncio.sleep(1.0)
        return None

    def _stop(self, child: _Child) -> None:
        """Ask an idle process to exit (it reads None after its last batch)."""
        child.alive = False
        self._children.discard(child)
        with contextlib.suppress(Exception):
            child.conn.send(None)
        process = child.process

        def reap() -> None:
            process.join(10.0)
            if process.is_alive():
                process.kill()
            with contextlib.suppress(Exception):
                child.conn.close()

        threading.Thread(target=reap, daemon=True, name="analyzer-reaper").start()

    async def run(
        self, requests: list[AnalysisRequest], timeout_s: float, *, alone: bool = False
    ) -> list[OutputFields]:
        """Analyse one batch in some process; StageTimeout past the deadline.

        ``alone``: nothing is queued behind it until it is done (it may itself wait
        behind one batch already there). For a batch that may hang (a retry after a
        timeout): whatever waited behind it would wait out its deadline too. It is not
        kept for an idle process: under steady load there may never be one."""
        child = await self._acquire(alone=alone)
        assert self._loop is not None
        # Plain tuples pickle several times faster than dataclasses.
        payload = [(r.text, tuple(r.analyses), r.language_hint) for r in requests]
        job = _Job(alone, self._loop.create_future(), self._loop.create_future())
        try:
            # One writer at a time: two payloads must not interleave on the socket,
            # and the order written is the order answered.
            async with child.send_lock:
                if not child.alive:
                    raise _Requeue
                child.inflight.append(job)
                if len(child.inflight) == 1:
                    _start(job)
                # A small batch fits the socket's buffer, so it is written at once; a
                # large one is written off the event loop (the thread hop costs
                # ~0.1-1 ms, which matters only for small, latency-bound batches).
                if sum(len(p[0]) for p in payload) <= INLINE_SEND_CHARS:
                    child.conn.send(payload)
                else:
                    await asyncio.to_thread(child.conn.send, payload)
        except _Requeue:
            self._release(child, job)
            return await self.run(requests, timeout_s, alone=alone)
        except asyncio.CancelledError:
            if job not in child.inflight:  # never written: give its place back
                self._release(child, job)
            raise  # written (or being written): answered, and its answer dropped
        except (OSError, ValueError):
            self._background(self._replace(child, "pipe broken", job))
            raise ServiceUnavailable("analyzer process pipe broken") from None
        try:
            await job.started  # no deadline while it waits: the batch ahead has one
            status, detail = await asyncio.wait_for(asyncio.shield(job.result), timeout_s)
        except _Requeue:
            return await self.run(requests, timeout_s, alone=alone)
        except TimeoutError:
            self._background(self._replace(child, "batch timed out", job))
            raise StageTimeout(
                f"analysis of {len(requests)} event(s) ran past {timeout_s:g}s", stage="analysis"
            ) from None
        except ServiceUnavailable:
            raise  # the process died; _on_child_exit replaces it
        except asyncio.CancelledError:
            # The caller gave up; the process may be stuck on it, and nothing else
            # would ever enforce the deadline: replace it (a batch behind it is re-run).
            self._background(self._replace(child, "caller cancelled", job))
            raise
        if status == "ok":
            return [decode_output(wire) for wire in detail]
        raise ServiceUnavailable(f"analyzer process error: {detail}")

    async def close(self) -> None:
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        for child in list(self._children):
            with contextlib.suppress(Exception):
                child.conn.send(None)
        deadline = time.monotonic() + 5.0
        for child in list(self._children):
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.get_running_loop().run_in_executor(None, child.process.join, remaining)
            self._kill(child)


def _describe(versions: dict[str, str]) -> str:
    return ", ".join(f"{name}={version}" for name, version in sorted(versions.items())) or "-"


def _start(job: _Job) -> None:
    if not job.started.done():
        job.started.set_result(None)


def _requeue(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.started.done():
            job.started.set_exception(_Requeue())
        elif not job.result.done():
            job.result.set_exception(_Requeue())
