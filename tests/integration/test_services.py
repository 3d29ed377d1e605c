"""The local services answer: Kafka (raw protocol + aiokafka round trip) and Redis."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from urllib.parse import urlsplit

import pytest
from services import ServiceEndpoints

pytestmark = pytest.mark.integration

FIVE_MB = 5 * 1024 * 1024
TEN_MIB = 10 * 1024 * 1024


def _host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


def test_kafka_api_versions_raw_socket(services: ServiceEndpoints) -> None:
    """ApiVersions v0 over a plain socket: the broker speaks the Kafka protocol."""
    host, port = _host_port(services.kafka_bootstrap)
    client_id = b"contentstream-test"
    correlation_id = 4242
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        payload = _recv_exact(sock, size)
    got_correlation, error_code, count = struct.unpack(">ihi", payload[:10])
    assert got_correlation == correlation_id
    assert error_code == 0
    api_keys = {struct.unpack(">hhh", payload[10 + 6 * i : 16 + 6 * i])[0] for i in range(count)}
    assert {0, 1, 3, 18} <= api_keys  # Produce, Fetch, Metadata, ApiVersions


def test_kafka_produce_consume_roundtrip(services: ServiceEndpoints) -> None:
    """Create a topic, produce a small and a 5 MB message, consume both back."""
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"it-services-{uuid.uuid4().hex[:12]}"
    small = b"hello contentstream"
    big = bytes(range(256)) * (FIVE_MB // 256)

    async def roundtrip() -> list[tuple[bytes | None, bytes | None]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name=topic, num_partitions=1, replication_factor=1)]
            )
        finally:
            await admin.close()

        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=services.kafka_bootstrap,
            max_request_size=TEN_MIB,
            acks="all",
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, small, key=b"small")
            await producer.send_and_wait(topic, big, key=b"big")
        finally:
            await producer.stop()

        consumer = aiokafka.AIOKafkaConsumer(
            topic,
            bootstrap_servers=services.kafka_bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=2 * TEN_MIB,
            max_partition_fetch_bytes=2 * TEN_MIB,
        )
        await consumer.start()
        received: list[tuple[bytes | None, bytes | None]] = []
        try:
            async with asyncio.timeout(60):
                async for msg in consumer:
                    received.append((msg.key, msg.value))
                    if len(received) == 2:
                        break
        finally:
            await consumer.stop()
        return received

    received = asyncio.run(roundtrip())
    assert received[0] == (b"small", small)
    assert received[1][0] == b"big"
    assert received[1][1] == big


def test_redis_ping(services: ServiceEndpoints) -> None:
    """PING over RESP on a raw socket answers +PONG."""
    url = urlsplit(services.redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    with socket.create_connection((host, port), timeout=10) as sock:
        if url.password:
            user = url.username or "default"
            parts = [b"AUTH", user.encode(), url.password.encode()]
            sock.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in parts))
            assert sock.recv(64).startswith(b"+OK")
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
