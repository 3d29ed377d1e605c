"""/healthz and /readyz: WorkerHealth's answers, and the HTTP endpoints that serve them."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from streams.operations.health import LoopLagProbe, WorkerHealth
from streams.operations.http_server import build_app
from streams.operations.metrics import WorkerMetrics


class Conditions:
    """The facts readiness depends on, switchable by the tests."""

    def __init__(self) -> None:
        self.analyzers = True
        self.assigned = 2
        self.stuck: list[str] = []
        self.broker = True


def make_health(c: Conditions, probe: LoopLagProbe | None = None) -> WorkerHealth:
    return WorkerHealth(
        probe=probe or LoopLagProbe(),
        analyzers_ready=lambda: c.analyzers,
        assigned_partitions=lambda: c.assigned,
        stuck_partitions=lambda: list(c.stuck),
        broker_connected=lambda: c.broker,
    )


def test_ready_when_everything_holds() -> None:
    status = make_health(Conditions()).readiness()
    assert status == {
        "ok": True,
        "reasons": [],
        "assigned_partitions": 2,
        "stuck_partitions": [],
        "broker_connected": True,
    }


def test_each_failing_condition_is_named() -> None:
    c = Conditions()
    health = make_health(c)
    c.stuck = ["content.raw[3]"]
    status = health.readiness()
    assert not status["ok"]
    assert status["reasons"] == ["stuck partitions: content.raw[3]"]
    assert status["stuck_partitions"] == ["content.raw[3]"]

    c.stuck = []
    c.broker = False
    c.analyzers = False
    c.assigned = 0
    assert health.readiness()["reasons"] == [
        "Kafka not reachable",
        "analyzers not loaded",
        "no partitions assigned",
    ]


def test_broker_check_is_optional() -> None:
    c = Conditions()
    c.broker = False
    assert make_health(c).readiness()["reasons"] == ["Kafka not reachable"]
    health = WorkerHealth(
        probe=LoopLagProbe(),
        analyzers_ready=lambda: c.analyzers,
        assigned_partitions=lambda: c.assigned,
        stuck_partitions=lambda: list(c.stuck),
    )
    assert health.readiness()["ok"]
    assert health.readiness()["broker_connected"] is None


async def test_liveness_follows_the_event_loop_probe() -> None:
    probe = LoopLagProbe(interval_s=0.01)
    health = make_health(Conditions(), probe)
    probe.start()
    try:
        await asyncio.sleep(0.05)
        assert health.liveness()["ok"]
        # A loop blocked longer than the allowed silence: the probe cannot run.
        probe.last_run = time.monotonic() - 10
        probe.stop()
        assert not health.liveness()["ok"]
    finally:
        probe.stop()


def lagging_metrics() -> WorkerMetrics:
    metrics = WorkerMetrics()
    metrics.consumer_lag.labels(topic="content.raw", partition="0").set(7)
    return metrics


async def test_http_endpoints() -> None:
    c = Conditions()
    client = TestClient(TestServer(build_app(lagging_metrics(), make_health(c))))
    await client.start_server()
    try:
        resp = await client.get("/healthz")
        assert resp.status == 200
        resp = await client.get("/readyz")
        assert resp.status == 200
        assert (await resp.json())["ok"] is True

        c.stuck = ["content.raw[0]"]
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["reasons"] == ["stuck partitions: content.raw[0]"]
        # Liveness does not depend on readiness: a stuck worker is not restarted for it.
        assert (await client.get("/healthz")).status == 200

        resp = await client.get("/metrics")
        body = await resp.text()
        assert 'contentstream_consumer_lag_events{partition="0",topic="content.raw"} 7.0' in body
    finally:
        await client.close()
