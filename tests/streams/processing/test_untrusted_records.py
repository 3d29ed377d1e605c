"""Records an attacker or a careless producer might send, through the processor both
engines share (BatchProcessor) with a recording publisher and a fake analysis: no
record may stop a worker, no tenant may see or poison another's analyses.

Every test here failed on the code before issue #15 was fixed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from processors import make_processor

from analyzers.pipeline import AnalysisRequest
from schemas.dead_letter import DeadLetter
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.records import Headers, InputRecord, Outgoing
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import LruDedupStore
from streams.processing.processor import Outcome, ProcessorConfig

ENTITY = "北京"


def fields_for(request: AnalysisRequest) -> dict[str, Any]:
    """What an analysis would say: entities at their offsets in *this* text, and the
    language hint honoured (as the real pipeline does)."""
    text = request.text
    entities = []
    start = text.find(ENTITY)
    while start >= 0:
        entities.append({"text": ENTITY, "type": "LOC", "start": start, "end": start + 2})
        start = text.find(ENTITY, start + 2)
    return {
        "language": request.language_hint or "zh",
        "entities": entities,
        "keywords": [{"text": text[:2], "weight": 1.0}],
        "errors": [],
        "timings_ms": {"entities": 0.1},
        "analyzer_versions": {"entities": "e1"},
    }


class Analysis:
    """The processor's analysis queue, answering at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fields: dict[str, dict[str, Any]] = {}  # scripted answers by text

    def answer(self, request: AnalysisRequest) -> dict[str, Any]:
        self.calls.append(request.text)
        return self.fields.get(request.text) or fields_for(request)

    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        answers: list[tuple[int, Any]] = [(i, self.answer(r)) for i, r in requests]
        asyncio.get_running_loop().call_soon(deliver, answers)


