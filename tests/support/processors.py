"""The one processor built the way unit tests need it: an in-memory dedup store, no
Kafka. A test passes the analysis queue and publisher it scripts, and only the settings
its case is about."""

from __future__ import annotations

from typing import Any

from schemas.events import ALL_ANALYSES
from streams.operations.metrics import WorkerMetrics
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import LruDedupStore
from streams.processing.processor import BatchProcessor, ProcessorConfig


def make_processor(*, analysis: Any, publisher: Any, **settings: Any) -> BatchProcessor:
    """A ``BatchProcessor`` writing to ``out`` and ``dlq``; ``settings`` replace the
    defaults below (``config``, ``decoder``, ``dedup``, ``metrics`` ...)."""
    defaults: dict[str, Any] = {
        "config": ProcessorConfig(output_topic="out", default_analyses=ALL_ANALYSES),
        "decoder": EventDecoder(max_payload_bytes=100_000, max_text_chars=1000),
        "dead_letter_topic": "dlq",
        "max_peek_bytes": 100_000,
        "dedup": LruDedupStore(max_entries=100, ttl_s=60),
        "metrics": WorkerMetrics(),
        "analyzer_versions": lambda: {"keywords": "k1"},
    }
    return BatchProcessor(analysis=analysis, publisher=publisher, **{**defaults, **settings})
