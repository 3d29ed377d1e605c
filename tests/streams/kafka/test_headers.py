"""Input headers forwarded onto results and dead letters (both engines share the processor)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from processors import make_processor

from analyzers.pipeline import AnalysisRequest
from schemas.dead_letter import HEADER_NAMES, DeadLetter
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.headers import (
    ANALYZER_VERSIONS_HEADER,
    EVENT_ID_HEADER,
    SCHEMA_VERSION_HEADER,
    HeaderForwarding,
    OwnHeaders,
    versions_digest,
    with_trace,
)
from streams.kafka.records import Headers, InputRecord, Outgoing
from streams.processing.processor import ProcessorConfig

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
VERSIONS = {"keywords": "k1"}


def _result(text: str) -> dict[str, Any]:
    return {
        "language": "zh",
        "keywords": [{"text": text[:2], "weight": 1.0}],
        "errors": [],
        "timings_ms": {"keywords": 0.1},
        "analyzer_versions": {"keywords": "k1"},
    }


class Sent:
    """What a processor sent: (topic, value, headers)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, Headers]] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        for m in messages:
            self.records.append((m.topic, m.value, list(m.headers)))

    def on(self, topic: str) -> list[tuple[bytes, Headers]]:
        return [(v, h) for t, v, h in self.records if t == topic]


class Queue:
    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        answers: list[tuple[int, Any]] = [(i, _result(r.text)) for i, r in requests]
        asyncio.get_running_loop().call_soon(deliver, answers)


CONFIG = ProcessorConfig(output_topic="out", default_analyses=ALL_ANALYSES, max_attempts=1)


def engine(forwarding: HeaderForwarding | None = None, **kwargs: Any) -> Any:
    """A processor of engine ``name`` and what it sends; ``run(records)`` processes."""
    sent = Sent()
    batch = make_processor(
        analysis=Queue(),
        publisher=sent,
        config=CONFIG,
        analyzer_versions=kwargs.pop("analyzer_versions", lambda: VERSIONS),
        forwarding=forwarding,
        **kwargs,
    )

    async def run(records: list[InputRecord]) -> None:
        await batch.process(records)

    return run, sent


def rec(offset: int, value: bytes, headers: Headers) -> InputRecord:
    return InputRecord("raw", 0, offset, None, value, headers=headers)


HOSTILE: Headers = [
    ("traceparent", TRACEPARENT),
    ("tracestate", b"vendor=1"),
    ("x-request-id", b"req-42"),
    ("X-Tenant-Hint", b"acme"),
    ("authorization", b"Bearer secret"),
    ("contentstream-event-id", b"forged"),
    ("contentstream-error-code", b"INVALID_JSON"),
    ("contentstream-source-topic", b"elsewhere"),
    ("x-", b""),
]
FORWARDED: Headers = [
    ("traceparent", TRACEPARENT),
    ("tracestate", b"vendor=1"),
    ("x-request-id", b"req-42"),
    ("X-Tenant-Hint", b"acme"),
    ("x-", b""),
]


def test_default_allow_list_and_prefix_never_contentstream_headers() -> None:
    forwarding = HeaderForwarding(["traceparent", "tracestate", "baggage"], ["x-"])
    assert forwarding.forwarded(HOSTILE) == FORWARDED
    assert forwarding.forwarded(HOSTILE) == FORWARDED  # decided from memory the second time
    # A prefix that would match contentstream's own headers still does not forward them.
    sneaky = HeaderForwarding(["contentstream-event-id"], ["content"])
    assert sneaky.forwarded(HOSTILE) == []


def test_nothing_forwarded_when_the_allow_list_is_empty() -> None:
    forwarding = HeaderForwarding([], [])
    assert forwarding.forwards_nothing
    assert forwarding.forwarded(HOSTILE) == []


def test_remembered_decisions_are_bounded() -> None:
    forwarding = HeaderForwarding([], ["x-"])
    many = [(f"x-{i}", b"") for i in range(10_000)] + [(f"y-{i}", b"") for i in range(10_000)]
    assert len(forwarding.forwarded(many)) == 10_000
    assert len(forwarding._decided) <= 4096


def test_own_headers_and_digest_follow_the_versions() -> None:
    own = OwnHeaders()
    headers = dict(own.for_result(7, VERSIONS))
    assert headers[EVENT_ID_HEADER] == b"7"
    assert headers[SCHEMA_VERSION_HEADER] == b"1"
    assert headers[ANALYZER_VERSIONS_HEADER] == versions_digest({"keywords": "k1"})
    assert len(headers[ANALYZER_VERSIONS_HEADER]) == 16
    assert own.digest({"keywords": "k2"}) != own.digest(VERSIONS)


