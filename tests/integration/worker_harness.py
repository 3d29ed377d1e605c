"""Run real ``contentstream worker`` processes and talk to their topics, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StreamSetup:
    """One isolated deployment: its own group and topics on the shared broker."""

    bootstrap: str
    redis_url: str | None
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def raw_topic(self) -> str:
        return f"{self.name}.raw"

    @property
    def output_topic(self) -> str:
        return f"{self.name}.analyzed"

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "CONTENTSTREAM_APP_ID": self.name,
                "CONTENTSTREAM_INPUT_TOPIC": self.raw_topic,
                "CONTENTSTREAM_OUTPUT_TOPIC": self.output_topic,
                "CONTENTSTREAM_DEAD_LETTER_TOPIC": self.dlq_topic,
                "CONTENTSTREAM_TOPIC_PARTITIONS": str(self.partitions),
                "CONTENTSTREAM_POOL_PROCESSES": "1",
                "CONTENTSTREAM_LOG_FORMAT": "json",
                "CONTENTSTREAM_COMMIT_INTERVAL_S": "0.5",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        env.update(overrides)
        return env

    async def create_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(t, self.partitions, 1, topic_configs={"max.message.bytes": "16777216"})
                    for t in (self.raw_topic, self.output_topic, self.dlq_topic)
                ]
            )
        finally:
            await admin.close()


async def set_max_message_bytes(bootstrap: str, topic: str, limit: str) -> None:
    """Change a topic's record size limit (tests use it to make publishing fail)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": limit})]
        )
    finally:
        await admin.close()


class WorkerProcess:
    def __init__(self, setup: StreamSetup, log_path: Path, **env: str) -> None:
        self.setup = setup
        self.port = free_port()
        self.log_path = log_path
        self._env = setup.env(CONTENTSTREAM_WEB_PORT=str(self.port), **env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
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
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=timeout
            ) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                status, _ = self.get("/readyz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if hasattr(self, "_log") and not self._log.closed:
            self._log.close()


def event(i: int | str, text: str, **extra: Any) -> bytes:
    return orjson.dumps({"id": str(i), "source": "test", "text": text, **extra})


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    keys: Iterable[bytes | None] | None = None,
    *,
    compression_type: str | None = None,
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=10,
        max_request_size=16 * 1024 * 1024,
        compression_type=compression_type,
    )
    await producer.start()
    count = 0
    try:
        futures = []
        key_iter = iter(keys) if keys is not None else None
        for value in values:
            key = next(key_iter) if key_iter is not None else None
            futures.append(await producer.send(topic, value=value, key=key))
            count += 1
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def consume(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    timeout: float,
    idle_after_expect: float = 0.0,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Read from the beginning until ``expect`` records (then ``idle_after_expect`` more
    seconds, to catch extras) or the timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    reached_at: float | None = None
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
            if len(records) >= expect:
                if reached_at is None:
                    reached_at = time.monotonic()
                if time.monotonic() - reached_at >= idle_after_expect:
                    break
    finally:
        await consumer.stop()
    return records


def metric_value(worker: WorkerProcess, name: str, **labels: str) -> float:
    """One sample from the worker's /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = worker.get("/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class RedisServer:
    """A private redis-server on a free port, for tests that stop and start Redis."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
