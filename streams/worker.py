"""Assembles a running worker from Settings: every part, and how they are wired.

Each part gets what it needs at construction; nothing writes back into the worker.
The engine is chosen here, in :meth:`ContentWorker._engine` only: ``batch`` (default,
streams/engines/batch.py: aiokafka ``getmany``) or ``faust`` (streams/engines/faust_agent.py:
a Faust agent that takes batches). Both hand batches to the same processor
(streams/processing/processor.py), which publishes through the same publisher, and both
run under the one shutdown path of :meth:`ContentWorker.serve`. ``exactly_once`` runs
on the batch engine (Kafka transactions); the Faust engine refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any, Protocol

from schemas.errors import ConfigurationError
from streams.analysis.batcher import analysis_from_settings
from streams.analysis.pipeline_factory import resolve_pipeline_factory
from streams.kafka.headers import forwarding_from_settings
from streams.kafka.publisher import results_publisher
from streams.kafka.records import TopicPartition
from streams.operations.health import LoopLagProbe, WorkerHealth
from streams.operations.http_server import HttpServer, start_http_server
from streams.operations.lag_monitor import LagMonitor
from streams.operations.metrics import WorkerMetrics
from streams.operations.tracing import tracing_from_env
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import BulkDedupStore, LruDedupStore, RedisDedupStore
from streams.processing.processor import BatchProcessor, ProcessorConfig
from streams.security import redis_client_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What both engines offer :meth:`ContentWorker.serve`."""

    @property
    def in_flight(self) -> int: ...

    async def start(self) -> None: ...

    async def run(self) -> None:
        """Consume until :meth:`drain`; raises if consuming failed."""

    async def drain(self, timeout_s: float) -> bool:
        """Take nothing more, finish in-flight work, commit; True if all finished."""
        ...

    async def stop(self) -> None: ...


def check_engine(settings: Settings) -> None:
    """Refuse what no engine can run."""
    if settings.engine == "faust" and settings.processing_guarantee == "exactly_once":
        raise ConfigurationError(
            "CONTENTSTREAM_ENGINE=faust runs at_least_once only: exactly_once runs on the "
            "batch engine (Kafka transactions); unset CONTENTSTREAM_ENGINE or set it to batch"
        )


def make_bulk_dedup(settings: Settings, metrics: WorkerMetrics) -> BulkDedupStore | None:
    """The dedup store of the worker's processor."""
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


class ContentWorker:
    """Everything one worker process runs, built from Settings (inside the event loop)."""

    def __init__(self, settings: Settings, *, pipeline_factory: Any = None) -> None:
        check_engine(settings)
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.metrics.in_flight_limit.set(settings.in_flight_limit)
        self._given_factory = pipeline_factory
        self.pool, self.batcher = analysis_from_settings(
            settings,
            pipeline_factory or resolve_pipeline_factory(settings),
            on_restart=lambda _reason: self.metrics.pool_restarts.inc(),
            on_batch=self._observe_batch,
        )
        # Decided once: without the otel extra (or with OTEL_SDK_DISABLED=true) the
        # processor gets a tracing that makes no spans at all.
        self.tracing = tracing_from_env()
        self.dedup = make_bulk_dedup(settings, self.metrics)
        self.publisher = results_publisher(settings)
        self.processor = BatchProcessor(
            config=ProcessorConfig(
                output_topic=settings.output_topic,
                default_analyses=settings.analyses,
                dedup_policy=settings.dedup_policy,
                dedup_scope=settings.dedup_scope,
                max_attempts=settings.max_attempts,
            ),
            decoder=EventDecoder.from_settings(settings),
            analysis=self.batcher,
            publisher=self.publisher,
            dead_letter_topic=settings.dead_letter_topic,
            max_peek_bytes=settings.max_payload_bytes,
            dedup=self.dedup,
            metrics=self.metrics,
            analyzer_versions=lambda: self.pool.versions,
            refused_record_grace_s=settings.refused_record_grace_s,
            forwarding=forwarding_from_settings(settings),
            tracing=self.tracing,
        )
        self._assigned: set[TopicPartition] = set()
        self.engine = self._engine()
        self.lag_monitor = LagMonitor.from_settings(
            settings, assigned=lambda: set(self._assigned), metrics=self.metrics
        )
        self._ready = asyncio.Event()
        self.loop_probe = LoopLagProbe(self.metrics)
        self.health = WorkerHealth(
            probe=self.loop_probe,
            analyzers_ready=self._ready.is_set,
            assigned_partitions=lambda: len(self._assigned),
            stuck_partitions=self.lag_monitor.stuck,
            broker_connected=self.lag_monitor.broker_connected,
        )
        self.http: HttpServer | None = None
        self._background: set[asyncio.Task[None]] = set()

    def _engine(self) -> Engine:
        """The one place the engine is chosen."""
        settings = self.settings
        if settings.effective_engine == "faust":
            from streams.engines.faust_agent import FaustEngine  # imports Faust: only here

            return FaustEngine(
                settings,
                self.processor,
                self.publisher,
                on_assigned=self._partitions_assigned,
                on_revoked=self._partitions_revoked,
                on_in_flight=self.metrics.in_flight.set,
            )
        from streams.engines.batch import BatchEngine

        return BatchEngine(
            settings,
            self.processor,
            self.publisher,
            on_assigned=self._partitions_assigned,
            on_revoked=self._partitions_revoked,
            on_in_flight=self.metrics.in_flight.set,
        )

    # ------------------------------------------------------------------ running

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT, then drain; the exit status.

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
            await self.start()
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

    async def start(self) -> None:
        """Analyzers, operations endpoints, then the engine."""
        self.loop_probe.start()
        self._spawn(self.lag_monitor.run())
        log.info(
            "engine %s, %s; starting %d analyzer process(es)",
            self.settings.effective_engine,
            self.settings.processing_guarantee,
            self.pool.size,
        )
        await self.pool.start()
        log.info("analyzers ready: %s", self.pool.versions)
        self.metrics.up.set(1)
        self._ready.set()
        # SIGHUP: swap the analyzer processes onto the model now at the configured paths.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
        self.http = await start_http_server(self.settings, self.metrics, self.health)
        await self.engine.start()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _partitions_assigned(self, tps: set[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        self._assigned = {tp for tp in tps if tp[0] == self.settings.input_topic}
        self.metrics.assigned_partitions.set(len(self._assigned))

    def _partitions_revoked(self, tps: set[TopicPartition]) -> None:
        self._assigned -= tps
        self.metrics.assigned_partitions.set(len(self._assigned))

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

    # ------------------------------------------------------------------ model reload

    def request_reload(self) -> None:
        log.info("SIGHUP received: reloading the analyzer models")
        self._spawn(self.reload_models())  # logs its own outcome

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

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        await self.batcher.close()
        await self.pool.close()
        if self.dedup is not None:
            await self.dedup.close()
        if self.http is not None:
            await self.http.close()
        self.loop_probe.stop()
        self.metrics.up.set(0)
        if self.tracing.enabled:  # the last spans, exported off the event loop
            await asyncio.to_thread(self.tracing.shutdown)


def run_worker(settings: Settings) -> None:
    from streams.operations.logging_setup import configure_logging

    configure_logging(settings)
    check_engine(settings)
    sys.exit(asyncio.run(_serve(settings)))


async def _serve(settings: Settings) -> int:
    from streams.connection_errors import fail_fast
    from streams.kafka.topics import ensure_topics

    async with fail_fast(settings):
        await ensure_topics(settings)
    worker = ContentWorker(settings)  # inside the loop: asyncio objects bind to it
    return await worker.serve()
