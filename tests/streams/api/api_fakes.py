"""An API app over fakes (analyzer, producer, clock), for the unit tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from analyzers.pipeline import AnalysisRequest
from schemas.events import ALL_ANALYSES
from streams.api import (
    Admission,
    AnalysisService,
    AnalyzeConfig,
    ApiMetrics,
    ApiState,
    EventIntake,
    KeyRing,
    QuotaLimiter,
    Tenant,
    create_app,
    hash_key,
)
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import LruDedupStore

KEY_A = "key-of-acme-0123456789"
KEY_B = "key-of-globex-987654321"
VERSIONS = {
    "language": "l1",
    "sentiment": "s1",
    "keywords": "k1",
    "summary": "u1",
    "entities": "e1",
}


class FakeAnalyzer:
    """Answers like the pool (fields of a complete analysis); ``gate`` holds answers
    back until set, ``hang`` never answers."""

    def __init__(self) -> None:
        self.calls: list[AnalysisRequest] = []
        self.gate: asyncio.Event | None = None
        self.hang = False
        self.time_out = False
        self.die = 0  # this many analyses fail as if their process died

    async def analyze(self, request: AnalysisRequest) -> dict[str, Any]:
        self.calls.append(request)
        if self.hang:
            await asyncio.Event().wait()
        if self.gate is not None:
            await self.gate.wait()
        if self.die:
            from schemas.errors import ServiceUnavailable

            self.die -= 1
            raise ServiceUnavailable("analyzer process exited")
        if self.time_out:
            from schemas.errors import StageTimeout

            raise StageTimeout("analysis of 1 event(s) ran past 30s", stage="analysis")
        return {
            "language": request.language_hint or "en",
            "sentiment": None,
            "keywords": [{"text": w, "weight": 1.0} for w in request.text.split()[:3]],
            "summary": request.text[:20],
            "entities": [],
            "errors": [],
            "timings_ms": {"language": 0.1},
            "analyzer_versions": VERSIONS,
        }


class FakeSink:
    def __init__(self) -> None:
        self.produced: list[tuple[bytes, bytes]] = []
        self.headers: list[list[tuple[str, bytes]]] = []  # of each produce call

    async def produce(
        self, records: list[tuple[bytes, bytes]], headers: list[tuple[str, bytes]]
    ) -> list[tuple[int, int]]:
        start = len(self.produced)
        self.produced.extend(records)
        self.headers.append(list(headers))
        return [(0, start + i) for i in range(len(records))]


class Harness:
    def __init__(
        self,
        *,
        capacity: int = 512,
        share: float = 0.5,
        requests_per_s: float = 1000.0,
        texts_per_s: float = 10_000.0,
        timeout_s: float = 10.0,
        max_texts: int = 64,
        max_body: int = 64 * 1024,
        dedup_scope: str = "tenant",
    ) -> None:
        self.analyzer = FakeAnalyzer()
        self.sink = FakeSink()
        self.store = LruDedupStore(max_entries=1000, ttl_s=3600)
        self.metrics = ApiMetrics()
        self.keys = KeyRing(
            [
                (hash_key(KEY_A).encode(), Tenant("acme")),
                (hash_key(KEY_B).encode(), Tenant("globex", requests_per_s=requests_per_s)),
            ]
        )
        decoder = EventDecoder(max_payload_bytes=32 * 1024, max_text_chars=1000)
        self.admission = Admission(capacity, share)
        self.state = ApiState(
            keys=self.keys,
            analysis=AnalysisService(
                config=AnalyzeConfig(
                    default_analyses=ALL_ANALYSES,
                    dedup_policy="reuse",
                    dedup_scope=dedup_scope,  # type: ignore[arg-type]
                    max_texts=max_texts,
                ),
                decoder=decoder,
                analyzer=self.analyzer,
                versions=lambda: VERSIONS,
                dedup=self.store,
                metrics=self.metrics,
            ),
            intake=EventIntake(
                decoder=decoder, sink=self.sink, max_events=max_texts, metrics=self.metrics
            ),
            quota=QuotaLimiter(None),
            admission=self.admission,
            metrics=self.metrics,
            max_body_bytes=max_body,
            request_timeout_s=timeout_s,
            default_requests_per_s=requests_per_s,
            default_texts_per_s=texts_per_s,
            burst_s=1.0,
            readiness=lambda: {"ok": True},
            max_texts=max_texts,
            max_text_chars=1000,
        )
        self.app = create_app(self.state)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api")


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
