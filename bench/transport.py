"""Kafka plumbing shared by the suites, and the transport-limit suite.

Plumbing: unique topic names, producing events (as fast as possible or paced), a
collector that reads results as they arrive, real ``python -m streams worker``
processes, and the maths every Kafka suite uses (rates over a window, percentiles).

Transport limit: a real worker whose pipeline does nothing (a constant "language",
plugged in through the worker's own ``CONTENTSTREAM_PIPELINE_FACTORY`` hook), against
a plain aiokafka consume->produce loop that does no work at all, on the same broker,
side by side. Everything the worker does besides analysis is in the first figure: its
engine (batch or Faust), decoding and validation, dedup, the pool round trip, result
JSON, publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.corpus import REPO_ROOT, Corpus, numbered_texts, take
from bench.memory import (
    cpu_by_role,
    cpu_per_event,
    machine_cpu_share,
    machine_cpu_ticks,
    process_tree,
)
from streams.processing.dedup import KEY_PREFIX

BENCH_REDIS_DB = int(os.environ.get("CONTENTSTREAM_BENCH_REDIS_DB", "14"))
# Every dedup key of the worker being measured (the prefix names the key format).
DEDUP_KEY_PATTERN = KEY_PREFIX + "*"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


# --------------------------------------------------------------------------- maths


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's
    default), so p99 of 100 values is not simply the largest one."""
    if not values:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def window_rate(times_s: Sequence[float], trim: float = 0.05) -> float:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of completion
    times: the steady state, without the ramp-up (batches filling, first fetch) or the
    tail (the last partial batch)."""
    if len(times_s) < 2:
        return math.nan
    ordered = sorted(times_s)
    first = int(len(ordered) * trim)
    last = max(first + 1, math.ceil(len(ordered) * (1.0 - trim)) - 1)
    last = min(last, len(ordered) - 1)
    span = ordered[last] - ordered[first]
    if span <= 0:
        # Everything finished within one clock tick (ms timestamps): no honest rate.
        return math.nan
    return (last - first) / span


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    return {
        "count": float(len(latencies_s)),
        "p50_ms": round(percentile(latencies_s, 50) * 1000.0, 1),
        "p95_ms": round(percentile(latencies_s, 95) * 1000.0, 1),
        "p99_ms": round(percentile(latencies_s, 99) * 1000.0, 1),
        "max_ms": round(max(latencies_s) * 1000.0, 1) if latencies_s else math.nan,
    }


# --------------------------------------------------------------------------- context


@dataclass
class BenchContext:
    bootstrap: str
    redis_url: str | None
    quick: bool
    corpus: Corpus
    results_dir: Path
    created_topics: list[str] = field(default_factory=list)

    @property
    def logs_dir(self) -> Path:
        path = self.results_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_old_logs(self) -> None:
        """Worker logs of earlier runs; this run's are named by their fresh uuids."""
        folder = self.results_dir / "logs"
        if folder.is_dir():
            for old in folder.glob("bench-*.log"):
                with contextlib.suppress(OSError):
                    old.unlink()

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full


def unique_name(suite: str) -> str:
    return f"bench-{suite}-{uuid.uuid4().hex[:8]}"


def bench_redis_url(redis_url: str | None, db: int = BENCH_REDIS_DB) -> str | None:
    """The same Redis server on the benchmark's own database number: the dedup entries
    the benchmark clears between phases are then never anyone else's."""
    if not redis_url:
        return None
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


async def clear_dedup(redis_url: str | None) -> int:
    """Delete the dedup entries in the benchmark's Redis database; returns how many."""
    if not redis_url:
        return 0
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=DEDUP_KEY_PATTERN, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(await client.delete(*batch))
                batch = []
        if batch:
            deleted += int(await client.delete(*batch))
    finally:
        await client.aclose()
    return deleted


async def create_topics(ctx: BenchContext, names: Iterable[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap)
    await admin.start()
    try:
        wanted = list(names)
        await admin.create_topics(
            [
                NewTopic(
                    n, partitions, 1, topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)}
                )
                for n in wanted
            ]
        )
        ctx.created_topics.extend(wanted)
    finally:
        await admin.close()


