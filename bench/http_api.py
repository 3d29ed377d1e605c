"""The HTTP API under load on loopback, side by side with its limits and the tutorial.

    python bench/http_api.py --output bench/results/http.json [--quick]

In one run, on the same corpus (texts made unique, so nothing is a dedup hit):
1. analysis-only limit: the analyzer pool alone, batches of 32 (AnalysisPool.run);
2. ``contentstream api``, ``POST /v1/analyze`` with batches of 32, closed loop: texts/s;
3. the tutorial's design (bench/http_tutorial.py): one text per request, thread-pool
   analysis, Redis cache: texts/s, closed loop;
   1-3 in interleaved rounds, each figure the best of its rounds: a host shared with
   other work slows whichever phase a burst of it meets, and the best of each is what
   each design does on the host when left alone (every round is in the report);
4. the API with one text per request: the saturated rate (closed loop), then latency
   (p50/p99) at 50 % of it, open loop (requests sent on a fixed schedule);
5. the analysis-only limit again, after the HTTP phases.
The API runs with dedup off and quotas far above the load; its pool has as many
processes as a worker would (CONTENTSTREAM_POOL_PROCESSES). Every design analyses at the
same scheduling priority, the API pool's (CONTENTSTREAM_POOL_NICE): the analysis-only
pool is built with it and the tutorial's analysis threads take it, so other load on the
host cannot favour one design. Each phase is bounded in requests and in time. The load
generator (aiohttp's client, lighter per request than httpx's) shares the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import REPO_ROOT, load_corpus, numbered_texts
from bench.transport import bench_redis_url, window_rate

KEY = "bench-http-key"
BATCH = 32
PHASE_LIMIT_S = 60.0
ROUNDS = 3
TUTORIAL_CACHE_KEYS = "tutorial:*"  # bench/http_tutorial.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Server:
    def __init__(self, args: list[str], port: int, env: dict[str, str], ready_path: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._ready = ready_path
        self.log = tempfile.NamedTemporaryFile(prefix="bench-http-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    async def wait_ready(self, timeout_s: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + self._ready, timeout=1.0)).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError("server not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


async def analysis_pool() -> Any:
    """The analyzer pool alone, as the API's is sized and prioritised (warm)."""
    from streams.analysis.pipeline_factory import resolve_pipeline_factory
    from streams.analysis.pool import AnalysisPool
    from streams.settings import load_settings

    settings = load_settings()
    pool = AnalysisPool(
        resolve_pipeline_factory(settings),
        processes=settings.effective_pool_processes,
        queue_depth=settings.pool_queue_depth,
        nice=settings.pool_nice,
    )
    await pool.start()
    return pool


async def analysis_only(pool: Any, texts: list[str]) -> dict[str, Any]:
    from analyzers.pipeline import AnalysisRequest

    await pool.run([AnalysisRequest(text=t) for t in texts[:BATCH]], 60)  # warm-up
    done: list[float] = []

    async def run(batch: list[str]) -> None:
        await pool.run([AnalysisRequest(text=t) for t in batch], 120)
        done.extend([time.perf_counter()] * len(batch))

    await asyncio.wait_for(
        asyncio.gather(*(run(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH))),
        PHASE_LIMIT_S * 3,
    )
    return {"texts": len(texts), "texts_per_s": round(window_rate(done), 1)}


async def closed_loop(
    url: str, bodies: list[bytes], concurrency: int, per_request: int, headers: dict[str, str]
) -> dict[str, Any]:
    import aiohttp

    done: list[float] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    stop_at = time.monotonic() + PHASE_LIMIT_S
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            while queue and time.monotonic() < stop_at:
                body = queue.pop()
                started = time.perf_counter()
                async with client.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
                now = time.perf_counter()
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(now - started)
                    done.extend([now] * per_request)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in statuses.items()},
        "texts_per_s": round(window_rate(done), 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


async def open_loop(
    url: str, bodies: list[bytes], rate: float, headers: dict[str, str]
) -> dict[str, Any]:
    """Requests sent on a fixed schedule (not when the previous one returns), so a slow
    answer cannot hide the queueing it causes."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    interval = 1.0 / rate
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            async with client.post(url, data=body, headers=headers) as r:
                await r.read()
                status = r.status
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(body)))
        await asyncio.wait_for(asyncio.gather(*tasks), PHASE_LIMIT_S)
    return {
        "requests": len(bodies),
        "rate_per_s": round(rate, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


async def clear_tutorial_cache(redis_url: str | None) -> int:
    """Delete the tutorial's cached answers (the benchmark's own Redis database): the
    corpus slices are the same from run to run, and a cache left by an earlier run
    answered the tutorial's "misses" from Redis, flattering it up to ten times."""
    if not redis_url:
        return 0
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=TUTORIAL_CACHE_KEYS, count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
    finally:
        await client.aclose()
    return len(keys)


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the highest rate, with every round's rate beside it."""
    top = max(rounds, key=lambda r: r["texts_per_s"] if not math.isnan(r["texts_per_s"]) else -1)
    return {**top, "rounds_texts_per_s": [r["texts_per_s"] for r in rounds]}


