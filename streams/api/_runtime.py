"""A running API process: analyzer pool, dedup store, quotas, producer, uvicorn.

The same parts as a worker, built from the same settings (streams/worker.py): the
pipeline factory, the pool with its deadlines and warm spares, the micro-batcher, the
Redis dedup store. So the analyzer versions, and with them the dedup keys, are the
workers' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from schemas.errors import ConfigurationError, ServiceUnavailable
from streams.analysis.batcher import analysis_from_settings
from streams.api._admission import Admission
from streams.api._app import ApiState, create_app
from streams.api._keys import KeyRing
from streams.api._metrics import ApiMetrics
from streams.api._quota import QuotaLimiter
from streams.api._service import (
    AnalysisService,
    AnalyzeConfig,
    EventIntake,
    KafkaEventSink,
)
from streams.kafka.records import Headers
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import LruDedupStore, RedisDedupStore
from streams.settings import Settings

log = logging.getLogger(__name__)


class _LazySink:
    """The producer starts in the background (the API answers /v1/analyze while Kafka
    is away); until it has, /v1/events answers 503."""

    def __init__(self) -> None:
        self.sink: KafkaEventSink | None = None

    async def produce(
        self, records: list[tuple[bytes, bytes]], headers: Headers
    ) -> list[tuple[int, int]]:
        if self.sink is None:
            raise ServiceUnavailable("not connected to Kafka yet", stage="produce")
        return await self.sink.produce(records, headers)


class ApiRuntime:
    def __init__(self, settings: Settings, *, pipeline_factory: Any = None) -> None:
        from streams.analysis.pipeline_factory import resolve_pipeline_factory

        if settings.api_keys_file is None:
            raise ConfigurationError(
                "CONTENTSTREAM_API_KEYS_FILE is not set: the API serves only callers with a key"
            )
        self.settings = settings
        self.metrics = ApiMetrics()
        self.keys = KeyRing.from_file(settings.api_keys_file)
        self.pool, self.batcher = analysis_from_settings(
            settings,
            pipeline_factory or resolve_pipeline_factory(settings),
            on_restart=lambda _reason: self.metrics.pool_restarts.inc(),
        )
        self.dedup: RedisDedupStore | LruDedupStore | None = None
        self.quota_client: Any = None
        if settings.dedup_policy != "off":
            self.dedup = self._dedup_store()
        if settings.redis_url:
            self.quota_client = self._quota_client()
        self.sink = _LazySink()
        self._producer: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        decoder = EventDecoder.from_settings(settings)
        self.metrics.texts_in_flight_limit.set(settings.api_max_texts_in_flight)
        self.state = ApiState(
            keys=self.keys,
            analysis=AnalysisService(
                config=AnalyzeConfig(
                    default_analyses=settings.analyses,
                    dedup_policy=settings.dedup_policy,
                    dedup_scope=settings.dedup_scope,
                    max_texts=settings.api_max_texts,
                ),
                decoder=decoder,
                analyzer=self.batcher,
                versions=lambda: self.pool.versions,
                dedup=self.dedup,
                metrics=self.metrics,
            ),
            intake=EventIntake(
                decoder=decoder,
                sink=self.sink,
                max_events=settings.api_max_texts,
                metrics=self.metrics,
            ),
            quota=QuotaLimiter(self.quota_client, on_fallback=self.metrics.quota_fallback.inc),
            admission=Admission(settings.api_max_texts_in_flight, settings.api_tenant_max_share),
            metrics=self.metrics,
            max_body_bytes=settings.api_max_body_bytes,
            request_timeout_s=settings.api_request_timeout_s,
            default_requests_per_s=settings.api_requests_per_s,
            default_texts_per_s=settings.api_texts_per_s,
            burst_s=settings.api_burst_s,
            readiness=self.readiness,
            max_texts=settings.api_max_texts,
            max_text_chars=settings.max_text_chars,
        )
        self._ready = False

    def _dedup_store(self) -> RedisDedupStore | LruDedupStore:
        # As the worker builds it (streams/worker.py make_bulk_dedup): the same store.
        from streams.security import redis_client_kwargs

        s = self.settings
        if s.redis_url:
            return RedisDedupStore(
                s.redis_url,
                ttl_s=s.dedup_ttl_s,
                client_kwargs=redis_client_kwargs(s),
                on_unavailable=self.metrics.dedup_unavailable.inc,
                compress_values=s.dedup_compress,
            )
        return LruDedupStore(max_entries=s.dedup_lru_size, ttl_s=s.dedup_ttl_s)

    def _quota_client(self) -> Any:
        import redis.asyncio as redis_asyncio

        from streams.security import redis_client_kwargs

        assert self.settings.redis_url is not None
        # A quota check waits at most ~1 s for Redis before the local bucket answers. Not
        # shorter: on a loaded host a busy event loop alone can make a healthy Redis look
        # late, and each false alarm hands every replica a fresh local burst. A blocking
        # pool: a burst of requests waits for one of its connections, not an outage.
        pool = redis_asyncio.BlockingConnectionPool.from_url(
            self.settings.redis_url,
            max_connections=32,
            timeout=1.0,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            **redis_client_kwargs(self.settings),
        )
        return redis_asyncio.Redis(connection_pool=pool)

    def readiness(self) -> dict[str, Any]:
        dedup = self.dedup
        return {
            "ok": self._ready,
            "analyzers": self._ready,
            "kafka": self.sink.sink is not None,
            "redis": None if self.quota_client is None else self.state.quota.redis_available,
            "dedup": None if dedup is None else getattr(dedup, "available", True),
        }

    async def _connect_producer(self) -> None:
        from streams.kafka.clients import make_producer

        delay = 0.5
        while True:
            producer = make_producer(self.settings)
            try:
                await producer.start()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning(
                    "Kafka not reachable for /v1/events (%s); retrying in %.0fs",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            self.sink.sink = KafkaEventSink(producer, self.settings.input_topic)
            log.info("producing /v1/events to %s", self.settings.input_topic)
            return

    async def start(self) -> None:
        task = asyncio.ensure_future(self._connect_producer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("starting %d analyzer process(es)", self.pool.size)
        await self.pool.start()
        log.info("analyzers ready: %s", self.pool.versions)
        # The objects of start-up (FastAPI, pydantic, models' metadata) live for ever:
        # frozen, the collector's full passes no longer walk them on the request path.
        gc.collect()
        gc.freeze()
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        for task in list(self._tasks):
            task.cancel()
        await self.batcher.close()
        await self.pool.close()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        if self.dedup is not None:
            await self.dedup.close()
        if self.quota_client is not None:
            with contextlib.suppress(Exception):
                await self.quota_client.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def app(self) -> FastAPI:
        return create_app(self.state, lifespan=self.lifespan)


def run_api(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT (uvicorn finishes the requests in flight)."""
    import uvicorn

    from streams.operations.logging_setup import configure_logging

    configure_logging(settings)
    runtime = ApiRuntime(settings)
    config = uvicorn.Config(
        runtime.app(),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # the worker's format (streams/operations/logging_setup.py), set above
        access_log=False,  # request lines would carry nothing a metric does not
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
