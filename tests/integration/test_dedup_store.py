"""RedisDedupStore against the real Redis: batched stores and lookups, with their TTL."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from services import ServiceEndpoints

from streams.processing.dedup import RedisDedupStore

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("compress", [False, True])
async def test_put_many_stores_every_value_with_its_ttl(
    services: ServiceEndpoints, compress: bool
) -> None:
    store = RedisDedupStore(services.redis_url, ttl_s=120, compress_values=compress)
    prefix = f"contentstream:test:{uuid.uuid4().hex}:"
    items = [(f"{prefix}{i}", f"value {i} 你好".encode() * 20) for i in range(300)]
    client = aioredis.from_url(services.redis_url)
    try:
        await store.put_many(items)
        assert store.available
        found = await store.get_many([k for k, _ in items] + [prefix + "missing"])
        assert found == [v for _, v in items] + [None]
        ttls = [await client.ttl(k) for k, _ in items[::50]]
        assert all(0 < t <= 120 for t in ttls), ttls
        raw = await client.get(items[0][0])
        assert (raw != items[0][1]) is compress
        # Values written the other way are read back too (a setting changed).
        other = RedisDedupStore(services.redis_url, ttl_s=120, compress_values=not compress)
        assert await other.get_many([items[0][0]]) == [items[0][1]]
        await other.close()
    finally:
        await client.delete(*(k for k, _ in items))
        await client.aclose()
        await store.close()
