"""/readyz turns unready when a partition is stuck, and ready again when it moves.

The partition is made stuck for real: the output topic stops accepting results (its
``max.message.bytes`` is set below the size of any result), so the worker can finish
none of the events of that partition and its committed offset cannot move while the
lag is above zero. Restoring the topic's limit lets the worker's retries through.
/healthz must stay 200 all along: a stuck partition is no reason to restart a worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from services import ServiceEndpoints
from worker_harness import StreamSetup, WorkerProcess, event, set_max_message_bytes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OPEN_LIMIT = str(16 * 1024 * 1024)
CLOSED_LIMIT = "100"  # bytes: smaller than any AnalysisResult


async def produce_to_partition(
    bootstrap: str, topic: str, partition: int, values: list[bytes]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


@pytest.fixture
def worker_slot() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


def readiness(worker: WorkerProcess) -> tuple[int, dict[str, object]]:
    status, body = worker.get("/readyz")
    return status, orjson.loads(body)


def wait_for_readiness(
    worker: WorkerProcess, want_ready: bool, timeout: float, health_checks: list[int]
) -> dict[str, object]:
    """Poll /readyz until it says ``want_ready``; /healthz is sampled on every poll."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        health_checks.append(worker.get("/healthz")[0])
        status, body = readiness(worker)
        if (status == 200) == want_ready:
            return body
        time.sleep(0.5)
    raise AssertionError(f"/readyz still {body} after {timeout}s:\n{worker.log_tail()}")


async def test_stuck_partition_makes_the_worker_unready_until_it_moves(
    services: ServiceEndpoints, tmp_path: Path, worker_slot: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=2)
    await setup.create_topics()
    worker = WorkerProcess(
        setup,
        tmp_path / "worker.log",
        CONTENTSTREAM_STUCK_PARTITION_S="3",
        CONTENTSTREAM_DEDUP_POLICY="off",
        # The output topic is closed for a while below: results wait for it to open.
        CONTENTSTREAM_REFUSED_RECORD_GRACE_S="600",
    ).start()
    worker_slot.append(worker)
    worker.wait_ready()
    health_checks: list[int] = []
    status, body = readiness(worker)
    assert status == 200 and body["assigned_partitions"] == 2, body

    await set_max_message_bytes(setup.bootstrap, setup.output_topic, CLOSED_LIMIT)
    values = [event(f"s-{i}", f"Stuck partition test event {i}.") for i in range(5)]
    await produce_to_partition(setup.bootstrap, setup.raw_topic, 0, values)

    started = time.monotonic()
    body = wait_for_readiness(worker, want_ready=False, timeout=30, health_checks=health_checks)
    became_unready_after = time.monotonic() - started
    assert body["stuck_partitions"] == [f"{setup.raw_topic}[0]"], body
    assert body["reasons"] == [f"stuck partitions: {setup.raw_topic}[0]"], body
    # Not before the threshold: the lag alone is no reason to be unready.
    assert became_unready_after >= 2.5, became_unready_after
    _, metrics = worker.get("/metrics")
    text = metrics.decode()
    stuck0 = f'contentstream_partition_stuck{{partition="0",topic="{setup.raw_topic}"}} 1.0'
    stuck1 = f'contentstream_partition_stuck{{partition="1",topic="{setup.raw_topic}"}} 0.0'
    lag0 = f'contentstream_consumer_lag_events{{partition="0",topic="{setup.raw_topic}"}} 5.0'
    assert stuck0 in text and stuck1 in text and lag0 in text, text

    await set_max_message_bytes(setup.bootstrap, setup.output_topic, OPEN_LIMIT)
    body = wait_for_readiness(worker, want_ready=True, timeout=60, health_checks=health_checks)
    assert body["stuck_partitions"] == [] and body["broker_connected"] is True, body
    _, metrics = worker.get("/metrics")
    assert f'contentstream_committed_offset{{partition="0",topic="{setup.raw_topic}"}} 5.0' in (
        metrics.decode()
    )

    assert health_checks and set(health_checks) == {200}, health_checks
    assert worker.terminate() == 0, worker.log_tail()

    # One format for the whole process (CONTENTSTREAM_LOG_FORMAT=json), Faust's and
    # aiokafka's lines included, from the moment the worker re-applies its logging
    # configuration after Faust's Worker replaced it (streams/operations/logging_setup.py).
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if "analyzer process(es)" in line)
    not_json = []
    for line in lines[first:]:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            not_json.append(line)
    assert not not_json, "\n".join(not_json[:20])
    loggers = {orjson.loads(line).get("logger") for line in lines[first:]}
    assert "streams.operations.lag_monitor" in loggers  # "partition ... stuck" was logged
