"""Assembles a running worker: engine, analyzer pool, processor, HTTP, shutdown.

Two engines share everything but the consuming loop (``CONTENTSTREAM_ENGINE``):
``batch`` (default, streams/engines/batch.py) polls with aiokafka and processes each
polled batch as a unit; ``faust`` runs a Faust agent that hands events one by one to
streams/engines/faust_runtime.py. ``exactly_once`` always runs on Faust.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import faust

from streams.analysis.batcher import analysis_from_settings
from streams.analysis.pipeline_factory import resolve_pipeline_factory
from streams.engines.batch import BatchEngine
from streams.engines.faust_agent import FaustSink, create_app, declare_topics, to_record
from streams.engines.faust_runtime import WorkerRuntime
from streams.engines.faust_transactions import TransactionalFaustSink, guard_commits
from streams.kafka.headers import forwarding_from_settings
from streams.kafka.records import RecordSink
from streams.operations.health import LoopLagProbe, WorkerHealth
from streams.operations.metrics import WorkerMetrics
from streams.operations.tracing import tracing_from_env
from streams.processing.dead_letters import DeadLetterPublisher
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import (
    BatchingDedupStore,
    BulkDedupStore,
    DedupStore,
    LruDedupStore,
    RedisDedupStore,
)
from streams.processing.event_processor import EventProcessor
from streams.processing.processor import BatchProcessor, ProcessorConfig
from streams.security import redis_client_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)


def make_bulk_dedup(settings: Settings, metrics: WorkerMetrics) -> BulkDedupStore | None:
    """The dedup store, taking whole batches of keys (the batch engine's)."""
    if settings.dedup_policy == "off":
        return None
    if settings.redis_url:
        return RedisDedupStore(
            settings.redis_url,
            ttl_s=settings.dedup_ttl_s,
            client_kwargs=redis_client_kwargs(settings),
            on_unavailable=metrics.dedup_unavailable.inc,
            compress_values=settings.dedup_compress,
        )
    return LruDedupStore(max_entries=settings.dedup_lru_size, ttl_s=settings.dedup_ttl_s)


def make_dedup(settings: Settings, metrics: WorkerMetrics) -> DedupStore | None:
    """The dedup store for one event at a time (the Faust engine's): concurrent
    lookups are coalesced into one round trip."""
    store = make_bulk_dedup(settings, metrics)
    if isinstance(store, RedisDedupStore):
        return BatchingDedupStore(store)
    if isinstance(store, LruDedupStore):
        return store
    return None


class ContentWorker:
    """Everything one worker process runs, built from Settings."""

    def __init__(self, settings: Settings, *, pipeline_factory: Any = None) -> None:
        self.settings = settings
        self.engine_name = settings.effective_engine
        self.metrics = WorkerMetrics()
        self.metrics.in_flight_limit.set(settings.in_flight_limit)
        factory = pipeline_factory or resolve_pipeline_factory(settings)
        self._given_factory = pipeline_factory
        self.pool, self.batcher = analysis_from_settings(
            settings,
            factory,
            on_restart=lambda _reason: self.metrics.pool_restarts.inc(),
            on_batch=self._observe_batch,
        )
        self.processor_config = ProcessorConfig(
            output_topic=settings.output_topic,
            default_analyses=settings.analyses,
            dedup_policy=settings.dedup_policy,
            dedup_scope=settings.dedup_scope,
            max_attempts=settings.max_attempts,
        )
        self.decoder = EventDecoder.from_settings(settings)
        self.forwarding = forwarding_from_settings(settings)
        # Decided once: without the otel extra (or with OTEL_SDK_DISABLED=true) the
        # processors get a tracing that makes no spans at all.
        self.tracing = tracing_from_env()
        self._ready = asyncio.Event()
        self._http: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.web_port = settings.web_port
        self.loop_probe = LoopLagProbe(self.metrics)
        self.stuck_partitions: Callable[[], list[str]] = list
        self.health = WorkerHealth(
            probe=self.loop_probe,
            analyzers_ready=lambda: self._ready.is_set(),
            assigned_partitions=lambda: len(self._assigned),
            stuck_partitions=lambda: self.stuck_partitions(),
        )
        self.dedup: DedupStore | BulkDedupStore | None
        if self.engine_name == "faust":
            self._build_faust()
        else:
            self._build_batch()

    # ------------------------------------------------------------------ batch engine

    def _build_batch(self) -> None:
        self.dedup = make_bulk_dedup(self.settings, self.metrics)
        self.batch_processor = BatchProcessor(
            config=self.processor_config,
            decoder=self.decoder,
            analysis=self.batcher,
            publisher=_NotStarted(),
            dead_letter_topic=self.settings.dead_letter_topic,
            max_peek_bytes=self.settings.max_payload_bytes,
            dedup=self.dedup,
            metrics=self.metrics,
            analyzer_versions=lambda: self.pool.versions,
            refused_record_grace_s=self.settings.refused_record_grace_s,
            forwarding=self.forwarding,
            tracing=self.tracing,
        )
        self.engine = BatchEngine(
            self.settings,
            self.batch_processor,
            on_assigned=self._partitions_assigned,
            on_revoked=self._partitions_revoked,
            on_in_flight=self.metrics.in_flight.set,
        )

    async def serve(self) -> int:
        """Run the batch engine until SIGTERM/SIGINT, then drain; the exit status.

        A second signal exits at once (status 1)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        received: list[signal.Signals] = []

        def on_signal(sig: signal.Signals) -> None:
            if received:
                log.warning("second %s: exiting now", sig.name)
                sys.stderr.flush()
                os._exit(1)
            received.append(sig)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start_runtime()
            await self.engine.start()
            run = asyncio.ensure_future(self.engine.run())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if run.done() and run.exception() is not None:
                log.error("consumer loop failed", exc_info=run.exception())
                return 1
            name = received[0].name if received else "stop"
            log.info(
                "%s received: finishing %d in-flight event(s) (deadline %.0fs)",
                name,
                self.engine.in_flight,
                self.settings.shutdown_timeout_s,
            )
            await self.engine.drain(self.settings.shutdown_timeout_s)
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
            return 0
        finally:
            await self.engine.stop()
            await self.shutdown()

    # ------------------------------------------------------------------ Faust engine

    def _build_faust(self) -> None:
        settings = self.settings
        self.app = create_app(settings)
        self.raw_topic, self.output_topic, self.dlq_topic = declare_topics(self.app, settings)
        if settings.processing_guarantee == "at_least_once":
            # Faust enables the idempotent producer only inside transactions; without it a
            # retried send after a lost acknowledgement can write a result twice.
            self.app.producer._settings_extra = lambda: {  # type: ignore[attr-defined]
                "acks": "all",
                "enable_idempotence": True,
            }
        self._commit_lock = asyncio.Lock()
        sink: RecordSink = FaustSink(self.app)
        self.dedup = make_dedup(settings, self.metrics)
        self.processor = EventProcessor(
            config=self.processor_config,
            decoder=self.decoder,
            analyze=self.batcher.analyze,
            sink=sink,
            dead_letters=DeadLetterPublisher(
                sink, topic=settings.dead_letter_topic, max_peek_bytes=settings.max_payload_bytes
            ),
            dedup=self.dedup,
            metrics=self.metrics,
            analyzer_versions=lambda: self.pool.versions,
            forwarding=self.forwarding,
            tracing=self.tracing,
        )
        self.runtime = WorkerRuntime(
            self.processor,
            in_flight_limit=settings.in_flight_limit,
            on_in_flight=self.metrics.in_flight.set,
        )
        if settings.processing_guarantee == "exactly_once":
            self.runtime.exactly_once = True
            eos_sink = TransactionalFaustSink(self.app, self.runtime.turns, self._commit_lock)
            self.processor.use_sink(eos_sink)
        self._register()

    def _register(self) -> None:
        app = self.app
        runtime = self.runtime

        @app.agent(self.raw_topic, name="contentstream.analyze")
        async def analyze(stream: faust.StreamT[Any]) -> None:
            noack: Any = stream.noack()  # type: ignore[attr-defined]
            async for event in noack.events():
                if not self._ready.is_set():
                    await self._ready.wait()
                await runtime.submit(to_record(event), event, noack.ack)

        async def start_runtime() -> None:
            await self.start_runtime()

        app.task(start_runtime)

        async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
            gone = {(tp.topic, tp.partition) for tp in revoked}
            runtime.forget_partitions(gone)
            self._partitions_revoked(gone)

        async def on_assigned(app: faust.App, assigned: set[Any], **_: Any) -> None:
            self._partitions_assigned({(tp.topic, tp.partition) for tp in assigned})

        app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ shared

    def _partitions_assigned(self, tps: set[tuple[str, int]]) -> None:
        self.metrics.rebalances.inc()
        self._assigned = {tp for tp in tps if tp[0] == self.settings.input_topic}
        self.metrics.assigned_partitions.set(len(self._assigned))

    def _partitions_revoked(self, tps: set[tuple[str, int]]) -> None:
        self._assigned -= tps
        self.metrics.assigned_partitions.set(len(self._assigned))

    @property
    def in_flight(self) -> int:
        return self.engine.in_flight if self.engine_name == "batch" else self.runtime.in_flight

    def _observe_batch(self, size: int) -> None:
        self.metrics.analysis_batch_size.observe(size)
        uses_model = "transformers" in (
            self.settings.sentiment_backend,
            self.settings.entities_backend,
        )
        if uses_model:
            # The transformers stage splits each analysis batch into forward calls of
            # at most model_batch_size texts.
            step = self.settings.model_batch_size
            for start in range(0, size, step):
                self.metrics.model_batch_size.observe(min(step, size - start))

    @property
    def assigned(self) -> set[tuple[str, int]]:
        return set(self._assigned)

    async def start_runtime(self) -> None:
        if self.engine_name == "faust" and self.settings.processing_guarantee == "exactly_once":
            guard_commits(self.app.consumer, self._commit_lock)
        self.loop_probe.start()
        # --- operations (streams/operations/: lag_monitor.py, logging_setup.py) ---
        from streams.operations.lag_monitor import LagMonitor
        from streams.operations.logging_setup import configure_logging

        configure_logging(self.settings)  # Faust's Worker replaced the handlers
        self.lag_monitor = LagMonitor.for_worker(self)
        if self.engine_name == "faust":
            self.app.add_future(self.lag_monitor.run())  # cancelled and joined by Faust
        else:
            self._background.add(asyncio.ensure_future(self.lag_monitor.run()))
        self.stuck_partitions = self.lag_monitor.stuck
        self.health.broker_connected = self.lag_monitor.broker_connected
        # --- end operations ------------------------------------------------------------
        log.info(
            "engine %s, %s; starting %d analyzer process(es)",
            self.engine_name,
            self.settings.processing_guarantee,
            self.pool.size,
        )
        await self.pool.start()
        log.info("analyzers ready: %s", self.pool.versions)
        self.metrics.up.set(1)
        self._ready.set()
        # SIGHUP: swap the analyzer processes onto the model now at the configured paths.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
        from streams.operations.http_server import start_http_server

        self._http = await start_http_server(self)

    def request_reload(self) -> None:
        log.info("SIGHUP received: reloading the analyzer models")
        task = asyncio.ensure_future(self._reload_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_quietly(self) -> None:
        await self.reload_models()  # logs its own outcome

    async def reload_models(self) -> bool:
        """Re-read the model path settings and swap the pool's processes onto them, one
        by one (streams/analysis/pool.py); False, with one line logged, if the new
        model does not load (the old one keeps serving)."""
        try:
            factory = self._given_factory or resolve_pipeline_factory(self._reread_settings())
        except Exception as exc:  # invalid settings: a ValidationError or ConfigurationError
            log.error(
                "model reload failed, still serving %s: %s",
                self.pool.versions,
                str(exc).replace("\n", " "),
            )
            return False
        return await self.pool.reload(factory)

    def _reread_settings(self) -> Settings:
        fresh = Settings()
        fields = ("sentiment_model", "entities_model", "sentiment_backend", "entities_backend")
        return self.settings.model_copy(update={name: getattr(fresh, name) for name in fields})

    async def shutdown(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        await self.batcher.close()
        await self.pool.close()
        if self.dedup is not None:
            await self.dedup.close()
        if self._http is not None:
            await self._http.cleanup()
        self.loop_probe.stop()
        self.metrics.up.set(0)
        if self.tracing.enabled:  # the last spans, exported off the event loop
            await asyncio.to_thread(self.tracing.shutdown)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()


class GracefulWorker(faust.Worker):
    """SIGTERM/SIGINT: stop pulling, finish in-flight events, commit, exit 0.

    A second signal exits at once (status 1).
    """

    def __init__(self, content_worker: ContentWorker, **kwargs: Any) -> None:
        self.content_worker = content_worker
        self._draining_started = False
        super().__init__(content_worker.app, **kwargs)

    def _on_sigterm(self) -> None:
        self._begin_shutdown(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._begin_shutdown(signal.SIGINT)

    def _begin_shutdown(self, sig: signal.Signals) -> None:
        if self._draining_started:
            log.warning("second %s: exiting now", sig.name)
            sys.stderr.flush()
            os._exit(1)
        self._draining_started = True
        self._drain_task = asyncio.ensure_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        cw = self.content_worker
        log.info(
            "%s received: finishing %d in-flight event(s) (deadline %.0fs)",
            sig.name,
            cw.in_flight,
            cw.settings.shutdown_timeout_s,
        )
        await cw.runtime.drain(cw.settings.shutdown_timeout_s)
        try:
            await cw.app.consumer.commit()
        except Exception:
            log.exception("final commit failed")
        await cw.runtime.cancel_all()
        await cw.shutdown()
        self._schedule_shutdown(sig)


def run_worker(settings: Settings) -> None:
    from streams.connection_errors import fail_fast
    from streams.kafka.topics import ensure_topics
    from streams.operations.logging_setup import configure_logging, logging_config

    configure_logging(settings)

    async def prepare() -> None:
        async with fail_fast(settings):
            await ensure_topics(settings)

    asyncio.run(prepare())
    if settings.effective_engine == "batch":
        sys.exit(asyncio.run(_serve(settings)))
    worker = ContentWorker(settings)
    GracefulWorker(
        worker,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        logging_config=logging_config(settings),
    ).execute_from_commandline()


async def _serve(settings: Settings) -> int:
    worker = ContentWorker(settings)  # inside the loop: asyncio objects bind to it
    return await worker.serve()


class _NotStarted:
    async def publish(self, messages: list[Any]) -> None:
        raise RuntimeError("the batch engine has not started its producer")
