"""`contentstream api` on the real broker and Redis, next to real workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from services import ServiceEndpoints
from worker_harness import (
    REPO_ROOT,
    RedisServer,
    StreamSetup,
    WorkerProcess,
    consume,
    free_port,
)

from schemas.results import AnalysisResult
from streams.api import hash_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEY_A = "integration-key-acme"
KEY_B = "integration-key-globex"


class ApiProcess:
    def __init__(self, setup: StreamSetup, log_path: Path, keys: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._env = setup.env(
            CONTENTSTREAM_API_PORT=str(self.port),
            CONTENTSTREAM_API_KEYS_FILE=str(keys),
            CONTENTSTREAM_POOL_STANDBY_PROCESSES="0",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "api"],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"api exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"api not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if hasattr(self, "_log"):
            self._log.close()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    # Tenant names unique per run: quota and dedup state in the shared Redis outlive it.
    suffix = uuid.uuid4().hex[:12]
    path.write_text(
        orjson.dumps(
            {
                "keys": {
                    hash_key(KEY_A): {"tenant": f"acme-{suffix}"},
                    hash_key(KEY_B): {
                        "tenant": f"globex-{suffix}",
                        "requests_per_s": 20,
                        "texts_per_s": 10_000,
                    },
                }
            }
        ).decode()
    )
    return path


@pytest.fixture
def started() -> Iterator[list[Any]]:
    processes: list[Any] = []
    yield processes
    for p in processes:
        p.stop() if isinstance(p, ApiProcess) else p.stop_quietly()


def start_api(
    setup: StreamSetup, tmp_path: Path, keys: Path, started: list[Any], **env: str
) -> ApiProcess:
    api = ApiProcess(setup, tmp_path / f"api-{len(started)}.log", keys, **env).start()
    started.append(api)
    return api


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tenant_of(keys: Path, key: str) -> str:
    return str(orjson.loads(keys.read_bytes())["keys"][hash_key(key)]["tenant"])


async def test_analyze_events_worker_dedup_and_auth(
    services: ServiceEndpoints, tmp_path: Path, keys_file: Path, started: list[Any]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    await setup.create_topics()
    api = start_api(setup, tmp_path, keys_file, started)
    worker = WorkerProcess(setup, tmp_path / "worker.log").start()
    started.append(worker)
    api.wait_ready()
    worker.wait_ready()
    tenant = tenant_of(keys_file, KEY_A)
    run = uuid.uuid4().hex[:8]
    stream_text = f"这家餐厅的菜很好吃，服务也很周到。{run}"
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as c:
        one = await c.post(
            "/v1/analyze", json={"text": "Great value, fast shipping."}, headers=auth()
        )
        batch = await c.post(
            "/v1/analyze",
            json={
                "texts": ["北京市政府今天宣布新建三所中学。", {"id": "b", "text": " "}, "Awful."]
            },
            headers=auth(),
        )
        assert one.status_code == 200, one.text
        result = AnalysisResult.model_validate(one.json()["results"][0])
        assert result.tenant == tenant and result.sentiment is not None
        results = batch.json()["results"]
        assert [r.get("id") for r in results] == [0, "b", 2]
        assert results[1]["error"]["code"] == "EMPTY_TEXT"
        assert results[0]["language"] == "zh" and results[2]["language"] == "en"

        # An event through /v1/events comes out of the output topic, analysed by a worker.
        sent = await c.post(
            "/v1/events", json={"id": "via-http", "text": stream_text}, headers=auth()
        )
        assert sent.status_code == 202, sent.text
        placed = sent.json()["accepted"][0]
        assert placed["id"] == "via-http" and placed["offset"] >= 0
        out = await consume(setup.bootstrap, setup.output_topic, expect=1, timeout=60)
        analysed = orjson.loads(out[0].value)
        assert analysed["id"] == "via-http" and analysed["tenant"] == tenant

        # The worker's analysis is a dedup hit over HTTP (same tenant, same text).
        await asyncio.sleep(0.5)  # the worker stores it once Kafka acknowledged the result
        hit = await c.post("/v1/analyze", json={"text": stream_text, "id": "h"}, headers=auth())
        reused = hit.json()["results"][0]
        assert reused["duplicate_of"] == "via-http" and reused["id"] == "h"
        assert reused["sentiment"] == analysed["sentiment"]
        other = await c.post("/v1/analyze", json={"text": stream_text}, headers=auth(KEY_B))
        assert other.json()["results"][0]["duplicate_of"] is None

        # And the other way: a text analysed over HTTP is a dedup hit for the worker.
        http_text = f"Shipping was fast and the box was intact. {run}"
        first = await c.post("/v1/analyze", json={"text": http_text, "id": "h0"}, headers=auth())
        assert first.json()["results"][0]["duplicate_of"] is None
        again = await c.post(
            "/v1/events", json={"id": "via-stream", "text": http_text}, headers=auth()
        )
        assert again.status_code == 202
        out = await consume(setup.bootstrap, setup.output_topic, expect=2, timeout=60)
        by_id = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in out}
        assert by_id["via-stream"]["duplicate_of"] == "h0"

        # Who may call.
        no_key = await c.post("/v1/analyze", json={"text": "x"})
        wrong = await c.post("/v1/analyze", json={"text": "x"}, headers=auth("guess"))
        foreign = await c.post(
            "/v1/events",
            json={"id": 1, "text": "x", "tenant": tenant_of(keys_file, KEY_B)},
            headers=auth(),
        )
        assert (no_key.status_code, wrong.status_code, foreign.status_code) == (401, 401, 403)
        metrics = (await c.get("/metrics")).text
    assert KEY_A not in metrics and KEY_A not in api.log()
    assert f'tenant="{tenant}"' in metrics


async def test_bad_bodies_answer_4xx_and_the_server_keeps_serving(
    services: ServiceEndpoints, tmp_path: Path, keys_file: Path, started: list[Any]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    api = start_api(setup, tmp_path, keys_file, started, CONTENTSTREAM_API_MAX_TEXTS="256")
    api.wait_ready()
    json_headers = {**auth(), "Content-Type": "application/json"}
    cases: list[tuple[bytes, int, str]] = [
        (b"not json at all", 400, "INVALID_JSON"),
        (b'{"text": "caf\xe9"}', 400, "INVALID_UTF8"),
        (b'{"text": "' + b"a" * (20 * 1024 * 1024) + b'"}', 413, "PAYLOAD_TOO_LARGE"),
        (b'{"text": ["not", "a", "string"]}', 422, "INVALID_EVENT"),
        (b'{"texts": {"a": 1}}', 422, "INVALID_EVENT"),
        (orjson.dumps({"texts": ["t"] * 10_000}), 413, "PAYLOAD_TOO_LARGE"),
    ]
    event_cases: list[tuple[bytes, int, str]] = [
        (b"[{not json", 400, "INVALID_JSON"),
        (b'{"id": "1", "text": "caf\xe9"}', 400, "INVALID_UTF8"),
        (b'[{"id": "1", "text": "' + b"a" * (20 * 1024 * 1024) + b'"}]', 413, "PAYLOAD_TOO_LARGE"),
        (b'{"id": {"a": 1}, "text": "x"}', 422, "INVALID_EVENT"),
        (b'{"id": "1", "text": "x", "produced_at": 0}', 422, "INVALID_EVENT"),
        (orjson.dumps([{"id": i, "text": "t"} for i in range(10_000)]), 413, "PAYLOAD_TOO_LARGE"),
    ]
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as c:
        for route, route_cases in (("/v1/analyze", cases), ("/v1/events", event_cases)):
            for content, status, code in route_cases:
                r = await c.post(route, content=content, headers=json_headers)
                got = (r.status_code, r.json()["error"]["code"])
                assert got == (status, code), (route, r.text[:300])
                assert (await c.get("/healthz")).status_code == 200
            plain = await c.post(
                route, content=b"hi", headers={**auth(), "Content-Type": "text/plain"}
            )
            assert plain.status_code == 415
        ok = await c.post("/v1/analyze", json={"text": "still serving"}, headers=auth())
        assert ok.status_code == 200


async def test_two_api_processes_enforce_one_tenant_limit(
    services: ServiceEndpoints, tmp_path: Path, keys_file: Path, started: list[Any]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    apis = [start_api(setup, tmp_path, keys_file, started) for _ in range(2)]
    for api in apis:
        api.wait_ready()
    rate, burst_s, seconds = 20.0, 1.0, 10.0  # globex: 20 requests/s, a burst of 1 s
    # Open loop at 4x the limit, alternating replicas: the limit is pressed for the whole
    # burst, at a pace a loaded 2-core host keeps (a closed-loop flood would time the
    # host's scheduler more than the limit).
    offered = 4 * rate
    answers: list[tuple[float, float, int]] = []  # (sent, answered, status)

    async def one(client: httpx.AsyncClient, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        sent = time.monotonic()
        r = await client.post("/v1/analyze", json={"text": "same text"}, headers=auth(KEY_B))
        answers.append((sent, time.monotonic(), r.status_code))
        if r.status_code != 200:
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1 and "RateLimit" in r.headers

    clients = [httpx.AsyncClient(base_url=api.url, timeout=30) for api in apis]
    try:
        start = time.monotonic() + 0.2
        n = int(offered * seconds)
        await asyncio.gather(*(one(clients[i % 2], start + i / offered) for i in range(n)))
    finally:
        for c in clients:
            await c.aclose()
    allowed = [(sent, done) for sent, done, status in answers if status == 200]
    refused = len(answers) - len(allowed)
    assert refused > 0  # the limit was really pressed
    for api in apis:  # Redis answered every check: no replica fell back to its own bucket
        assert "Redis unavailable for quotas" not in api.log()
    # GCRA admits the burst at once, then one request every 1/rate, from the first check
    # to the last admitted one. Those instants are known to lie between a request's
    # sending and its answer: the limit allows between `low` and `high`.
    first_sent = min(sent for sent, _, _ in answers)
    first_answered = min(done for _, done, _ in answers)
    last_sent = max(sent for sent, _ in allowed)
    last_answered = max(done for _, done in allowed)
    low = rate * burst_s + rate * (last_sent - first_answered)
    high = rate * burst_s + rate * (last_answered - first_sent)
    assert last_sent - first_sent >= 0.9 * seconds  # admitted to the end of the burst
    assert 0.9 * low <= len(allowed) <= 1.1 * high, (len(allowed), low, high, refused)


async def test_redis_stopped_mid_test_falls_back_to_local_buckets(
    services: ServiceEndpoints, tmp_path: Path, keys_file: Path, started: list[Any]
) -> None:
    # A private Redis: the shared one must never be stopped.
    redis = RedisServer(tmp_path).start()
    try:
        setup = StreamSetup(services.kafka_bootstrap, redis.url)
        api = start_api(setup, tmp_path, keys_file, started)
        api.wait_ready()
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            before = await c.post("/v1/analyze", json={"text": "before"}, headers=auth())
            assert before.status_code == 200
            redis.stop()
            first = await c.post("/v1/analyze", json={"text": "after"}, headers=auth(KEY_B))
            assert first.status_code == 200  # answered while Redis is away
            # globex: 20/s with a burst of 20: a flood of 60 at once meets 429s, locally.
            flood = await asyncio.gather(
                *(
                    c.post("/v1/analyze", json={"text": "after"}, headers=auth(KEY_B))
                    for _ in range(60)
                )
            )
            statuses = [r.status_code for r in flood]
            assert set(statuses) <= {200, 429} and statuses.count(200) >= 10, statuses
            assert 429 in statuses
            ready = await c.get("/readyz")
            metrics = (await c.get("/metrics")).text
        assert ready.status_code == 200 and ready.json()["redis"] is False
        assert "contentstream_api_quota_local_total" in metrics
        assert "contentstream_api_quota_local_total 0.0" not in metrics
    finally:
        redis.stop()


async def test_overload_answers_503_with_retry_after_never_a_hung_request(
    services: ServiceEndpoints, tmp_path: Path, keys_file: Path, started: list[Any]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    api = start_api(
        setup,
        tmp_path,
        keys_file,
        started,
        CONTENTSTREAM_API_MAX_TEXTS_IN_FLIGHT="8",
        CONTENTSTREAM_API_TENANT_MAX_SHARE="1",
        CONTENTSTREAM_DEDUP_POLICY="off",
        CONTENTSTREAM_API_TEXTS_PER_S="100000",
        CONTENTSTREAM_API_REQUESTS_PER_S="100000",
    )
    api.wait_ready()
    text = "A long enough review of a product, with several clauses, to keep the pool busy. " * 20
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
        responses = await asyncio.gather(
            *(
                c.post("/v1/analyze", json={"texts": [f"{i} {text}"] * 8}, headers=auth())
                for i in range(24)
            )
        )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    shed = [r for r in responses if r.status_code == 503]
    assert all(r.headers["Retry-After"] == "1" for r in shed)
    assert all(r.json()["error"]["code"] == "OVERLOADED" for r in shed)
