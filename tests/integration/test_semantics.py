"""Stream semantics on the real broker: crashes, rebalances, dedup, Redis outages,
exactly-once, hung analyses, records Kafka refuses, graceful shutdown and a responsive
event loop.

The guarantees are checked for every engine and guarantee they apply to (``MODES``):
the batch and Faust engines under at_least_once, and exactly_once, which runs on the
batch engine. Under exactly_once a read_committed reader must see every result once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
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
    set_max_message_bytes,
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


@dataclass(frozen=True)
class Mode:
    engine: str
    guarantee: str

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == "exactly_once"

    @property
    def isolation(self) -> str:
        # What a downstream reader of exactly_once output must use to see it once.
        return "read_committed" if self.exactly_once else "read_uncommitted"

    async def read(self, bootstrap: str, topic: str, **wanted: Any) -> list[Any]:
        """``consume`` as a downstream reader of this mode's output must (read_committed
        under exactly_once)."""
        return await consume(bootstrap, topic, isolation_level=self.isolation, **wanted)

    def env(self, **env: str) -> dict[str, str]:
        return {
            "CONTENTSTREAM_ENGINE": self.engine,
            "CONTENTSTREAM_PROCESSING_GUARANTEE": self.guarantee,
            **env,
        }


MODES = pytest.mark.parametrize(
    "mode",
    [
        pytest.param(Mode("batch", "at_least_once"), id="batch-alo"),
        pytest.param(Mode("faust", "at_least_once"), id="faust-alo"),
        pytest.param(Mode("batch", "exactly_once"), id="batch-eos"),
    ],
)


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


async def wait_for_results(
    setup: StreamSetup, n: int, timeout: float, isolation: str = "read_uncommitted"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await consume(
            setup.bootstrap, setup.output_topic, expect=n, timeout=2, isolation_level=isolation
        )
        if len(got) >= n:
            return
    raise AssertionError(f"fewer than {n} results after {timeout}s")


def strip_timing(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in TIMING_FIELDS}


def results_by_id(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        result = orjson.loads(r.value)
        by_id[result["id"]].append(result)
    return by_id


def assert_all_once(
    mode: Mode, by_id: dict[str, list[dict[str, Any]]], expected: set[str], logs: str
) -> int:
    """Nothing lost; under exactly_once nothing twice either. Returns the duplicates."""
    missing = expected - set(by_id)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}\n{logs}"
    duplicates = sum(len(v) - 1 for v in by_id.values())
    if mode.exactly_once:
        assert duplicates == 0, f"{duplicates} duplicates visible to read_committed\n{logs}"
    return duplicates


@MODES
async def test_kill_9_mid_run_loses_nothing(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None)
    await setup.create_topics()
    n = 20_000
    env = mode.env(CONTENTSTREAM_DEDUP_POLICY="off", CONTENTSTREAM_IN_FLIGHT_LIMIT="256")
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    first = start(setup, tmp_path, workers, **env)
    await wait_for_results(setup, n // 4, timeout=300, isolation=mode.isolation)
    first.kill()  # SIGKILL: no drain, no final commit, a transaction left open
    second = start(setup, tmp_path, workers, **env)
    records = await mode.read(
        setup.bootstrap, setup.output_topic, expect=n, timeout=600, idle_after_expect=5
    )
    by_id = results_by_id(records)
    duplicates = assert_all_once(mode, by_id, {str(i) for i in range(n)}, second.log_tail())
    print(f"\nkill -9 after {n // 4}+ results: {duplicates} duplicate results of {n} events")
    for results in by_id.values():
        for again in results[1:]:
            assert strip_timing(again) == strip_timing(results[0])


@MODES
async def test_two_workers_one_restarted_mid_run(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=4)
    await setup.create_topics()
    n = 5_000
    # Texts of their own: Redis is shared by the session's tests.
    salt = setup.name
    a = start(setup, tmp_path, workers, **mode.env())
    start(setup, tmp_path, workers, **mode.env())
    await produce(
        setup.bootstrap, setup.raw_topic, [event(i, f"{salt} {text(i)}") for i in range(n)]
    )
    await wait_for_results(setup, n // 5, timeout=300, isolation=mode.isolation)
    assert a.terminate() == 0, a.log_tail()
    start(setup, tmp_path, workers, **mode.env())
    records = await mode.read(
        setup.bootstrap, setup.output_topic, expect=n, timeout=600, idle_after_expect=3
    )
    logs = "\n".join(w.log_tail(10) for w in workers)
    duplicates = assert_all_once(mode, results_by_id(records), {str(i) for i in range(n)}, logs)
    print(f"\ntwo workers, one restarted: {duplicates} duplicate results of {n}")


@MODES
async def test_graceful_sigterm_exits_0_and_loses_nothing(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None, partitions=4)
    await setup.create_topics()
    n = 3_000
    env = mode.env(CONTENTSTREAM_DEDUP_POLICY="off")
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    first = start(setup, tmp_path, workers, **env)
    await wait_for_results(setup, n // 4, timeout=120, isolation=mode.isolation)
    assert first.terminate() == 0, first.log_tail()  # mid-run: events still in flight
    start(setup, tmp_path, workers, **env)
    records = await mode.read(
        setup.bootstrap, setup.output_topic, expect=n, timeout=300, idle_after_expect=3
    )
    by_id = results_by_id(records)
    assert_all_once(mode, by_id, {str(i) for i in range(n)}, first.log_tail())
    # A drained worker committed what it finished: the next one repeats none of it.
    assert len(records) == n, f"{len(records) - n} results again after a graceful stop"


async def test_exactly_once_fences_a_worker_that_lost_its_partitions_while_paused(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    # A zombie: a worker stopped (SIGSTOP) past its session timeout, its partitions moved
    # to the other worker, then resumed with batches in flight. Its transactions must
    # not commit: the other worker's producers fenced its transactional ids.
    mode = Mode("batch", "exactly_once")
    setup = StreamSetup(services.kafka_bootstrap, None, partitions=4)
    await setup.create_topics()
    n = 6_000
    env = mode.env(CONTENTSTREAM_DEDUP_POLICY="off")
    zombie = start(setup, tmp_path, workers, **env)
    start(setup, tmp_path, workers, **env)
    await produce(setup.bootstrap, setup.raw_topic, [event(i, text(i)) for i in range(n)])
    await wait_for_results(setup, n // 5, timeout=300, isolation=mode.isolation)
    assert zombie.proc is not None
    zombie.proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(15)  # past the 10 s session timeout: the group moves on
    finally:
        zombie.proc.send_signal(signal.SIGCONT)
    records = await mode.read(
        setup.bootstrap, setup.output_topic, expect=n, timeout=600, idle_after_expect=5
    )
    logs = "\n".join(w.log_tail(15) for w in workers)
    assert_all_once(mode, results_by_id(records), {str(i) for i in range(n)}, logs)
    assert zombie.proc.poll() is None, "the zombie stays up (it is fenced, not crashed)"


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


@MODES
async def test_redis_outage_loses_nothing_and_dedup_comes_back(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    redis = RedisServer(tmp_path).start()
    iso = mode.isolation
    try:
        setup = StreamSetup(services.kafka_bootstrap, redis.url)
        await setup.create_topics()
        w = start(setup, tmp_path, workers, **mode.env())
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"a{i}", text(i)) for i in range(2000)]
        )
        await wait_for_results(setup, 500, timeout=120, isolation=iso)
        redis.stop()
        await produce(
            setup.bootstrap,
            setup.raw_topic,
            [event(f"b{i}", text(10_000 + i)) for i in range(2000)],
        )
        await wait_for_results(setup, 4000, timeout=300, isolation=iso)
        assert metric_value(w, "contentstream_dedup_unavailable_total") > 0
        redis.start()
        await asyncio.sleep(3)  # past the circuit breaker's retry window
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"c{i}", text(20_000 + i)) for i in range(300)]
        )
        await wait_for_results(setup, 4300, timeout=120, isolation=iso)
        hits_before = metric_value(w, "contentstream_dedup_hits_total")
        await produce(
            setup.bootstrap, setup.raw_topic, [event(f"d{i}", text(20_000 + i)) for i in range(300)]
        )
        records = await consume(
            setup.bootstrap,
            setup.output_topic,
            expect=4600,
            timeout=120,
            idle_after_expect=2,
            isolation_level=iso,
        )
        by_id = results_by_id(records)
        expected = (
            {f"a{i}" for i in range(2000)}
            | {f"b{i}" for i in range(2000)}
            | {f"c{i}" for i in range(300)}
            | {f"d{i}" for i in range(300)}
        )
        assert_all_once(mode, by_id, expected, w.log_tail())
        assert all(by_id[f"d{i}"][0]["duplicate_of"] == f"c{i}" for i in range(300))
        assert metric_value(w, "contentstream_dedup_hits_total") - hits_before >= 300
    finally:
        redis.stop()


@MODES
async def test_hung_analysis_delays_its_partition_by_at_most_the_timeout(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None, partitions=1)
    await setup.create_topics()
    timeout_s = 3.0
    start(
        setup,
        tmp_path,
        workers,
        **mode.env(
            CONTENTSTREAM_PIPELINE_FACTORY="scripted_pipelines:build",
            CONTENTSTREAM_STAGE_TIMEOUT_S=str(timeout_s),
            CONTENTSTREAM_POOL_PROCESSES="2",
            PYTHONPATH=SUPPORT,
        ),
    )
    sent_at = time.time()
    values = [event("hang", "这条分析会卡住 [[hang]]")]
    values += [event(f"n{i}", text(i)) for i in range(200)]
    await produce(setup.bootstrap, setup.raw_topic, values)
    records = await mode.read(
        setup.bootstrap, setup.output_topic, expect=201, timeout=60, idle_after_expect=1
    )
    assert_all_once(mode, results_by_id(records), {"hang"}, workers[0].log_tail())
    results = {
        orjson.loads(r.value)["id"]: (orjson.loads(r.value), r.timestamp / 1000) for r in records
    }
    hung, _ = results["hang"]
    assert [e["code"] for e in hung["errors"]] == ["STAGE_TIMEOUT"]
    delays = [ts - sent_at for rid, (_, ts) in results.items() if rid != "hang"]
    assert len(delays) == 200
    print(f"\nslowest other event of the partition: {max(delays):.2f}s (timeout {timeout_s}s)")
    if not mode.exactly_once:
        assert max(delays) <= timeout_s + 1.5
        return
    # Under exactly_once the other events' results commit with the partition's offsets,
    # so after the hung event's (offset 0) in any case. Its verdict takes the pool up to
    # two timeouts: the first ends its pool batch, the second the event run on its own.
    hung_at = results["hang"][1] - sent_at
    assert hung_at <= 2 * timeout_s + 1.5
    assert max(delays) <= hung_at + 1.0, "nothing waits longer than the hung event's commit"


REFUSED_TEXTS = [
    "这家餐厅的菜很好吃，服务也很周到，下次还来。",
    "北京市政府今天宣布，将在海淀区新建三所中学。",
    "物流太慢了，包装也破了，很失望。",
]


@MODES
async def test_a_result_too_large_for_the_output_topic_becomes_a_dead_letter(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    # Room for the result of a short text (~1 KB), not for one with many entities.
    await set_max_message_bytes(setup.bootstrap, setup.output_topic, "1800")
    start(setup, tmp_path, workers, **mode.env(CONTENTSTREAM_REFUSED_RECORD_GRACE_S="1"))
    salt = setup.name  # texts of their own: Redis is shared by the session's tests
    big = event("big", f"{salt} " + REFUSED_TEXTS[1] * 25)
    values = [event("before", f"{salt} {REFUSED_TEXTS[0]}"), big]
    values.append(event("after", f"{salt} {REFUSED_TEXTS[2]}"))
    await produce(setup.bootstrap, setup.raw_topic, values)
    results = await mode.read(
        setup.bootstrap, setup.output_topic, expect=2, timeout=120, idle_after_expect=2
    )
    ids = sorted(orjson.loads(r.value)["id"] for r in results)
    assert ids == ["after", "before"], workers[0].log_tail()
    letters = await mode.read(
        setup.bootstrap, setup.dlq_topic, expect=1, timeout=60, idle_after_expect=1
    )
    assert len(letters) == 1, workers[0].log_tail()
    (letter,) = letters
    headers = dict(letter.headers)
    assert headers["contentstream-error-code"] == b"RESULT_REJECTED"
    assert b"MessageSizeTooLargeError" in headers["contentstream-error-message"]
    assert headers["contentstream-source-offset"] == b"1"
    assert letter.value == big, "the original event, untouched, for a replay"


@MODES
async def test_a_dead_letter_too_large_for_its_topic_goes_out_without_the_original(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], mode: Mode
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    # A cluster's default limit (1 MB) on the dead-letter topic, 16 MiB on the input.
    await set_max_message_bytes(setup.bootstrap, setup.dlq_topic, "1048588")
    start(setup, tmp_path, workers, **mode.env(CONTENTSTREAM_REFUSED_RECORD_GRACE_S="1"))
    huge = event("huge", "长" * 1_000_000)  # 3 MB: over CONTENTSTREAM_MAX_PAYLOAD_BYTES
    await produce(setup.bootstrap, setup.raw_topic, [huge, event("next", REFUSED_TEXTS[0])])
    letters = await mode.read(
        setup.bootstrap, setup.dlq_topic, expect=1, timeout=120, idle_after_expect=1
    )
    assert len(letters) == 1, workers[0].log_tail()
    (letter,) = letters
    headers = dict(letter.headers)
    assert headers["contentstream-error-code"] == b"PAYLOAD_TOO_LARGE"
    assert letter.value == b""
    assert b"MessageSizeTooLargeError" in headers["contentstream-original-dropped"]
    # Where the original still is.
    assert headers["contentstream-source-topic"] == setup.raw_topic.encode()
    assert headers["contentstream-source-offset"] == b"0"
    results = await mode.read(
        setup.bootstrap, setup.output_topic, expect=1, timeout=60, idle_after_expect=1
    )
    assert [orjson.loads(r.value)["id"] for r in results] == ["next"]


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
