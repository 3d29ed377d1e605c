"""The HTTP API over fakes: routes, codes, auth, quotas, backpressure, deadlines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
import pytest
from api_fakes import KEY_A, KEY_B, VERSIONS, Harness, auth

from schemas.events import ALL_ANALYSES
from schemas.results import AnalysisResult
from streams.api import api_dedup_key
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import dedup_key_suffix, dedup_key_with, dedup_owner


async def test_one_text_is_analysed_for_the_keys_tenant() -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": "good food here", "id": "r1"}, headers=auth())
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    parsed = AnalysisResult.model_validate(result)
    assert parsed.id == "r1" and parsed.tenant == "acme" and parsed.source == "http"
    assert parsed.duplicate_of is None
    assert "RateLimit" in r.headers and "RateLimit-Policy" in r.headers


async def test_a_batch_answers_in_order_with_per_text_codes() -> None:
    h = Harness()
    body = {
        "texts": [
            "one text",
            {"id": "x", "text": "  "},
            {"text": "y" * 1001, "metadata": {"k": 1}},
            {"id": 7, "text": "four", "language": "en", "source": None},
        ],
        "analyses": ["keywords", "summary"],
    }
    async with h.client() as c:
        r = await c.post("/v1/analyze", json=body, headers=auth())
        bogus = await c.post(
            "/v1/analyze",
            json={"texts": ["a", {"text": "b", "analyses": ["bogus"]}]},
            headers=auth(),
        )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x.get("id") for x in results] == [0, "x", 2, 7]
    assert results[1]["error"]["code"] == "EMPTY_TEXT"
    assert results[2]["error"]["code"] == "TEXT_TOO_LONG"
    assert results[3]["language"] == "en" and results[0]["sentiment"] is None
    AnalysisResult.model_validate(results[0])
    assert {r.text for r in h.analyzer.calls} == {"one text", "four"}
    # The envelope is checked as a whole: an unknown analysis anywhere is the request's.
    assert bogus.status_code == 422 and bogus.json()["error"]["code"] == "UNKNOWN_ANALYSIS"


async def test_a_single_invalid_text_answers_422_with_its_dead_letter_code() -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": "x" * 1001}, headers=auth())
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "TEXT_TOO_LONG"


async def test_a_text_the_worker_analysed_is_a_dedup_hit_with_the_workers_key() -> None:
    h = Harness()
    # What the batch processor stores: its key (owner + suffix), the result's JSON.
    key = dedup_key_with(
        "same text",
        dedup_owner("acme", None),
        dedup_key_suffix([a.value for a in ALL_ANALYSES], VERSIONS),
    )
    event = EventDecoder(max_payload_bytes=4096, max_text_chars=100).validate(
        {"id": "w1", "text": "same text", "tenant": "acme"}
    )
    assert api_dedup_key(event, ALL_ANALYSES, VERSIONS, "tenant") == key
    stored = {**(await _analysed(h, "same text")), "id": "w1", "source": "stream"}
    await h.store.put(key, orjson.dumps(stored))
    h.analyzer.calls.clear()
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": "same text", "id": "h1"}, headers=auth())
        other = await c.post("/v1/analyze", json={"text": "same text"}, headers=auth(KEY_B))
    (hit,) = r.json()["results"]
    assert hit["duplicate_of"] == "w1" and hit["id"] == "h1" and hit["source"] == "http"
    assert other.json()["results"][0]["duplicate_of"] is None  # another tenant: analysed
    assert len(h.analyzer.calls) == 1


async def _analysed(h: Harness, text: str) -> dict[str, object]:
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": text, "language": "zh"}, headers=auth())
    return r.json()["results"][0]  # type: ignore[no-any-return]


async def test_repeats_are_analysed_once_and_stored_for_the_workers() -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"texts": ["again", "again", "other"]}, headers=auth())
        second = await c.post("/v1/analyze", json={"text": "again", "id": "z"}, headers=auth())
    results = r.json()["results"]
    assert results[1]["duplicate_of"] == 0 and results[0]["duplicate_of"] is None
    assert len(h.analyzer.calls) == 2
    assert second.json()["results"][0]["duplicate_of"] == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": KEY_A}, 401)],
)
async def test_without_a_valid_key_401(headers: dict[str, str], status: int) -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": "hi"}, headers=headers)
        e = await c.post("/v1/events", json={"id": 1, "text": "hi"}, headers=headers)
    assert r.status_code == e.status_code == status
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "UNAUTHORIZED"
    assert h.analyzer.calls == [] and h.sink.produced == []
    metrics = await _metrics(h)
    assert KEY_A not in metrics and 'tenant="-"' in metrics


async def _metrics(h: Harness) -> str:
    async with h.client() as c:
        return (await c.get("/metrics")).text


async def test_events_are_produced_with_the_keys_tenant() -> None:
    h = Harness()
    async with h.client() as c:
        one = await c.post("/v1/events", json={"id": "e1", "text": "hello"}, headers=auth())
        many = await c.post(
            "/v1/events",
            json=[{"id": 2, "text": "a"}, {"id": "3", "text": "b", "tenant": "acme"}],
            headers=auth(),
        )
    assert one.status_code == many.status_code == 202
    assert one.json() == {"accepted": [{"id": "e1", "partition": 0, "offset": 0}]}
    assert [a["offset"] for a in many.json()["accepted"]] == [1, 2]
    keys = [k for k, _ in h.sink.produced]
    assert keys == [b"e1", b"2", b"3"]
    assert all(orjson.loads(v)["tenant"] == "acme" for _, v in h.sink.produced)


async def test_ids_and_times_are_read_as_the_event_contracts_json_schema_says() -> None:
    # 1.0 is the integer 1 to JSON Schema (what schemathesis checks the API against):
    # accepted, and answered as 1; produced_at is a date-time string, never epoch seconds.
    h = Harness()
    async with h.client() as c:
        one = await c.post("/v1/analyze", content=b'{"id": 1.0, "text": "hi"}', headers=_json())
        batch = await c.post(
            "/v1/analyze", content=b'{"texts": [{"id": 2.0, "text": "a"}]}', headers=_json()
        )
        event = await c.post("/v1/events", content=b'{"id": 3.0, "text": "b"}', headers=_json())
        fraction = await c.post("/v1/analyze", content=b'{"id": 1.5, "text": "c"}', headers=_json())
        epoch = await c.post(
            "/v1/events", json={"id": 4, "text": "d", "produced_at": 0}, headers=auth()
        )
    assert one.json()["results"][0]["id"] == 1 and batch.json()["results"][0]["id"] == 2
    assert event.status_code == 202 and event.json()["accepted"][0]["id"] == 3
    assert h.sink.produced[0][0] == b"3"
    assert fraction.status_code == 422
    assert epoch.status_code == 422 and epoch.json()["error"]["events"][0]["index"] == 0


def _json() -> dict[str, str]:
    return {**auth(), "Content-Type": "application/json"}


async def test_an_event_claiming_another_tenant_is_403_and_nothing_is_produced() -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post(
            "/v1/events",
            json=[{"id": 1, "text": "a"}, {"id": 2, "text": "b", "tenant": "globex"}],
            headers=auth(),
        )
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert h.sink.produced == []


async def test_invalid_events_are_422_with_their_codes_and_none_is_produced() -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post(
            "/v1/events",
            json=[
                {"id": 1, "text": "ok"},
                {"id": 2},
                {"id": True, "text": "x"},
                {"id": 4, "text": "y", "extra": 1},
            ],
            headers=auth(),
        )
    assert r.status_code == 422
    errors = r.json()["error"]["events"]
    assert [(e["index"], e["code"]) for e in errors] == [
        (1, "MISSING_TEXT"),
        (2, "INVALID_EVENT"),
        (3, "INVALID_EVENT"),
    ]
    assert h.sink.produced == []


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "INVALID_JSON"),
        (b'{"text": "\xff\xfe"}', "application/json", 400, "INVALID_UTF8"),
        (b'{"text": "hi"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"text": 5}', "application/json", 422, "INVALID_EVENT"),
        (b'{"texts": "abc"}', "application/json", 422, "INVALID_EVENT"),
        (b'{"text": "a", "texts": ["b"]}', "application/json", 422, "INVALID_EVENT"),
        (b'{"text": "a", "bogus": 1}', "application/json", 422, "INVALID_EVENT"),
        (b"[1, 2]", "application/json", 422, "INVALID_EVENT"),
        (b'{"texts": []}', "application/json", 422, "INVALID_EVENT"),
        (orjson.dumps({"texts": ["a"] * 65}), "application/json", 413, "PAYLOAD_TOO_LARGE"),
        (b'{"text": "' + b"a" * 70_000 + b'"}', "application/json", 413, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_bad_bodies_get_the_documented_4xx_and_the_server_keeps_serving(
    content: bytes, ctype: str, status: int, code: str
) -> None:
    h = Harness()
    async with h.client() as c:
        r = await c.post("/v1/analyze", content=content, headers={**auth(), "Content-Type": ctype})
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        ok = await c.post("/v1/analyze", json={"text": "still here"}, headers=auth())
    assert ok.status_code == 200


async def test_a_body_over_the_limit_without_a_length_is_cut_off() -> None:
    h = Harness()

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"a" * 1024

    async with h.client() as c:
        r = await c.post(
            "/v1/analyze",
            content=chunks(),
            headers={**auth(), "Content-Type": "application/json"},
        )
    assert r.status_code == 413


async def test_over_the_tenant_quota_429_with_retry_after_and_ratelimit_headers() -> None:
    h = Harness(requests_per_s=2.0)
    async with h.client() as c:
        statuses = []
        for _ in range(4):
            r = await c.post("/v1/analyze", json={"text": "hi"}, headers=auth(KEY_B))
            statuses.append(r.status_code)
        other = await c.post("/v1/analyze", json={"text": "hi"}, headers=auth(KEY_A))
    assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429]
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["RateLimit-Policy"].startswith('"requests";q=2;w=1')
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    assert other.status_code == 200  # the other tenant has its own bucket
    assert 'contentstream_api_rate_limited_total{limit="requests",tenant="globex"} 2.0' in (
        await _metrics(h)
    )


async def test_a_text_quota_counts_the_texts_of_a_batch() -> None:
    h = Harness(texts_per_s=5.0)
    async with h.client() as c:
        first = await c.post(
            "/v1/analyze", json={"texts": ["a", "b", "c", "d", "e"]}, headers=auth()
        )
        second = await c.post("/v1/analyze", json={"texts": ["f", "g"]}, headers=auth())
    assert first.status_code == 200 and second.status_code == 429
    assert 'limit="texts"' in await _metrics(h)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (set by requests in flight), never for ever."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


async def test_past_capacity_503_with_retry_after_at_once_and_fair_share() -> None:
    h = Harness(capacity=4, share=0.5)
    h.analyzer.gate = asyncio.Event()
    async with h.client() as c:
        held = asyncio.ensure_future(
            c.post("/v1/analyze", json={"texts": ["a", "b"]}, headers=auth())
        )
        await until(lambda: h.admission.in_flight >= 2)
        # acme holds its share (2 of 4): its next request is shed, globex still gets in.
        shed = await c.post("/v1/analyze", json={"text": "c"}, headers=auth())
        other = asyncio.ensure_future(
            c.post("/v1/analyze", json={"texts": ["d", "e"]}, headers=auth(KEY_B))
        )
        await until(lambda: h.admission.in_flight >= 4)
        full = await c.post("/v1/analyze", json={"text": "f"}, headers=auth(KEY_B))
        h.analyzer.gate.set()
        assert (await held).status_code == 200 and (await other).status_code == 200
    assert shed.status_code == full.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert shed.json()["error"]["code"] == "OVERLOADED"
    assert h.admission.in_flight == 0
    text = await _metrics(h)
    assert 'contentstream_api_shed_total{reason="tenant_share",tenant="acme"} 1.0' in text
    assert 'contentstream_api_shed_total{reason="capacity",tenant="globex"} 1.0' in text


async def test_past_the_request_deadline_504_naming_the_stage() -> None:
    h = Harness(timeout_s=0.05)
    h.analyzer.hang = True
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"text": "slow"}, headers=auth())
    assert r.status_code == 504
    assert r.json()["error"] == {
        "code": "DEADLINE_EXCEEDED",
        "message": "the request ran past its deadline of 0.05s in stage analysis",
        "stage": "analysis",
    }
    assert h.admission.in_flight == 0


async def test_unknown_routes_and_methods_answer_in_the_error_shape() -> None:
    h = Harness()
    async with h.client() as c:
        missing = await c.get("/v2/nothing")
        method = await c.get("/v1/analyze")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert method.status_code == 405


async def test_health_ready_metrics_and_openapi() -> None:
    h = Harness()
    async with h.client() as c:
        await c.post("/v1/analyze", json={"text": "hello there"}, headers=auth())
        health = await c.get("/healthz")
        ready = await c.get("/readyz")
        spec = (await c.get("/openapi.json")).json()
        metrics = await c.get("/metrics")
    assert health.json() == {"ok": True} and ready.status_code == 200
    assert set(spec["paths"]) >= {"/v1/analyze", "/v1/events", "/healthz", "/readyz", "/metrics"}
    schemas = spec["components"]["schemas"]
    assert {"AnalyzeOne", "AnalyzeBatch", "AnalysisResult", "ContentEvent"} <= set(schemas)
    body = spec["paths"]["/v1/analyze"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "oneOf": [
            {"$ref": "#/components/schemas/AnalyzeOne"},
            {"$ref": "#/components/schemas/AnalyzeBatch"},
        ]
    }
    assert schemas["AnalyzeBatch"]["properties"]["texts"]["maxItems"] == 64
    assert schemas["AnalyzeOne"]["properties"]["text"]["maxLength"] == 1000
    text = metrics.text
    assert (
        'contentstream_api_requests_total{route="/v1/analyze",status="200",tenant="acme"} 1.0'
        in text
    )
    assert 'contentstream_api_texts_analysed_total{outcome="ok",tenant="acme"} 1.0' in text
    assert "contentstream_api_request_duration_seconds_bucket" in text


async def test_kafka_away_answers_503_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    from schemas.errors import ServiceUnavailable

    h = Harness()

    async def away(
        records: list[tuple[bytes, bytes]], headers: list[tuple[str, bytes]]
    ) -> list[tuple[int, int]]:
        raise ServiceUnavailable("not connected to Kafka yet", stage="produce")

    h.sink.produce = away  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="streams.api._app"):
        async with h.client() as c:
            for _ in range(5):
                r = await c.post("/v1/events", json={"id": 1, "text": "x"}, headers=auth())
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    # A flood of 503s writes one line (more only every SERVER_ERROR_LOG_EVERY_S), no key.
    (line,) = [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
    assert line.startswith("POST /v1/events answered 503") and KEY_A not in line
    assert r.json()["error"] == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "not connected to Kafka yet",
        "stage": "produce",
    }
    assert 'route="/v1/events",status="503",tenant="acme"} 5.0' in await _metrics(h)


async def test_a_body_that_never_finishes_arriving_answers_408() -> None:
    h = Harness(timeout_s=0.05)

    async def trickle():  # type: ignore[no-untyped-def]
        yield b'{"text": '
        await asyncio.sleep(3600)

    async with h.client() as c:
        r = await c.post(
            "/v1/analyze", content=trickle(), headers={**auth(), "Content-Type": "application/json"}
        )
    assert r.status_code == 408
    assert r.json()["error"]["stage"] == "body"


async def test_a_timed_out_analysis_is_a_partial_result_each_repeat_its_own() -> None:
    h = Harness()
    h.analyzer.time_out = True
    body = {
        "texts": [
            {"id": "a", "text": "slow text", "metadata": {"n": 1}},
            {"id": "b", "text": "slow text", "metadata": {"n": 2}},
        ]
    }
    async with h.client() as c:
        r = await c.post("/v1/analyze", json=body, headers=auth())
        again = await c.post("/v1/analyze", json={"text": "slow text"}, headers=auth())
    first, second = r.json()["results"]
    assert [e["code"] for e in first["errors"]] == ["STAGE_TIMEOUT"]
    assert (first["id"], first["metadata"]) == ("a", {"n": 1})
    assert (second["id"], second["metadata"], second["duplicate_of"]) == ("b", {"n": 2}, None)
    assert second["errors"] == first["errors"]
    # A partial result is not remembered: the next request is analysed again.
    assert again.json()["results"][0]["duplicate_of"] is None
    assert len(h.analyzer.calls) == 2


@pytest.mark.parametrize(("deaths", "code"), [(1, None), (2, "SERVICE_UNAVAILABLE")])
async def test_a_dead_analyzer_process_costs_one_retry_then_the_texts_error(
    deaths: int, code: str | None
) -> None:
    h = Harness()
    h.analyzer.die = deaths
    async with h.client() as c:
        r = await c.post("/v1/analyze", json={"texts": ["x"]}, headers=auth())
    (result,) = r.json()["results"]
    assert r.status_code == 200 and len(h.analyzer.calls) == 2
    assert (result.get("error") or {}).get("code") == code
