"""Hostile records on the real broker, both engines (issue #15): a deep-metadata event
and a malformed record with forged ``contentstream-*`` headers among 1,000 good events
cost one dead letter each, the worker stays up and commits past them; tenants never see
each other's analyses, and a whitespace variant of a text gets offsets into itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from services import ServiceEndpoints
from worker_harness import StreamSetup, WorkerProcess, consume, event, produce

from schemas.dead_letter import DeadLetter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GOOD = 1000
FORGED = [
    ("contentstream-source-topic", b"\xff\xfeother"),
    ("contentstream-source-partition", b"x"),
    ("contentstream-source-offset", b"-1"),
    ("contentstream-attempts", b"-5"),
    ("contentstream-first-seen", b"\xc3\x28"),
]
TEXT = "我们在北京的订单已经发货，上海的客户也收到了。"


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


def deep_event(depth: int) -> bytes:
    head = orjson.dumps({"id": "deep", "text": "元数据很深的事件。"})[:-1]
    return head + b', "metadata": ' + b'{"a": ' * (depth - 1) + b"{}" + b"}" * depth


async def produce_with_headers(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=b"forged", headers=FORGED)
    finally:
        await producer.stop()


async def committed_total(setup: StreamSetup) -> int:
    tps = [TopicPartition(setup.raw_topic, p) for p in range(setup.partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(setup.name, partitions=tps)
    finally:
        await admin.close()
    return sum(max(0, m.offset) for m in committed.values() if m is not None)


async def wait_committed(setup: StreamSetup, total: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = await committed_total(setup)
        if seen >= total:
            return seen
        await asyncio.sleep(0.5)
    return seen


async def results_by_id(setup: StreamSetup, expect: int, timeout: float = 120) -> dict[str, Any]:
    records = await consume(setup.bootstrap, setup.output_topic, expect=expect, timeout=timeout)
    return {orjson.loads(r.value)["id"]: r.value for r in records}


@pytest.mark.parametrize("engine", ["batch", "faust"])
async def test_hostile_records_cost_one_dead_letter_each_and_tenants_stay_apart(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], engine: str
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=2)
    await setup.create_topics()
    worker = WorkerProcess(setup, tmp_path / "worker.log", CONTENTSTREAM_ENGINE=engine).start()
    workers.append(worker)
    worker.wait_ready()

    # 1,000 good events with a deep-metadata event and a forged-header malformed
    # record in the middle of them, on the same partitions.
    good = [event(f"g{i}", f"第{i}条评论：服务很好，下次还来。") for i in range(GOOD)]
    await produce(setup.bootstrap, setup.raw_topic, good[:500])
    await produce(setup.bootstrap, setup.raw_topic, [deep_event(300)], keys=[b"deep"])
    await produce_with_headers(setup.bootstrap, setup.raw_topic, b'{"id": "forged", "text": ')
    await produce(setup.bootstrap, setup.raw_topic, good[500:])

    letters = await consume(setup.bootstrap, setup.dlq_topic, expect=2, timeout=180)
    results = await consume(
        setup.bootstrap, setup.output_topic, expect=GOOD, timeout=240, idle_after_expect=1.0
    )
    assert len(results) == GOOD, worker.log_tail()
    assert {orjson.loads(r.value)["id"] for r in results} == {f"g{i}" for i in range(GOOD)}
    assert len(letters) == 2
    by_code = {}
    for record in letters:
        letter = DeadLetter.from_record(record.value, list(record.headers))
        by_code[letter.error_code.value] = letter
    assert set(by_code) == {"METADATA_TOO_LARGE", "INVALID_JSON"}
    forged = by_code["INVALID_JSON"]
    assert forged.source_topic == setup.raw_topic and forged.attempts == 1
    assert forged.source_partition >= 0 and forged.source_offset >= 0
    assert by_code["METADATA_TOO_LARGE"].event_id == "deep"

    assert worker.proc is not None and worker.proc.poll() is None, "the worker stays up"
    assert worker.get("/healthz")[0] == 200
    committed = await wait_committed(setup, GOOD + 2, timeout=30)
    assert committed == GOOD + 2, "offsets committed past the hostile records"

    # Tenants: A's text first, then the same text from B, and A's whitespace variant.
    # (Tenant names of this run only: Redis keeps analyses across runs.)
    tenant_a, tenant_b = f"{setup.name}-A", f"{setup.name}-B"
    await produce(
        setup.bootstrap,
        setup.raw_topic,
        [orjson.dumps({"id": "tenantA-secret-order-991", "tenant": tenant_a, "text": TEXT})],
    )
    await consume(setup.bootstrap, setup.output_topic, expect=GOOD + 1, timeout=60)
    variant = "   " + TEXT.replace("，", "，  ")
    await produce(
        setup.bootstrap,
        setup.raw_topic,
        [
            orjson.dumps({"id": "b-1", "tenant": tenant_b, "text": TEXT}),
            orjson.dumps({"id": "a-2", "tenant": tenant_a, "text": variant}),
        ],
    )
    found = await results_by_id(setup, GOOD + 3)
    b_raw = found["b-1"]
    assert b"tenantA" not in b_raw, b_raw
    b = orjson.loads(b_raw)
    assert b["tenant"] == tenant_b and b["duplicate_of"] is None
    a2 = orjson.loads(found["a-2"])
    assert a2["entities"], a2
    for entity in a2["entities"]:
        assert variant[entity["start"] : entity["end"]] == entity["text"], entity
    assert worker.proc.poll() is None
