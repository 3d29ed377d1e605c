"""A stage added outside the package, through the processor: the worker's own path from
settings (CONTENTSTREAM_PIPELINE_FACTORY) to a published result, with a real analyzer
pool. Nothing in streams/ names the stage."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from processors import make_processor

from analyzers.stages import stages_restored
from streams.analysis.batcher import analysis_from_settings
from streams.analysis.pipeline_factory import resolve_pipeline_factory
from streams.kafka.records import InputRecord, Outgoing
from streams.processing.processor import BatchProcessor, Outcome, ProcessorConfig
from streams.settings import Settings

pytestmark = pytest.mark.timeout(120)

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "json" / "analysis_result.v1.json"


class Published:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        self.sent.extend(messages)

    def results(self) -> dict[str, dict[str, Any]]:
        found = (orjson.loads(m.value) for m in self.sent if m.topic == "out")
        return {r["id"]: r for r in found}


@contextlib.asynccontextmanager
async def plugin_processor() -> AsyncIterator[tuple[BatchProcessor, Published]]:
    with stages_restored("plugin_stages"):
        settings = Settings(
            pipeline_factory="plugin_stages:build_light",
            analyses=("language", "readability"),
            pool_processes=1,
        )
        pool, batcher = analysis_from_settings(
            settings, resolve_pipeline_factory(settings), on_restart=lambda _reason: None
        )
        await pool.start()
        published = Published()
        try:
            yield (
                make_processor(
                    analysis=batcher,
                    publisher=published,
                    config=ProcessorConfig(output_topic="out", default_analyses=settings.analyses),
                    analyzer_versions=lambda: dict(pool.versions),
                ),
                published,
            )
        finally:
            await pool.close()


def rec(offset: int, event: dict[str, Any]) -> InputRecord:
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=orjson.dumps(event))


async def test_an_added_stage_is_asked_for_and_published_under_extensions() -> None:
    events = [
        # By default (CONTENTSTREAM_ANALYSES names the stage) and by the event's own list.
        {"id": "default", "text": "今天很好。明天也好。"},
        {"id": "asked", "text": "One sentence. Two!", "analyses": ["readability"]},
        {"id": "not-asked", "text": "Only the language.", "analyses": ["language"]},
        {"id": "broken", "text": "Breaks its type [[unreadable]]"},
        {"id": "unknown", "text": "x", "analyses": ["telepathy"]},
    ]
    async with plugin_processor() as (processor, published):
        outcomes = await processor.process([rec(i, e) for i, e in enumerate(events)])
    assert outcomes == Counter({Outcome.OK: 3, Outcome.PARTIAL: 1, Outcome.DEAD_LETTERED: 1})
    results = published.results()
    assert results["default"]["extensions"] == {
        "readability": {"chars": 10, "sentences": 2, "chars_per_sentence": 5.0}
    }
    assert results["default"]["analyzer_versions"]["readability"] == "readability-1"
    assert results["asked"]["extensions"]["readability"]["sentences"] == 2
    assert results["asked"]["language"] is None
    assert "extensions" not in results["not-asked"]
    assert results["not-asked"]["language"] == "en"
    assert "extensions" not in results["broken"]
    assert [(e["stage"], e["code"]) for e in results["broken"]["errors"]] == [
        ("readability", "ANALYSIS_FAILED")
    ]
    # Results with the added stage still follow the published schema (an open object).
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    for result in results.values():
        validator.validate(result)
    [letter] = [m for m in published.sent if m.topic == "dlq"]
    assert dict(letter.headers)["contentstream-error-code"] == b"UNKNOWN_ANALYSIS"


def test_result_fields_are_the_contract_s_in_its_order_extensions_only_when_given() -> None:
    from schemas.events import ContentEvent
    from schemas.results import AnalysisResult
    from streams.processing.results import build_result

    event = ContentEvent(id=1, text="x")
    plain = build_result(event, "h", (), {"language": "en"}, "2026-12-05T00:00:00+00:00")
    contract = [f for f in AnalysisResult.model_fields if f != "extensions"]
    assert list(plain) == contract
    added = build_result(event, "h", (), {"extensions": {"tone": "calm"}}, "t")
    assert list(added) == list(AnalysisResult.model_fields)
    assert added["extensions"] == {"tone": "calm"}
