"""Stream semantics on the real broker: crashes, rebalances, dedup, Redis outages,
exactly-once, hung analyses and a responsive event loop."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from services import ServiceEndpoints
from worker_harness import (
    REPO_ROOT,
    RedisServer,
    StreamSetup,
    WorkerProcess,
    consume,
    event,
    metric_value,
    produce,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SUPPORT = str(REPO_ROOT / "tests" / "support")
TIMING_FIELDS = {"timings_ms", "processed_at"}
BASE_TEXTS = [
    "这家酒店的早餐很丰富，房间也很安静。",
    "物流很快，但是包装有点破损。",
    "The update made the app slower and it crashes on start.",
    "上海市今天发布了新的交通管理办法。",
    "I love the new design, it is clean and fast.",
    "客服态度很差，问题一直没有解决。",
]


def text(i: int) -> str:
    return f"{BASE_TEXTS[i % len(BASE_TEXTS)]} 编号{i}"


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


def start(setup: StreamSetup, tmp: Path, workers: list[WorkerProcess], **env: str) -> WorkerProcess:
    w = WorkerProcess(setup, tmp / f"worker-{len(workers)}.log", **env).start()
    workers.append(w)
    w.wait_ready()
    return w


async def wait_for_results(setup: StreamSetup, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await consume(setup.bootstrap, setup.output_topic, expect=n, timeout=2)
        if len(got) >= n:
            return
    raise AssertionError(f"fewer than {n} results after {timeout}s")


def strip_timing(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in TIMING_FIELDS}


async def test_kill_9_mid_run_loses_nothing(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None)
    await setup.create_topics()
    n = 20_000
    env = {"CONTENTSTREAM_DEDUP_POLICY": "off", "CONTENTSTREAM_IN_FLIGHT_LIMIT": "256"}
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    first = start(setup, tmp_path, workers, **env)
    await wait_for_results(setup, n // 4, timeout=300)
    first.kill()  # SIGKILL: no drain, no final commit
    start(setup, tmp_path, workers, **env)
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=n, timeout=600, idle_after_expect=5
    )
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        result = orjson.loads(r.value)
        by_id[result["id"]].append(result)
    missing = {str(i) for i in range(n)} - set(by_id)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
    duplicates = sum(len(v) - 1 for v in by_id.values())
    print(f"\nkill -9 after {n // 4}+ results: {duplicates} duplicate results of {n} events")
    for results in by_id.values():
        for again in results[1:]:
            assert strip_timing(again) == strip_timing(results[0])


async def test_two_workers_one_restarted_mid_run(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=4)
    await setup.create_topics()
    n = 20_000
    a = start(setup, tmp_path, workers)
    start(setup, tmp_path, workers)
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    await wait_for_results(setup, n // 5, timeout=300)
    assert a.terminate() == 0, a.log_tail()
    start(setup, tmp_path, workers)
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=n, timeout=600, idle_after_expect=3
    )
    ids = {orjson.loads(r.value)["id"] for r in records}
    assert ids == {str(i) for i in range(n)}
    print(f"\ntwo workers, one restarted: {len(records) - n} duplicate results of {n}")


async def test_events_of_aborted_upstream_transactions_are_never_analysed(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    start(setup, tmp_path, workers)
    producer = AIOKafkaProducer(
        bootstrap_servers=setup.bootstrap, transactional_id=f"{setup.name}-upstream"
    )
    await producer.start()
    try:
        for round_ in range(3):
            await producer.begin_transaction()
            for i in range(4):
                await producer.send(setup.raw_topic, event(f"aborted-{round_}-{i}", text(i)))
            await producer.abort_transaction()
            async with producer.transaction():
                for i in range(4):
                    await producer.send(setup.raw_topic, event(f"kept-{round_}-{i}", text(i)))
    finally:
        await producer.stop()
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=12, timeout=120, idle_after_expect=3
    )
    ids = sorted(orjson.loads(r.value)["id"] for r in records)
    assert ids == sorted(f"kept-{r}-{i}" for r in range(3) for i in range(4)), workers[0].log_tail()


@pytest.mark.parametrize("engine", ["batch", "faust"])
async def test_a_new_group_set_to_latest_skips_the_history(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], engine: str
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    history = [event(f"old-{i}", text(i)) for i in range(20)]
    await produce(setup.bootstrap, setup.raw_topic, history)
    start(setup, tmp_path, workers, KAFKA_AUTO_OFFSET_RESET="latest", CONTENTSTREAM_ENGINE=engine)
    # Readiness means partitions are assigned; the reset to the end may still be on its
    # way, so new events go in one at a time until one comes out.
    seen: set[str] = set()
    for i in range(30):
        await produce(setup.bootstrap, setup.raw_topic, [event(f"new-{i}", text(i))])
        records = await consume(setup.bootstrap, setup.output_topic, expect=1, timeout=2)
        seen = {orjson.loads(r.value)["id"] for r in records}
        if seen:
            break
    records = await consume(setup.bootstrap, setup.output_topic, expect=len(seen) + 1, timeout=3)
    ids = {orjson.loads(r.value)["id"] for r in records}
    assert ids, workers[0].log_tail()
    assert all(i.startswith("new-") for i in ids), sorted(ids)


async def test_repeated_texts_cost_no_analysis(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    await setup.create_topics()
    w = start(setup, tmp_path, workers)
    unique = 5_000
    # Texts of their own: Redis is shared by the session's tests.
    salt = setup.name
    values = [event(f"u{i}", f"{salt} {text(i)}") for i in range(unique)]
    # Each repeat follows its original by a while, interleaved with other events.
    values += [event(f"r{i}", f"{salt} {text(i)}") for i in range(unique)]
    await produce(setup.bootstrap, setup.raw_topic, values)
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=2 * unique, timeout=600, idle_after_expect=2
    )
    results = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in records}
    assert len(results) == 2 * unique
    analyzed = metric_value(w, "contentstream_analyzer_events_total")
    hits = metric_value(w, "contentstream_dedup_hits_total")
    print(f"\n{2 * unique} events, {unique} distinct texts: {analyzed:.0f} analyzer calls")
    assert analyzed == unique
    assert hits == unique
    for i in range(unique):
        # The two events of a text are on different partitions (keyed by id), and Kafka
        # orders nothing across partitions: either may be the one analysed.
        pair = [results[f"u{i}"], results[f"r{i}"]]
        first, repeat = sorted(pair, key=lambda r: r["duplicate_of"] is not None)
        assert first["duplicate_of"] is None
        assert repeat["duplicate_of"] == first["id"]
        assert repeat["keywords"] == first["keywords"]
        assert repeat["content_hash"] == first["content_hash"]


async def test_redis_outage_loses_nothing_and_dedup_comes_back(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        setup = StreamSetup(services.kafka_bootstrap, redis.url)
        await setup.create_topics()
        w = start(setup, tmp_path, workers)
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"a{i}", text(i)) for i in range(2000)]
        )
        await wait_for_results(setup, 500, timeout=120)
        redis.stop()
        await produce(
            setup.bootstrap,
            setup.raw_topic,
            [event(f"b{i}", text(10_000 + i)) for i in range(2000)],
        )
        await wait_for_results(setup, 4000, timeout=300)
        assert metric_value(w, "contentstream_dedup_unavailable_total") > 0
        redis.start()
        await asyncio.sleep(3)  # past the circuit breaker's retry window
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"c{i}", text(20_000 + i)) for i in range(300)]
        )
        await wait_for_results(setup, 4300, timeout=120)
        hits_before = metric_value(w, "contentstream_dedup_hits_total")
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"d{i}", text(20_000 + i)) for i in range(300)]
        )
        records = await consume(
            setup.bootstrap, setup.output_topic, expect=4600, timeout=120, idle_after_expect=2
        )
        results = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in records}
        expected = (
            {f"a{i}" for i in range(2000)}
            | {f"b{i}" for i in range(2000)}
            | {f"c{i}" for i in range(300)}
            | {f"d{i}" for i in range(300)}
        )
        assert expected <= set(results), "an event was lost during the Redis outage"
        assert all(results[f"d{i}"]["duplicate_of"] == f"c{i}" for i in range(300))
        assert metric_value(w, "contentstream_dedup_hits_total") - hits_before >= 300
    finally:
        redis.stop()


async def test_exactly_once_survives_kill_9(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None)
    await setup.create_topics()
    n = 5_000
    env = {
        "CONTENTSTREAM_PROCESSING_GUARANTEE": "exactly_once",
        "CONTENTSTREAM_DEDUP_POLICY": "off",
    }
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    first = start(setup, tmp_path, workers, **env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = await consume(
            setup.bootstrap,
            setup.output_topic,
            expect=n // 4,
            timeout=2,
            isolation_level="read_committed",
        )
        if len(got) >= n // 4:
            break
    first.kill()
    start(setup, tmp_path, workers, **env)
    records = await consume(
        setup.bootstrap,
        setup.output_topic,
        expect=n,
        timeout=600,
        idle_after_expect=5,
        isolation_level="read_committed",
    )
    ids = [orjson.loads(r.value)["id"] for r in records]
    assert sorted(set(ids)) == sorted(str(i) for i in range(n))
    assert len(ids) == n, f"{len(ids) - n} duplicates visible to read_committed"


async def test_hung_analysis_delays_its_partition_by_at_most_the_timeout(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None, partitions=1)
    await setup.create_topics()
    timeout_s = 3.0
    start(
        setup,
        tmp_path,
        workers,
        CONTENTSTREAM_PIPELINE_FACTORY="scripted_pipelines:build",
        CONTENTSTREAM_STAGE_TIMEOUT_S=str(timeout_s),
        CONTENTSTREAM_POOL_PROCESSES="2",
        PYTHONPATH=SUPPORT,
    )
    sent_at = time.time()
    values = [event("hang", "这条分析会卡住 [[hang]]")]
    values += [event(f"n{i}", text(i)) for i in range(200)]
    await produce(setup.bootstrap, setup.raw_topic, values)
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=201, timeout=60, idle_after_expect=1
    )
    results = {
        orjson.loads(r.value)["id"]: (orjson.loads(r.value), r.timestamp / 1000) for r in records
    }
    hung, _ = results["hang"]
    assert [e["code"] for e in hung["errors"]] == ["STAGE_TIMEOUT"]
    delays = [ts - sent_at for rid, (_, ts) in results.items() if rid != "hang"]
    assert len(delays) == 200
    print(f"\nslowest other event of the partition: {max(delays):.2f}s (timeout {timeout_s}s)")
    assert max(delays) <= timeout_s + 1.5


async def test_event_loop_stays_responsive_while_the_pool_is_saturated(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None)
    await setup.create_topics()
    w = start(setup, tmp_path, workers, CONTENTSTREAM_DEDUP_POLICY="off")
    n = 8_000
    long_text = "".join(BASE_TEXTS) * 8
    await produce(setup.bootstrap, setup.raw_topic, [event(i, f"{long_text}{i}") for i in range(n)])
    samples = []
    deadline = time.monotonic() + 600
    done = 0
    while time.monotonic() < deadline and done < n:
        samples.append(metric_value(w, "contentstream_in_flight_events"))
        done = int(metric_value(w, "contentstream_events_finished_total"))
        await asyncio.sleep(0.5)
    assert done >= n
    assert max(samples) >= 64, "the pool was never saturated"
    worst = metric_value(w, "contentstream_event_loop_lag_max_seconds")
    print(f"\nworst event-loop delay while saturated: {worst * 1000:.1f} ms")
    assert worst < 0.1
