"""Trace context and producers' headers flow through on the real broker (issue #19).

An event produced with a ``traceparent`` and an ``x-request-id`` gives a result, and a
malformed record a dead letter, carrying both: on the batch engine, on the Faust engine
and under exactly_once (the batch engine's Kafka transactions). ``contentstream replay``
puts the dead letter back on the raw topic with them. The three workers run side by
side (their start-up is most of the test's time). Two of them trace to the console
exporter: their outputs carry the trace of the producer with contentstream's event span
as parent; the third does not trace and forwards the producer's ``traceparent`` unchanged.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from services import ServiceEndpoints
from worker_harness import REPO_ROOT, StreamSetup, WorkerProcess, consume

from schemas.dead_letter import DeadLetter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01".encode()
HEADERS = [
    ("traceparent", TRACEPARENT),
    ("x-request-id", b"req-19"),
    ("authorization", b"Bearer not-forwarded"),
    ("contentstream-event-id", b"forged"),
]

# (engine, guarantee, traced)
SETUPS = [
    ("batch", "at_least_once", True),
    ("faust", "at_least_once", False),
    ("batch", "exactly_once", True),
]


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


async def produce_with_headers(setup: StreamSetup) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=setup.bootstrap, acks="all")
    await producer.start()
    try:
        good = orjson.dumps({"id": "traced-1", "text": "今天的服务很好，谢谢。"})
        await producer.send_and_wait(setup.raw_topic, value=good, key=b"k", headers=HEADERS)
        await producer.send_and_wait(setup.raw_topic, value=b'{"id": ', key=b"k", headers=HEADERS)
    finally:
        await producer.stop()


def check_headers(headers: list[tuple[str, bytes]], traced: bool) -> None:
    as_dict = dict(headers)
    names = [name for name, _ in headers]
    assert as_dict["x-request-id"] == b"req-19"
    assert "authorization" not in as_dict
    assert as_dict.get("contentstream-event-id") != b"forged"
    assert names.count("traceparent") == 1
    version, trace_id, parent, flags = as_dict["traceparent"].decode().split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    # Traced: the parent is contentstream's event span; else the producer's, untouched.
    assert (parent != PARENT) if traced else (parent == PARENT)


async def test_trace_context_and_headers_flow_through_every_engine_and_replay(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setups: list[tuple[StreamSetup, str, bool]] = []
    for engine, guarantee, traced in SETUPS:
        setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
        await setup.create_topics()
        env: dict[str, str] = {
            "CONTENTSTREAM_ENGINE": engine,
            "CONTENTSTREAM_PROCESSING_GUARANTEE": guarantee,
        }
        if traced:
            env.update(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME=setup.name)
        else:
            env["OTEL_SDK_DISABLED"] = "true"
        worker = WorkerProcess(setup, tmp_path / f"{engine}-{guarantee}.log", **env).start()
        workers.append(worker)
        setups.append((setup, guarantee, traced))
    for worker in workers:
        worker.wait_ready()
    for setup, _, _ in setups:
        await produce_with_headers(setup)

    async def outputs(setup: StreamSetup, guarantee: str) -> tuple[list[Any], list[Any]]:
        isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
        return await asyncio.gather(
            consume(setup.bootstrap, setup.output_topic, expect=1, timeout=90,
                    isolation_level=isolation),
            consume(setup.bootstrap, setup.dlq_topic, expect=1, timeout=90,
                    isolation_level=isolation),
        )  # fmt: skip

    found = await asyncio.gather(*(outputs(s, g) for s, g, _ in setups))
    for (setup, guarantee, traced), (results, letters), worker in zip(
        setups, found, workers, strict=True
    ):
        where = f"{setup.name} ({guarantee}, traced={traced}):\n{worker.log_tail()}"
        assert len(results) == 1 and len(letters) == 1, where
        result_headers = list(results[0].headers)
        check_headers(result_headers, traced)
        own = dict(result_headers)
        assert own["contentstream-event-id"] == b"traced-1"
        assert own["contentstream-schema-version"] == b"1"
        assert len(own["contentstream-analyzer-versions"]) == 16
        letter_headers = list(letters[0].headers)
        check_headers(letter_headers, traced)
        letter = DeadLetter.from_record(letters[0].value, letter_headers)
        assert letter.error_code.value == "INVALID_JSON" and letter.attempts == 1

    # Replay the batch engine's dead letter: back on the raw topic with the headers,
    # dead-lettered again (attempt 2), still carrying them.
    setup, _, traced = setups[0]
    replay = subprocess.run(
        [sys.executable, "-m", "streams", "replay", "--quiet"],
        cwd=REPO_ROOT,
        env=setup.env(),
        capture_output=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr.decode()
    raw = await consume(setup.bootstrap, setup.raw_topic, expect=3, timeout=30)
    replayed = dict(raw[2].headers)
    assert replayed["x-request-id"] == b"req-19"
    assert replayed["traceparent"].decode().split("-")[1] == TRACE_ID
    assert "contentstream-error-code" not in replayed  # the reason stays behind
    letters = await consume(setup.bootstrap, setup.dlq_topic, expect=2, timeout=90)
    assert len(letters) == 2, workers[0].log_tail()
    again = list(letters[1].headers)
    check_headers(again, traced)
    assert DeadLetter.from_record(letters[1].value, again).attempts == 2

    # The console exporter printed the spans when the worker stopped.
    assert workers[0].terminate() == 0
    log = (tmp_path / "batch-at_least_once.log").read_text(errors="replace")
    for name in ("contentstream.batch", "contentstream.event", "contentstream.publish"):
        assert f'"name": "{name}"' in log, name
    assert TRACE_ID in log
