"""The worker's HTTP endpoints: /metrics, /healthz, /readyz.

/healthz answers "is this process alive and its event loop responsive"; /readyz answers
"should traffic/scaling count on this worker": analyzers loaded, consumer running,
partitions assigned, and no assigned partition stuck (see streams/operations/health.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.operations.health import WorkerHealth
from streams.operations.metrics import WorkerMetrics
from streams.settings import Settings

log = logging.getLogger(__name__)


def build_app(metrics: WorkerMetrics, health: WorkerHealth) -> web.Application:
    async def serve_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        status = health.liveness()
        return web.json_response(status, status=200 if status["ok"] else 503)

    async def readyz(_: web.Request) -> web.Response:
        status = health.readiness()
        return web.json_response(status, status=200 if status["ok"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@dataclass(frozen=True, slots=True)
class HttpServer:
    runner: web.AppRunner
    port: int  # the one bound (settings may ask for 0: any free port)

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_http_server(
    settings: Settings, metrics: WorkerMetrics, health: WorkerHealth
) -> HttpServer:
    runner = web.AppRunner(build_app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
    await site.start()
    addresses = runner.addresses
    port = int(addresses[0][1]) if addresses else settings.web_port
    log.info("serving /metrics /healthz /readyz on http://%s:%d", settings.web_host, port)
    return HttpServer(runner, port)
