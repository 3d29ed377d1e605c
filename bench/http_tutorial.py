"""The tutorial's HTTP service, reproduced as the baseline of bench/http_api.py.

As the seed tutorial built it: FastAPI, ``POST /analyze`` with one text, the analysis
run on a ``ThreadPoolExecutor(4)`` (threads share the GIL), a Redis result cache keyed
by the content's hash when REDIS_URL is set. Same analyzers as the worker
(``build_pipeline`` from the same settings), so only the serving design differs.
bench/http_api.py sets TUTORIAL_ANALYSIS_NICE to the API pool's niceness: the analysis
threads take it (Linux nices threads one by one), so both designs analyse at the same
priority and other load on the host favours neither.

    python bench/http_tutorial.py --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

THREADS = 4


def _analysis_priority() -> None:
    nice = int(os.environ.get("TUTORIAL_ANALYSIS_NICE", "0"))
    if nice and sys.platform == "linux":
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


def build_app() -> Any:
    import orjson

    from analyzers.pipeline import AnalysisRequest
    from streams.analysis.pipeline_factory import resolve_pipeline_factory
    from streams.settings import load_settings

    pipeline = resolve_pipeline_factory(load_settings())()
    executor = ThreadPoolExecutor(THREADS, initializer=_analysis_priority)
    cache: Any = None
    if os.environ.get("REDIS_URL"):
        import redis.asyncio as redis_asyncio

        cache = redis_asyncio.Redis.from_url(os.environ["REDIS_URL"])
    app = FastAPI()

    def analyze_one(text: str) -> bytes:
        return orjson.dumps(pipeline.analyze([AnalysisRequest(text=text)])[0].fields())

    @app.post("/analyze")
    async def analyze(request: Request) -> Response:
        body = orjson.loads(await request.body())
        text = body["text"]
        key = "tutorial:" + hashlib.sha256(text.encode()).hexdigest()
        if cache is not None:
            hit = await cache.get(key)
            if hit is not None:
                return Response(hit, media_type="application/json")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(executor, analyze_one, text)
        if cache is not None:
            await cache.set(key, result, ex=3600)
        return Response(result, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