def test_trace_context_replaces_the_forwarded_one() -> None:
    mine = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
    assert with_trace(FORWARDED, mine) == [*FORWARDED[1:], *mine]
    assert with_trace(FORWARDED, None) is FORWARDED


async def test_results_duplicates_and_dead_letters_carry_forwarded_headers() -> None:
    run, sent = engine()
    await run(
        [
            rec(1, orjson.dumps({"id": "a", "text": "今天很好"}), HOSTILE),
            rec(2, orjson.dumps({"id": "b", "text": "今天很好"}), HOSTILE),  # a duplicate
            rec(3, b"{not json", HOSTILE),
        ]
    )
    results = sent.on("out")
    assert len(results) == 2
    for (_, headers), event_id in zip(results, [b"a", b"b"], strict=True):
        own = [
            (EVENT_ID_HEADER, event_id),
            (SCHEMA_VERSION_HEADER, b"1"),
            (ANALYZER_VERSIONS_HEADER, versions_digest(VERSIONS)),
        ]
        assert headers == own + FORWARDED
    assert orjson.loads(results[1][0])["duplicate_of"] == "a"

    [(value, headers)] = sent.on("dlq")
    letter = DeadLetter.from_record(value, headers)
    # The reason is the worker's, not the forged one; the record is its own origin.
    assert letter.error_code.value == "INVALID_JSON" and letter.source_topic == "raw"
    assert headers[-len(FORWARDED) :] == FORWARDED
    names = [n for n, _ in headers]
    assert names.count(HEADER_NAMES["code"]) == 1
    assert HEADER_NAMES["event_id"] not in names  # unreadable id: none, not the forged one
    assert "authorization" not in names


async def test_versions_header_names_the_model_that_analysed_the_event() -> None:
    # A model reload swaps the pool's versions while results of the old model are still
    # being published: the header follows the result's own versions, not the pool's.
    run, sent = engine(analyzer_versions=lambda: {"keywords": "k2-after-reload"})
    await run([rec(1, orjson.dumps({"id": "a", "text": "今天很好"}), [])])
    [(value, headers)] = sent.on("out")
    assert orjson.loads(value)["analyzer_versions"] == VERSIONS
    assert (ANALYZER_VERSIONS_HEADER, versions_digest(VERSIONS)) in headers


async def test_no_forwarding_configured_gives_only_own_headers() -> None:
    run, sent = engine(forwarding=HeaderForwarding([], []))
    await run([rec(1, orjson.dumps({"id": "a", "text": "好"}), HOSTILE), rec(2, b"[", HOSTILE)])
    [(_, headers)] = sent.on("out")
    assert [n for n, _ in headers] == [
        EVENT_ID_HEADER,
        SCHEMA_VERSION_HEADER,
        ANALYZER_VERSIONS_HEADER,
    ]
    [(_, headers)] = sent.on("dlq")
    assert all(n.startswith("contentstream-") for n, _ in headers)


def test_replay_carries_origin_and_forwarded_headers_not_the_reason() -> None:
    from streams.commands.replay import carried_headers

    letter_headers: Headers = [
        (HEADER_NAMES["code"], b"INVALID_JSON"),
        (HEADER_NAMES["message"], b"bad"),
        (HEADER_NAMES["stage"], b"decode"),
        (HEADER_NAMES["topic"], b"raw"),
        (HEADER_NAMES["partition"], b"0"),
        (HEADER_NAMES["offset"], b"3"),
        (HEADER_NAMES["first_seen"], b"2026-12-04T00:00:00+00:00"),
        (HEADER_NAMES["attempts"], b"1"),
        (HEADER_NAMES["event_id"], b"a"),
        *FORWARDED,
    ]
    assert carried_headers(letter_headers) == [
        (HEADER_NAMES["topic"], b"raw"),
        (HEADER_NAMES["partition"], b"0"),
        (HEADER_NAMES["offset"], b"3"),
        (HEADER_NAMES["first_seen"], b"2026-12-04T00:00:00+00:00"),
        (HEADER_NAMES["attempts"], b"1"),
        *FORWARDED,
    ]


def test_an_http_request_passes_on_its_trace_context_and_no_credentials() -> None:
    from starlette.datastructures import Headers as HttpHeaders

    from streams.kafka.headers import trace_context

    request = HttpHeaders(
        {
            "TraceParent": TRACEPARENT.decode(),
            "tracestate": "vendor=1",
            "x-api-key": "secret",
            "authorization": "Bearer secret",
            "x-request-id": "req-1",
            "baggage": "x" * 9000,  # past the bound: left behind
        }
    )
    assert trace_context(request) == [("traceparent", TRACEPARENT), ("tracestate", b"vendor=1")]
