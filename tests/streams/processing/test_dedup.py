import time
from typing import Any

from streams.processing.dedup import (
    LruDedupStore,
    RedisDedupStore,
    dedup_key,
    hiredis_packed,
)


def test_key_depends_on_text_analyses_and_versions() -> None:
    base = dedup_key("t1", ["sentiment", "keywords"], {"sentiment": "a", "keywords": "b"})
    assert base == dedup_key("t1", ["keywords", "sentiment"], {"sentiment": "a", "keywords": "b"})
    assert base != dedup_key("t2", ["sentiment", "keywords"], {"sentiment": "a", "keywords": "b"})
    assert base != dedup_key("t1", ["sentiment"], {"sentiment": "a", "keywords": "b"})
    assert base != dedup_key("t1", ["sentiment", "keywords"], {"sentiment": "z", "keywords": "b"})


def test_key_names_the_tenant_the_language_hint_and_the_exact_text() -> None:
    names, versions = ["keywords"], {"keywords": "b"}
    base = dedup_key("同样 的文本", names, versions, tenant="a")
    # Whitespace and NFKC variants share a content_hash but not an analysis: the
    # stored entity offsets index the exact text.
    assert base != dedup_key("同样  的文本", names, versions, tenant="a")
    assert base != dedup_key("同样 的文本", names, versions, tenant="b")
    assert base != dedup_key("同样 的文本", names, versions, tenant=None)
    assert base != dedup_key("同样 的文本", names, versions, tenant="a", language="zh")
    # A tenant name cannot pose as another tenant plus a language hint.
    assert dedup_key("x", names, versions, tenant="a2:zh") != dedup_key(
        "x", names, versions, tenant="a", language="zh"
    )
    shared = dedup_key("x", names, versions, tenant="a", scope="global")
    assert shared == dedup_key("x", names, versions, tenant="b", scope="global")
    assert shared != dedup_key("x", names, versions, tenant="b", language="en", scope="global")


async def test_lru_store_expires_and_evicts() -> None:
    now = [0.0]
    store = LruDedupStore(max_entries=2, ttl_s=10, clock=lambda: now[0])
    await store.put("a", b"A" * 1000)
    await store.put("b", b"B")
    assert await store.get("a") == b"A" * 1000
    await store.put("c", b"C")  # evicts the least recently used: b
    assert await store.get("b") is None
    now[0] = 11.0
    assert await store.get("a") is None


async def test_redis_store_never_raises_and_counts_unavailability() -> None:
    unavailable = []
    store = RedisDedupStore(
        "redis://127.0.0.1:1/0",  # nothing listens on port 1
        ttl_s=60,
        on_unavailable=lambda: unavailable.append(1),
        op_timeout_s=0.2,
        retry_after_s=30,
    )
    started = time.monotonic()
    assert await store.get("k") is None
    await store.put("k", b"v")
    assert await store.get("k") is None
    assert time.monotonic() - started < 2.0, "an open circuit must not wait on Redis"
    assert len(unavailable) == 3
    assert store.available is False
    await store.close()


def test_key_from_a_shared_suffix_is_the_same_key() -> None:
    from streams.processing.dedup import dedup_key_suffix, dedup_key_with, dedup_owner

    versions = {"sentiment": "a", "keywords": "b"}
    suffix = dedup_key_suffix(["sentiment", "keywords"], versions)
    owner = dedup_owner("acme", "zh")
    # The stored key format: changing it orphans every stored analysis (bump the prefix).
    import hashlib

    expected = hashlib.sha256(
        "5:=acme2:zh|keywords,sentiment|keywords=b|sentiment=a|文本".encode()
    ).hexdigest()
    assert dedup_key_with("文本", owner, suffix) == "contentstream:dedup:v2:" + expected
    assert dedup_key_with("文本", owner, suffix) == dedup_key(
        "文本", ["keywords", "sentiment"], versions, tenant="acme", language="zh"
    )


def test_hiredis_packing_sends_the_bytes_redis_py_would() -> None:
    from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

    plain, packed = Connection(), hiredis_packed(Connection)()
    assert type(packed).__name__ == "HiredisPackedConnection"
    commands: list[tuple[Any, ...]] = [
        ("MGET", "contentstream:dedup:v1:ab", "k2"),
        ("EVALSHA", "deadbeef", 2, "k1", "k2", 3600, b'{"id":"1"}', "文本".encode()),
        ("CONFIG GET", "maxmemory"),
        (b"CLIENT SETNAME", "worker-1"),
        ("SET", "k", b"\x00\xff" * 40_000, "EX", 60),
    ]
    for args in commands:
        assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args))
    # The URL's choice of connection (TLS, unix socket) is kept.
    assert issubclass(hiredis_packed(SSLConnection), SSLConnection)
    assert issubclass(hiredis_packed(UnixDomainSocketConnection), UnixDomainSocketConnection)