class Recorder:
    """The processor's publisher, recording what it sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Headers]] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        await asyncio.sleep(0)
        self.sent.extend((m.topic, m.key, m.value, m.headers) for m in messages)

    def results(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v, _ in self.sent if t == "out"]

    def result_bytes(self) -> list[bytes]:
        return [v for t, _, v, _ in self.sent if t == "out"]

    def letters(self) -> list[DeadLetter]:
        return [DeadLetter.from_record(v, h) for t, _, v, h in self.sent if t == "dlq"]


class Engine:
    """The processor behind one call: process these records."""

    def __init__(
        self,
        *,
        decoder: EventDecoder | None = None,
        policy: str = "reuse",
        scope: str = "tenant",
    ) -> None:
        self.analysis = Analysis()
        self.out = Recorder()
        self.store = LruDedupStore(max_entries=1000, ttl_s=60)
        scoped: dict[str, Any] = {} if scope == "tenant" else {"dedup_scope": scope}
        config = ProcessorConfig(
            output_topic="out",
            default_analyses=ALL_ANALYSES,
            dedup_policy=policy,
            max_attempts=2,
            retry_backoff_s=0.001,
            **scoped,
        )
        decoder = decoder or EventDecoder(max_payload_bytes=1_000_000, max_text_chars=10_000)
        self.batch = make_processor(
            analysis=self.analysis,
            publisher=self.out,
            config=config,
            decoder=decoder,
            max_peek_bytes=1_000_000,
            dedup=self.store,
            analyzer_versions=lambda: {"entities": "e1"},
            publish_backoff_s=0.001,
        )

    async def process(self, records: list[InputRecord]) -> Counter[Outcome]:
        return await self.batch.process(records)


def rec(
    offset: int, payload: Any, *, raw: bytes | None = None, headers: Headers | None = None
) -> InputRecord:
    value = raw if raw is not None else orjson.dumps(payload)
    return InputRecord(
        topic="raw", partition=0, offset=offset, key=None, value=value, headers=headers or []
    )


def deep_event(event_id: str, text: str, depth: int) -> bytes:
    """An event whose metadata is ``depth`` objects deep (orjson cannot write past ~255)."""
    head = orjson.dumps({"id": event_id, "text": text})[:-1]
    return head + b', "metadata": ' + b'{"a": ' * (depth - 1) + b"{}" + b"}" * depth


class LenientDecoder(EventDecoder):
    """Lets metadata of any depth through, as the worker's decoder did before metadata
    was bounded: what follows must still cost only that event."""

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        pass


def lenient_decoder() -> EventDecoder:
    return LenientDecoder(max_payload_bytes=1_000_000, max_text_chars=10_000)


# --------------------------------------------------------------------- one bad event


async def test_a_result_that_cannot_be_serialised_is_that_events_dead_letter() -> None:
    engine = Engine(decoder=lenient_decoder())
    records = [
        rec(1, {"id": "good-1", "text": "第一条"}),
        rec(2, None, raw=deep_event("deep", "第二条", 300)),
        rec(3, {"id": "good-2", "text": "第三条"}),
    ]
    outcomes = await engine.process(records)
    assert outcomes == Counter({Outcome.OK: 2, Outcome.DEAD_LETTERED: 1})
    assert [r["id"] for r in engine.out.results()] == ["good-1", "good-2"]
    (letter,) = engine.out.letters()
    assert letter.error_code.value == "INTERNAL_ERROR"
    assert letter.event_id == "deep" and letter.source_offset == 2
    assert "orjson" in letter.message or "Recursion" in letter.message


async def test_deep_metadata_is_refused_at_decoding_with_its_code() -> None:
    engine = Engine()
    outcomes = await engine.process(
        [
            rec(1, None, raw=deep_event("deep", "文本", 300)),
            rec(2, {"id": "ok", "text": "文本"}),
        ]
    )
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DEAD_LETTERED: 1})
    assert [d.error_code.value for d in engine.out.letters()] == ["METADATA_TOO_LARGE"]
    assert engine.analysis.calls == ["文本"]


FORGED: list[Headers] = [
    [("contentstream-source-partition", b"x")],
    [("contentstream-attempts", b"-5")],
    [("contentstream-source-topic", b"\xff\xfe")],
    [
        ("contentstream-source-topic", b"\xff\xfe"),
        ("contentstream-source-partition", b"-1"),
        ("contentstream-source-offset", b"99999999999999999999999"),
        ("contentstream-first-seen", b"\xc3\x28 yesterday"),
        ("contentstream-attempts", b"\xd9\xa5"),  # an Arabic-Indic 5: int() would take it
    ],
    # Well-formed, but impossible: a record replayed from a later offset of its own partition.
    [
        ("contentstream-source-topic", b"raw"),
        ("contentstream-source-partition", b"0"),
        ("contentstream-source-offset", b"500"),
        ("contentstream-attempts", b"7"),
    ],
]


@pytest.mark.parametrize("headers", FORGED)
async def test_forged_headers_neither_break_nor_steer_dead_letters(headers: Headers) -> None:
    engine = Engine()
    outcomes = await engine.process(
        [rec(7, None, raw=b"{not json", headers=headers), rec(8, {"id": "ok", "text": "好"})]
    )
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DEAD_LETTERED: 1})
    (letter,) = engine.out.letters()
    assert letter.error_code.value == "INVALID_JSON"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("raw", 0, 7)
    assert letter.attempts == 1


async def test_a_replayed_record_keeps_its_first_origin() -> None:
    engine = Engine()
    headers: Headers = [
        ("contentstream-source-topic", b"content.raw"),
        ("contentstream-source-partition", b"3"),
        ("contentstream-source-offset", b"41"),
        ("contentstream-first-seen", b"2026-01-02T03:04:05+00:00"),
        ("contentstream-attempts", b"1"),
    ]
    await engine.process([rec(9, None, raw=b"{still not json", headers=headers)])
    (letter,) = engine.out.letters()
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "content.raw",
        3,
        41,
    )
    assert letter.attempts == 2 and letter.first_seen.year == 2026


async def test_a_damaged_stored_analysis_costs_an_analysis_not_the_event() -> None:
    engine = Engine()
    await engine.process([rec(1, {"id": "a", "text": "同一段文本"})])
    for key in list(engine.store._data):
        await engine.store.put(key, b"[1, 2]")  # JSON, but no result
    if engine.batch is not None:  # and its copy of what it stored lately
        engine.batch._recent = type(engine.batch._recent)(
            (key, b"[1, 2]") for key in engine.batch._recent
        )
    outcomes = await engine.process([rec(2, {"id": "b", "text": "同一段文本"})])
    assert outcomes == Counter({Outcome.OK: 1})
    assert engine.analysis.calls == ["同一段文本"] * 2
    assert engine.out.results()[-1]["id"] == "b"


# --------------------------------------------------------------------- the validator


@pytest.mark.parametrize(
    "payload",
    [
        {"id": True, "text": "文本"},
        {"id": 1.5, "text": "文本"},
        {"id": "x", "text": "文本", "schema_version": True},
    ],
)
async def test_lax_ids_and_versions_are_dead_lettered(payload: dict[str, Any]) -> None:
    engine = Engine()
    outcomes = await engine.process([rec(1, payload)])
    assert outcomes == Counter({Outcome.DEAD_LETTERED: 1})
    assert engine.analysis.calls == []


# --------------------------------------------------------------------- dedup


async def test_another_tenants_repeat_is_its_own_analysis() -> None:
    engine = Engine()
    text = "我们在北京的订单已经发货。"
    await engine.process(
        [rec(1, {"id": "tenantA-secret-order-991", "text": text, "tenant": "a", "language": "en"})]
    )
    outcomes = await engine.process([rec(2, {"id": "b-1", "text": text, "tenant": "b"})])
    assert outcomes == Counter({Outcome.OK: 1})
    assert engine.analysis.calls == [text, text]
    b_bytes = engine.out.result_bytes()[-1]
    assert b"tenantA" not in b_bytes
    b = orjson.loads(b_bytes)
    assert b["tenant"] == "b" and b["duplicate_of"] is None
    assert b["language"] == "zh", "B's own (absent) language hint, not A's"


async def test_global_scope_shares_analyses_but_never_another_tenants_id() -> None:
    engine = Engine(scope="global")
    text = "我们在北京的订单已经发货。"
    await engine.process([rec(1, {"id": "tenantA-secret-order-991", "text": text, "tenant": "a"})])
    await engine.process([rec(2, {"id": "b-1", "text": text, "tenant": "b"})])
    await engine.process([rec(3, {"id": "b-2", "text": text, "tenant": "b"})])
    assert engine.analysis.calls == [text]
    for value in engine.out.result_bytes()[1:]:
        assert b"tenantA" not in value
    b1, b2 = engine.out.results()[1:]
    assert b1["duplicate_of"] is None and b1["tenant"] == "b"
    assert b2["duplicate_of"] is None  # its analysis is still A's: the same oracle


async def test_a_repeat_differing_in_whitespace_gets_offsets_into_its_own_text() -> None:
    engine = Engine()
    first, second = "我 在 北京。", "我      在   北京。"
    await engine.process([rec(1, {"id": "a", "text": first})])
    await engine.process([rec(2, {"id": "b", "text": second})])
    b = engine.out.results()[-1]
    assert b["id"] == "b"
    assert b["entities"], b
    for entity in b["entities"]:
        assert second[entity["start"] : entity["end"]] == entity["text"]


async def test_an_exact_repeat_of_the_same_tenant_is_still_reused() -> None:
    engine = Engine()
    text = "我在北京。"
    await engine.process([rec(1, {"id": "a", "text": text, "tenant": "t"})])
    outcomes = await engine.process([rec(2, {"id": "b", "text": text, "tenant": "t"})])
    assert outcomes == Counter({Outcome.DUPLICATE: 1})
    assert engine.analysis.calls == [text]
    assert engine.out.results()[-1]["duplicate_of"] == "a"


async def test_a_failed_analysis_is_not_remembered() -> None:
    engine = Engine()
    text = "好" * 50
    engine.analysis.fields[text] = {
        "language": "zh",
        "entities": None,
        "errors": [{"stage": "entities", "code": "ANALYSIS_FAILED", "message": "IndexError"}],
        "timings_ms": {},
        "analyzer_versions": {},
    }
    await engine.process([rec(1, {"id": "a", "text": text})])
    del engine.analysis.fields[text]  # fixed, say, by a restart with a new analyzer
    outcomes = await engine.process([rec(2, {"id": "b", "text": text})])
    assert outcomes == Counter({Outcome.OK: 1})
    assert engine.analysis.calls == [text, text]