async def run(quick: bool) -> dict[str, Any]:
    from streams.api import hash_key
    from streams.settings import load_settings

    corpus = load_corpus(quick=True)
    scale = 1 if quick else 4
    texts = numbered_texts(corpus.texts, 20_000 * scale)
    cursor = 0

    def take(n: int) -> list[str]:
        nonlocal cursor
        out = texts[cursor : cursor + n]
        cursor += n
        return out

    report: dict[str, Any] = {"corpus": corpus.describe(), "batch": BATCH, "rounds": ROUNDS}
    nice = load_settings().pool_nice
    keys = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
    keys.write(orjson.dumps({hash_key(KEY): {"tenant": "bench"}}).decode())
    keys.close()
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # quotas on local buckets; dedup off below
    port = free_port()
    env.update(
        {
            "CONTENTSTREAM_API_PORT": str(port),
            "CONTENTSTREAM_API_KEYS_FILE": keys.name,
            "CONTENTSTREAM_DEDUP_POLICY": "off",
            "CONTENTSTREAM_API_REQUESTS_PER_S": "1000000",
            "CONTENTSTREAM_API_TEXTS_PER_S": "10000000",
            "CONTENTSTREAM_API_MAX_TEXTS_IN_FLIGHT": "100000",
            "CONTENTSTREAM_API_TENANT_MAX_SHARE": "1",
            "CONTENTSTREAM_API_REQUEST_TIMEOUT_S": "120",
            "CONTENTSTREAM_POOL_STANDBY_PROCESSES": "0",
            "CONTENTSTREAM_LOG_LEVEL": "WARNING",
            "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9"),
        }
    )
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    api = Server(["-m", "streams", "api"], port, env, "/readyz")
    tutorial_port = free_port()
    tutorial_env = {**os.environ, "TUTORIAL_ANALYSIS_NICE": str(nice)}
    redis = bench_redis_url(os.environ.get("REDIS_URL"))
    if redis:  # the benchmark's own database, never another's
        tutorial_env["REDIS_URL"] = redis
    tutorial = Server(
        [str(REPO_ROOT / "bench" / "http_tutorial.py"), "--port", str(tutorial_port)],
        tutorial_port,
        tutorial_env,
        "/health",
    )
    report["tutorial_cache_cleared"] = await clear_tutorial_cache(redis)
    pool = await analysis_pool()
    try:
        await asyncio.gather(api.wait_ready(), tutorial.wait_ready())
        url = api.url + "/v1/analyze"
        tutorial_url = tutorial.url + "/analyze"
        json_only = {"Content-Type": JSON}

        def batch_bodies(n: int) -> list[bytes]:
            batch_texts = take(n)
            return [
                orjson.dumps({"texts": batch_texts[i : i + BATCH]})
                for i in range(0, len(batch_texts), BATCH)
            ]

        def single_bodies(n: int) -> list[bytes]:
            return [orjson.dumps({"text": t}) for t in take(n)]

        await closed_loop(url, batch_bodies(2 * BATCH), 2, BATCH, headers)  # warm-up
        await closed_loop(tutorial_url, single_bodies(16), 4, 1, json_only)  # warm-up
        # Sizes: a second or two per phase at this host's rates (quick), four times that.
        limits, batches, tutorials = [], [], []
        for _ in range(ROUNDS):
            limits.append(await analysis_only(pool, take(2048 * scale)))
            batches.append(await closed_loop(url, batch_bodies(2048 * scale), 8, BATCH, headers))
            tutorials.append(
                await closed_loop(tutorial_url, single_bodies(256 * scale), 16, 1, json_only)
            )
        report["analysis_only"] = best(limits)
        report["api_batches"] = best(batches)
        report["tutorial"] = best(tutorials)
        saturated = await closed_loop(url, single_bodies(600 * scale), 16, 1, headers)
        report["api_single_saturated"] = saturated
        half = max(1.0, saturated["texts_per_s"] / 2)
        count = min(int(half * 10 * scale), 3000)
        report["api_single_at_50%"] = await open_loop(url, single_bodies(count), half, headers)
        # The limit again, after the HTTP phases: the host's speed drifts (other load),
        # and the ratio is taken against the faster of the two.
        report["analysis_only_after"] = await analysis_only(pool, take(2048 * scale))
    finally:
        api.stop()
        tutorial.stop()
        await pool.close()
        os.unlink(keys.name)
    limit = max(
        report["analysis_only"]["texts_per_s"], report["analysis_only_after"]["texts_per_s"]
    )
    batches_rate = report["api_batches"]["texts_per_s"]
    report["targets"] = {
        "api batches of 32 / analysis-only limit >= 0.8": ratio(batches_rate, limit),
        "api single text p99 at 50% of saturation (ms) <= 50": report["api_single_at_50%"][
            "p99_ms"
        ],
        "api batches of 32 / tutorial design >= 5": ratio(
            batches_rate, report["tutorial"]["texts_per_s"]
        ),
    }
    return report


JSON = "application/json"


def ratio(a: float, b: float) -> float | None:
    if not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(run(args.quick))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
