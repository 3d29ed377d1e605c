"""The walking skeleton on the real broker and Redis: events in, analyses out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import orjson
import pytest
from services import ServiceEndpoints
from worker_harness import (
    StreamSetup,
    WorkerProcess,
    consume,
    event,
    produce,
    set_max_message_bytes,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "json"
TEXTS = [
    "这家餐厅的菜很好吃，服务也很周到，下次还来。",
    "The battery died after two days and support never replied.",
    "北京市政府今天宣布，将在海淀区新建三所中学。",
    "Great value for the price, and shipping was fast.",
    "物流太慢了，包装也破了，很失望。",
]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


def start_worker(
    setup: StreamSetup, tmp_path: Path, workers: list[WorkerProcess], **env: str
) -> WorkerProcess:
    w = WorkerProcess(setup, tmp_path / f"worker-{len(workers)}.log", **env).start()
    workers.append(w)
    w.wait_ready()
    return w


# Both engines keep the same contract; exactly_once, and records Kafka refuses as too
# large, are covered for every engine and guarantee in test_semantics.
ENGINES = pytest.mark.parametrize("engine", ["batch", "faust"])


@ENGINES
async def test_thousand_events_give_thousand_results(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], engine: str
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    await setup.create_topics()
    start_worker(setup, tmp_path, workers, CONTENTSTREAM_ENGINE=engine)
    n = 1000
    values = [event(i, f"{TEXTS[i % len(TEXTS)]} #{i}") for i in range(n)]
    await produce(setup.bootstrap, setup.raw_topic, values, [str(i).encode() for i in range(n)])
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=n, timeout=240, idle_after_expect=3
    )
    assert len(records) == n, workers[0].log_tail()
    schema = json.loads((SCHEMAS / "analysis_result.v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    ids = set()
    for rec in records:
        result = orjson.loads(rec.value)
        validator.validate(result)
        assert rec.key == str(result["id"]).encode()
        assert result["language"] in {"zh", "en", "mixed"}
        assert result["keywords"], result
        ids.add(result["id"])
    assert ids == {str(i) for i in range(n)}
    dead = await consume(setup.bootstrap, setup.dlq_topic, expect=1, timeout=2)
    assert dead == []


@ENGINES
async def test_compressed_input_in_every_codec_is_analysed(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], engine: str
) -> None:
    # Java producers often compress (compression.type=lz4 / zstd); a consumer without
    # the codecs failed on the first such batch and, restarted, failed on it again.
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    start_worker(
        setup, tmp_path, workers, CONTENTSTREAM_ENGINE=engine, KAFKA_COMPRESSION_TYPE="zstd"
    )
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        values = [event(f"{codec}-{i}", f"{TEXTS[i]} {codec}") for i in range(len(TEXTS))]
        await produce(setup.bootstrap, setup.raw_topic, values, compression_type=codec)
    expected = {f"{codec}-{i}" for codec in codecs for i in range(len(TEXTS))}
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=len(expected), timeout=120, idle_after_expect=2
    )
    assert {orjson.loads(r.value)["id"] for r in records} == expected, workers[0].log_tail()
    assert workers[0].proc is not None and workers[0].proc.poll() is None, "worker died"
    dead = await consume(setup.bootstrap, setup.dlq_topic, expect=1, timeout=2)
    assert dead == []


async def test_replay_sends_originals_back_even_those_left_out_of_their_dead_letter(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    await set_max_message_bytes(setup.bootstrap, setup.dlq_topic, "1048588")
    start_worker(setup, tmp_path, workers, CONTENTSTREAM_REFUSED_RECORD_GRACE_S="0")
    huge = event("huge", "长" * 1_000_000)
    empty = b'{"id": "e", "text": ""}'
    await produce(setup.bootstrap, setup.raw_topic, [huge, empty])
    letters = await consume(
        setup.bootstrap, setup.dlq_topic, expect=2, timeout=120, idle_after_expect=1
    )
    assert sorted(letter.value for letter in letters) == [b"", empty]
    target = f"{setup.name}.replayed"
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "replay", "--to-topic", target, "--quiet"],
        env=setup.env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "replayed 2 of 2" in proc.stderr, proc.stderr
    replayed = await consume(setup.bootstrap, target, expect=2, timeout=30, idle_after_expect=1)
    assert sorted(r.value for r in replayed) == sorted([huge, empty])
    for record in replayed:
        headers = dict(record.headers)
        assert headers["contentstream-source-topic"] == setup.raw_topic.encode()
        assert "contentstream-original-dropped" not in headers


def test_topics_the_broker_refuses_to_create_stop_the_worker_at_start(
    services: ServiceEndpoints, tmp_path: Path
) -> None:
    # The test broker is a single node: replication factor 3 cannot be met. Before, the
    # refusal in the admin response went unread, "created topics" was logged and the
    # worker sat on a topic that did not exist.
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    env = setup.env(CONTENTSTREAM_TOPIC_REPLICATION_FACTOR="3", CONTENTSTREAM_WEB_PORT="0")
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot create topic(s)" in proc.stderr
    assert f"{setup.raw_topic}: InvalidReplicationFactorError" in proc.stderr


@ENGINES
async def test_malformed_events_are_dead_lettered_and_processing_goes_on(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess], engine: str
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=1)
    await setup.create_topics()
    start_worker(
        setup, tmp_path, workers, CONTENTSTREAM_MAX_TEXT_CHARS="2000", CONTENTSTREAM_ENGINE=engine
    )
    bad = {
        b"definitely not json": "INVALID_JSON",
        b'["wrong", "shape"]': "INVALID_EVENT",
        b'{"id": "m-1", "source": "t"}': "MISSING_TEXT",
        b'{"id": "m-2", "source": "t", "text": "  \\n "}': "EMPTY_TEXT",
        b'{"id": "m-3", "source": "t", "text": "caf\xe9"}': "INVALID_UTF8",
        event("m-4", "长" * 2001): "TEXT_TOO_LONG",
        event("m-5", "x" * (5 * 1024 * 1024)): "PAYLOAD_TOO_LARGE",
        b'{"id": "m-6", "text": "ok", "colour": "blue"}': "INVALID_EVENT",
        b'{"id": "m-7", "text": "ok", "analyses": ["mind-reading"]}': "UNKNOWN_ANALYSIS",
    }
    good = [event(f"g-{i}", TEXTS[i % len(TEXTS)]) for i in range(20)]
    await produce(setup.bootstrap, setup.raw_topic, [*bad.keys(), *good])

    letters = await consume(
        setup.bootstrap, setup.dlq_topic, expect=len(bad), timeout=120, idle_after_expect=2
    )
    assert len(letters) == len(bad), workers[0].log_tail()
    # One partition: the n-th record produced has offset n in the raw topic.
    source_offset = {value: n for n, value in enumerate(bad)}
    for letter in letters:
        headers = dict(letter.headers)
        assert letter.value in bad, "the original bytes must be untouched"
        assert headers["contentstream-error-code"].decode() == bad[letter.value]
        assert headers["contentstream-source-topic"].decode() == setup.raw_topic
        assert int(headers["contentstream-source-offset"]) == source_offset[letter.value]
        assert headers["contentstream-error-message"]
    results = await consume(
        setup.bootstrap, setup.output_topic, expect=len(good), timeout=120, idle_after_expect=2
    )
    assert sorted(orjson.loads(r.value)["id"] for r in results) == sorted(
        f"g-{i}" for i in range(20)
    )


async def test_restarted_worker_resumes_from_committed_offsets(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    await setup.create_topics()
    first = start_worker(setup, tmp_path, workers, CONTENTSTREAM_DEDUP_POLICY="off")
    await produce(
        setup.bootstrap, setup.raw_topic, [event(f"a-{i}", TEXTS[i % 5]) for i in range(300)]
    )
    got = await consume(setup.bootstrap, setup.output_topic, expect=300, timeout=180)
    assert len(got) == 300
    assert first.terminate() == 0, first.log_tail()

    await produce(
        setup.bootstrap, setup.raw_topic, [event(f"b-{i}", TEXTS[i % 5]) for i in range(300)]
    )
    start_worker(setup, tmp_path, workers, CONTENTSTREAM_DEDUP_POLICY="off")
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=600, timeout=180, idle_after_expect=5
    )
    ids = [orjson.loads(r.value)["id"] for r in records]
    assert len(ids) == 600, f"{len(ids)} results: committed events were reprocessed or skipped"
    assert set(ids) == {f"a-{i}" for i in range(300)} | {f"b-{i}" for i in range(300)}