async def delete_topics(ctx: BenchContext) -> None:
    """Best effort: the broker is shared, so leave it as tidy as it was found."""
    if not ctx.created_topics:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(list(ctx.created_topics))
        ctx.created_topics.clear()
    except Exception as exc:  # never hide the benchmark's own result behind cleanup
        print(f"[bench] could not delete topics: {exc}", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


# --------------------------------------------------------------------------- producing


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def encode_event(event_id: str, text: str, produced_at: str | None = None) -> bytes:
    body: dict[str, Any] = {"id": event_id, "source": "bench", "text": text}
    if produced_at is not None:
        body["produced_at"] = produced_at
    return orjson.dumps(body)


def make_producer(ctx: BenchContext, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap,
        acks="all",
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        max_batch_size=1024 * 1024,
    )


async def produce_burst(ctx: BenchContext, topic: str, prefix: str, texts: Sequence[str]) -> float:
    """All events as fast as the client allows; returns the seconds it took."""
    values = [encode_event(f"{prefix}-{i}", t, iso_now()) for i, t in enumerate(texts)]
    producer = make_producer(ctx, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [
            await producer.send(topic, value=v, key=f"{prefix}-{i}".encode())
            for i, v in enumerate(values)
        ]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def produce_paced(
    ctx: BenchContext,
    topic: str,
    prefix: str,
    texts: Sequence[str],
    rate: float,
    tick_s: float = 0.005,
) -> tuple[int, float]:
    """Open-loop producer: event i is due at ``i / rate`` seconds after the start, and
    carries ``produced_at`` = when it was actually sent. Returns (sent, achieved rate)."""
    producer = make_producer(ctx, linger_ms=1)
    await producer.start()
    sent = 0
    futures = []
    started = time.perf_counter()
    try:
        while sent < len(texts):
            due = min(len(texts), int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                event_id = f"{prefix}-{sent}"
                value = encode_event(event_id, texts[sent], iso_now())
                futures.append(await producer.send(topic, value=value, key=event_id.encode()))
                sent += 1
            await asyncio.sleep(tick_s)
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    elapsed = time.perf_counter() - started
    return sent, sent / elapsed if elapsed > 0 else math.nan


# --------------------------------------------------------------------------- collecting


@dataclass(frozen=True, slots=True)
class Arrival:
    event_id: str
    timestamp_s: float  # the result record's Kafka timestamp (set by the worker's producer)
    produced_at_s: float | None

    @property
    def latency_s(self) -> float | None:
        if self.produced_at_s is None:
            return None
        return self.timestamp_s - self.produced_at_s


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class ResultCollector:
    """Reads an output topic from its current end: start it before producing."""

    def __init__(self, ctx: BenchContext, topic: str) -> None:
        self._ctx = ctx
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._ctx.bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        partitions = None
        for _ in range(50):
            partitions = consumer.partitions_for_topic(self._topic)
            if partitions:
                break
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"topic {self._topic} has no partitions")
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the lazy seek now, before anything is produced
            await consumer.position(tp)
        self._consumer = consumer

    async def collect(
        self, prefix: str, expect: int, timeout_s: float
    ) -> tuple[list[Arrival], bool]:
        """Results whose id starts with ``prefix`` until ``expect`` of them arrived;
        returns (arrivals, complete).

        Results are matched by their Kafka key (the event id) and decoded only after
        the last one arrived: parsing each on arrival cost ~5 µs per event of the
        same two cores the worker is being measured on."""
        assert self._consumer is not None
        found: dict[bytes, tuple[float, bytes]] = {}
        marker = (prefix + "-").encode()
        deadline = time.monotonic() + timeout_s
        while len(found) < expect and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                for record in records:
                    key = record.key
                    if record.value is None or key is None or not key.startswith(marker):
                        continue
                    found[key] = (record.timestamp / 1000.0, record.value)
        arrivals = [
            Arrival(
                event_id=key.decode(),
                timestamp_s=timestamp_s,
                produced_at_s=_parse_time(orjson.loads(value).get("produced_at")),
            )
            for key, (timestamp_s, value) in found.items()
        ]
        return arrivals, len(arrivals) >= expect

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


# --------------------------------------------------------------------------- workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """One isolated worker group: its own app id (consumer group) and topics."""

    ctx: BenchContext
    suite: str
    partitions: int = 4
    env: dict[str, str] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or unique_name(self.suite)

    @property
    def raw_topic(self) -> str:
        return f"{self.name}.raw"

    @property
    def output_topic(self) -> str:
        return f"{self.name}.analyzed"

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    async def create_topics(self) -> None:
        await create_topics(
            self.ctx, [self.raw_topic, self.output_topic, self.dlq_topic], self.partitions
        )

    def worker_env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.ctx.bootstrap,
                "CONTENTSTREAM_APP_ID": self.name,
                "CONTENTSTREAM_INPUT_TOPIC": self.raw_topic,
                "CONTENTSTREAM_OUTPUT_TOPIC": self.output_topic,
                "CONTENTSTREAM_DEAD_LETTER_TOPIC": self.dlq_topic,
                "CONTENTSTREAM_TOPIC_PARTITIONS": str(self.partitions),
                "CONTENTSTREAM_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        redis_url = bench_redis_url(self.ctx.redis_url)
        if redis_url:
            env["REDIS_URL"] = redis_url
        env.update(self.env)
        env.update(overrides)
        return env


class WorkerProcess:
    """A real ``python -m streams worker``; its log goes to bench/results/logs/."""

    def __init__(self, deployment: Deployment, label: str, **env: str) -> None:
        self.port = free_port()
        self.label = label
        self.log_path = deployment.ctx.logs_dir / f"{deployment.name}-{label}.log"
        self._env = deployment.worker_env(CONTENTSTREAM_WEB_PORT=str(self.port), **env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._terminated = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /readyz answered 200 (analyzers loaded, partitions assigned)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {self.label} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                status, _ = await asyncio.to_thread(self.get, "/readyz", 1.0)
                if status == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.25)
        raise RuntimeError(
            f"worker {self.label} not ready after {timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def metrics(self) -> dict[str, float]:
        """Selected Prometheus metrics, summed over their labels."""
        try:
            status, body = self.get("/metrics", 2.0)
        except OSError:
            return {}
        if status != 200:
            return {}
        return parse_metrics(body.decode("utf-8", "replace"))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self.proc.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (graceful drain), SIGKILL when it does not exit in time. A second
        SIGTERM would make the worker exit at once, so it is sent only once."""
        if self.proc is not None and self.proc.poll() is None:
            if not self._terminated:
                self.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None and not self._log.closed:
            self._log.close()


WATCHED_METRICS = (
    "contentstream_analysis_batch_size_sum",
    "contentstream_analysis_batch_size_count",
    "contentstream_dedup_hits_total",
    "contentstream_dedup_misses_total",
    "contentstream_dead_letters_total",
    "contentstream_rebalances_total",
    "contentstream_event_loop_lag_max_seconds",
    "contentstream_pool_restarts_total",
)


def parse_metrics(text: str, names: Sequence[str] = WATCHED_METRICS) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        if name in names:
            with contextlib.suppress(ValueError):
                found[name] = found.get(name, 0.0) + float(value)
    return found


def worker_stats(metrics: dict[str, float]) -> dict[str, float]:
    count = metrics.get("contentstream_analysis_batch_size_count", 0.0)
    stats = {k.removeprefix("contentstream_"): v for k, v in metrics.items()}
    if count:
        stats["mean_analysis_batch"] = round(
            metrics.get("contentstream_analysis_batch_size_sum", 0.0) / count, 1
        )
    return stats


async def start_workers(workers: Sequence[WorkerProcess], timeout_s: float) -> list[float]:
    for worker in workers:
        worker.start()
    return list(await asyncio.gather(*(w.wait_ready(timeout_s) for w in workers)))


def stop_workers(workers: Iterable[WorkerProcess]) -> None:
    """SIGTERM to all first, so they drain in parallel, then wait for each."""
    chosen = list(workers)
    for worker in chosen:
        with contextlib.suppress(Exception):
            worker.terminate()
    for worker in chosen:
        with contextlib.suppress(Exception):
            worker.stop()


async def burst_through(
    deployment: Deployment,
    prefix: str,
    texts: Sequence[str],
    timeout_s: float,
    workers: Sequence[WorkerProcess] = (),
) -> dict[str, Any]:
    """Produce ``texts`` as fast as possible to running workers; rate of their results,
    and the CPU time the workers' processes spent per event meanwhile."""
    collector = ResultCollector(deployment.ctx, deployment.output_topic)
    await collector.start()
    try:
        await clear_dedup(bench_redis_url(deployment.ctx.redis_url))
        cpu_before = cpu_by_role(w.pid for w in workers)
        machine_before = machine_cpu_ticks()
        produce_s = await produce_burst(deployment.ctx, deployment.raw_topic, prefix, texts)
        arrivals, complete = await collector.collect(prefix, len(texts), timeout_s)
        cpu_after = cpu_by_role(w.pid for w in workers)
        machine_after = machine_cpu_ticks()
    finally:
        await collector.stop()
    times = [a.timestamp_s for a in arrivals]
    return {
        "events": len(texts),
        "results": len(arrivals),
        "complete": complete,
        "produce_s": round(produce_s, 3),
        "span_s": round(max(times) - min(times), 3) if times else None,
        "events_per_s": round(window_rate(times), 1),
        **cpu_per_event(cpu_before, cpu_after, len(arrivals)),
        **machine_cpu_share(machine_before, machine_after),
    }


# --------------------------------------------------------------------------- no-op analysis


class ConstantLanguage:
    """A language "detector" that does no work: the transport suite's analysis."""

    name = "language"
    version = "bench-noop-1"

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return ["zh"] * len(texts)


def noop_pipeline(config: Any = None) -> Any:
    """``CONTENTSTREAM_PIPELINE_FACTORY=bench.transport:noop_pipeline``: a worker whose
    pipeline does nothing, so what is left is Kafka, decoding, dedup and publishing."""
    from analyzers.pipeline import AnalysisPipeline

    return AnalysisPipeline(language=ConstantLanguage(), stages={})


NOOP_WORKER_ENV = {
    "CONTENTSTREAM_PIPELINE_FACTORY": "bench.transport:noop_pipeline",
    "CONTENTSTREAM_ANALYSES": "language",
}


# --------------------------------------------------------------------------- the suite


@dataclass
class SuiteResult:
    """What a suite hands the driver: headline figures and everything raw."""

    name: str
    figures: dict[str, float] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)  # (measure, value) for the table
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


async def plain_loop(ctx: BenchContext, events: int) -> dict[str, Any]:
    """aiokafka alone: consume a pre-loaded topic and forward every record, acks awaited
    per fetched batch, offsets committed per batch. The client's own ceiling."""
    name = unique_name("plain")
    source, sink = f"{name}.raw", f"{name}.out"
    await create_topics(ctx, [source, sink], 4)
    await produce_burst(ctx, source, "plain", take(ctx.corpus.texts, 0, events))
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=ctx.bootstrap,
        group_id=name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
    )
    producer = make_producer(ctx, linger_ms=5)
    await consumer.start()
    await producer.start()
    done_at: list[float] = []
    cpu_started = time.process_time()
    try:
        deadline = time.monotonic() + 120.0
        while len(done_at) < events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            futures = [
                await producer.send(sink, value=r.value, key=r.key)
                for records in batches.values()
                for r in records
            ]
            if futures:
                await asyncio.gather(*futures)
                now = time.perf_counter()
                done_at.extend([now] * len(futures))
                await consumer.commit()
    finally:
        cpu_spent = time.process_time() - cpu_started
        await consumer.stop()
        await producer.stop()
    span = done_at[-1] - done_at[0] if len(done_at) > 1 else 0.0
    # Completion times come in per-batch steps, so a trimmed window would measure the
    # steps; use the whole span after the first batch instead.
    first_batch = done_at.count(done_at[0]) if done_at else 0
    rate = (len(done_at) - first_batch) / span if span > 0 else math.nan
    return {
        "events": events,
        "forwarded": len(done_at),
        "events_per_s": round(rate, 1),
        "cpu_us_per_event": round(cpu_spent * 1e6 / max(len(done_at), 1), 1),
    }


class TransportSuite:
    """A worker with a no-op pipeline vs a plain aiokafka loop; the same worker with
    ``CONTENTSTREAM_DEDUP_POLICY=off`` shows what dedup costs."""

    name = "transport"

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self.deployment = Deployment(ctx, "transport", env=NOOP_WORKER_ENV)
        self.no_dedup = Deployment(
            ctx, "transport-nodedup", env={**NOOP_WORKER_ENV, "CONTENTSTREAM_DEDUP_POLICY": "off"}
        )
        self.workers = [WorkerProcess(self.deployment, "w1"), WorkerProcess(self.no_dedup, "w1")]
        self.ready_s: list[float] = []
        self.memory: list[dict[str, Any]] = []

    async def prepare(self) -> None:
        await self.deployment.create_topics()
        await self.no_dedup.create_topics()
        for w in self.workers:
            w.start()

    async def wait_ready(self, timeout_s: float) -> None:
        self.ready_s = list(await asyncio.gather(*(w.wait_ready(timeout_s) for w in self.workers)))

    async def measure(self) -> SuiteResult:
        result = SuiteResult(self.name)
        # As many events as the plain loop gets: a worker keeps thousands in flight,
        # so a short burst would be rated on a few bunched-up publishes.
        events = self.ctx.size(20_000, 100_000)
        # Numbered: every event is a dedup miss, stored once (the costly path of dedup).
        texts = numbered_texts(self.ctx.corpus.texts, events)
        try:
            worker = await burst_through(
                self.deployment, "transport", texts, 60.0 + events / 50, self.workers[:1]
            )
            worker["worker"] = worker_stats(self.workers[0].metrics())
            self.memory = process_tree(self.workers[0].pid)
            no_dedup = await burst_through(
                self.no_dedup, "nodedup", texts, 60.0 + events / 50, self.workers[1:]
            )
            no_dedup["worker"] = worker_stats(self.workers[1].metrics())
        finally:
            await self.close()
        plain = await plain_loop(self.ctx, self.ctx.size(20_000, 100_000))
        result.figures = {
            "worker_events_per_s": worker["events_per_s"],
            "worker_no_dedup_events_per_s": no_dedup["events_per_s"],
            "plain_events_per_s": plain["events_per_s"],
        }
        result.rows = [
            ("worker, no-op analysis (events/s)", f"{worker['events_per_s']:,.0f}"),
            (
                "same worker, dedup off (events/s)",
                f"{no_dedup['events_per_s']:,.0f}",
            ),
            ("plain aiokafka consume→produce (events/s)", f"{plain['events_per_s']:,.0f}"),
            (
                "CPU µs/event: worker process, dedup on / off / plain loop",
                f"{worker.get('worker_cpu_us_per_event', math.nan):,.0f} / "
                f"{no_dedup.get('worker_cpu_us_per_event', math.nan):,.0f} / "
                f"{plain['cpu_us_per_event']:,.0f}",
            ),
        ]
        result.raw = {
            "analysis_used": "no-op pipeline (CONTENTSTREAM_PIPELINE_FACTORY="
            "bench.transport:noop_pipeline, CONTENTSTREAM_ANALYSES=language)",
            "worker": worker,
            "worker_dedup_off": no_dedup,
            "plain_loop": plain,
            "worker_ready_s": self.ready_s,
            "memory": self.memory,
        }
        return result

    async def close(self) -> None:
        await asyncio.to_thread(stop_workers, self.workers)
