"""The worker's HTTP endpoints: /metrics, /healthz, /readyz.

/healthz answers "is this process alive and its event loop responsive"; /readyz answers
"should traffic/scaling count on this worker": analyzers loaded, consumer running,
partitions assigned, and no assigned partition stuck (see streams/operations/health.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from streams.worker import ContentWorker

log = logging.getLogger(__name__)


def build_app(worker: ContentWorker) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(worker.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        status = worker.health.liveness()
        return web.json_response(status, status=200 if status["ok"] else 503)

    async def readyz(_: web.Request) -> web.Response:
        status = worker.health.readiness()
        return web.json_response(status, status=200 if status["ok"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http_server(worker: ContentWorker) -> Any:
    runner = web.AppRunner(build_app(worker), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, worker.settings.web_host, worker.settings.web_port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else worker.settings.web_port
    worker.web_port = port
    log.info("serving /metrics /healthz /readyz on http://%s:%d", worker.settings.web_host, port)
    return runner
