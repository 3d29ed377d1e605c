"""A real Prometheus scrapes a real worker: the lag it records is the true backlog.

The backlog is made for real, with /metrics reachable all along: the output topic stops
accepting results (``max.message.bytes`` below any result's size), so the worker cannot
finish, and therefore cannot commit, the events produced meanwhile; it keeps retrying.
The test compares the lag Prometheus scraped with the backlog it computes itself from
Kafka (log-end minus committed offsets) and with ``contentstream lag``. Then the topic
accepts results again, the worker's retries get through, the lag Prometheus sees falls
to 0 and the end-to-end and processing latency histograms have counted every event.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from services import ServiceEndpoints
from worker_harness import (
    REPO_ROOT,
    StreamSetup,
    WorkerProcess,
    event,
    free_port,
    produce,
    set_max_message_bytes,
)

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus not installed (make install-system installs it)"
    ),
]

ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
OPEN_LIMIT = str(16 * 1024 * 1024)
CLOSED_LIMIT = "100"  # bytes: smaller than any AnalysisResult
SCRAPE_S = 1.0


class PrometheusServer:
    """/usr/bin/prometheus scraping one target every second, with the shipped alerts."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "contentstream", "static_configs": [{"targets": [target]}]}
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        assert PROMETHEUS is not None
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if hasattr(self, "_log"):
            self._log.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(self.url(f"/api/v1/{path}?{query}"), timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def scalar(self, promql: str) -> float | None:
        """The single value of an instant query; None when it returns no series."""
        result = self.api("query", query=promql)["result"]
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, ok: Any, timeout: float, what: str) -> float | None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(promql)
            if value is not None and ok(value):
                return value
            time.sleep(0.5)
        raise AssertionError(f"{what}: {promql} = {value} after {timeout}s")


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Workers and Prometheus servers, always stopped at the end."""
    started: list[Any] = []
    yield started
    for p in reversed(started):
        if isinstance(p, PrometheusServer):
            p.stop()
        else:
            p.stop_quietly()


async def true_backlog(setup: StreamSetup) -> int:
    """Log-end minus committed offsets of the group, straight from Kafka."""
    tps = [TopicPartition(setup.raw_topic, p) for p in range(setup.partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=setup.bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(setup.name, partitions=tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    total = 0
    for tp in tps:
        meta = committed.get(tp)
        total += ends[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
    return total


def lag_command(setup: StreamSetup, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "lag", "--json", *args],
        cwd=REPO_ROOT,
        env=setup.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


async def test_prometheus_sees_the_true_backlog_then_its_end(
    services: ServiceEndpoints, tmp_path: Path, processes: list[Any]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url, partitions=3)
    await setup.create_topics()
    # The output topic is closed for a while below, as if by an operator who opens it
    # again: results wait for it rather than turn into dead letters.
    worker = WorkerProcess(
        setup,
        tmp_path / "worker.log",
        CONTENTSTREAM_DEDUP_POLICY="off",
        CONTENTSTREAM_REFUSED_RECORD_GRACE_S="600",
    )
    processes.append(worker.start())
    worker.wait_ready()
    prometheus = PrometheusServer(tmp_path, f"127.0.0.1:{worker.port}")
    processes.append(prometheus.start())
    job = 'job="contentstream"'
    prometheus.wait_for(f"up{{{job}}}", lambda v: v == 1, 30, "worker scraped")
    prometheus.wait_for(
        f"count(contentstream_consumer_lag_events{{{job}}})",
        lambda v: v == setup.partitions,
        30,
        "lag gauges for every partition",
    )
    assert prometheus.scalar(f"sum(contentstream_consumer_lag_events{{{job}}})") == 0

    # The output topic refuses results: the events below stay uncommitted.
    await set_max_message_bytes(setup.bootstrap, setup.output_topic, CLOSED_LIMIT)
    n = 120
    produced_at = datetime.now(UTC).isoformat()
    values = [
        event(f"p-{i}", f"Backlog event number {i}.", produced_at=produced_at) for i in range(n)
    ]
    await produce(setup.bootstrap, setup.raw_topic, values, [str(i).encode() for i in range(n)])

    lag_query = f"sum(contentstream_consumer_lag_events{{{job}}})"
    seen = prometheus.wait_for(lag_query, lambda v: v == n, 30, "backlog in Prometheus")
    assert seen == n
    assert await true_backlog(setup) == n
    # Held for several scrapes: nothing can be committed while results are refused.
    time.sleep(3 * SCRAPE_S)
    assert prometheus.scalar(lag_query) == n
    age = prometheus.scalar(f"max(contentstream_consumer_lag_seconds{{{job}}})")
    assert age is not None and 0 < age < 120, age
    ends = prometheus.scalar(f"sum(contentstream_consumer_log_end_offset{{{job}}})")
    assert ends == n
    status, report = lag_command(setup, "--max-lag", str(n - 1))
    assert status == 1 and report["total_lag"] == n, report
    assert prometheus.scalar(f"sum(contentstream_end_to_end_latency_seconds_count{{{job}}})") == 0
    assert prometheus.scalar(f"sum(contentstream_processing_latency_seconds_count{{{job}}})") == 0

    # The topic accepts results again: the backlog drains, the lag falls to 0.
    await set_max_message_bytes(setup.bootstrap, setup.output_topic, OPEN_LIMIT)
    prometheus.wait_for(lag_query, lambda v: v == 0, 60, "lag back to 0")
    assert await true_backlog(setup) == 0
    count = prometheus.wait_for(
        f"sum(contentstream_end_to_end_latency_seconds_count{{{job}}})",
        lambda v: v >= n,
        30,
        "latency histogram counts",
    )
    assert count == n
    p99 = prometheus.scalar(
        "histogram_quantile(0.99, sum by (le) "
        f"(contentstream_end_to_end_latency_seconds_bucket{{{job}}}))"
    )
    assert p99 is not None and p99 > 0
    # Processing latency counts the same results, each held back while the topic refused
    # it: from intake to acknowledgement took longer than the scrapes waited above.
    processing = prometheus.wait_for(
        f"sum(contentstream_processing_latency_seconds_count{{{job}}})",
        lambda v: v >= n,
        30,
        "processing latency histogram counts",
    )
    assert processing == n
    total = prometheus.scalar(f"sum(contentstream_processing_latency_seconds_sum{{{job}}})")
    assert total is not None and total / n >= SCRAPE_S
    status, report = lag_command(setup, "--max-lag", "0")
    assert status == 0 and report["total_lag"] == 0, report

    # A mistyped topic is one clear line and status 2, and is not created by asking.
    missing = f"{setup.name}.missing"
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "lag", "--topic", missing],
        cwd=REPO_ROOT,
        env=setup.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"contentstream: topic {missing!r} does not exist\n"
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.bootstrap)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()

    # The shipped alert rules load and evaluate in a real Prometheus.
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 7
    assert all(rule["health"] == "ok" for rule in rules), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
