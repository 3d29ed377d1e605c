"""RedisDedupStore against the real Redis: batched stores and lookups, with their TTL."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from services import ServiceEndpoints

from streams.dedup import RedisDedupStore

pytestmark = pytest.mark.integration


async def test_put_many_stores_every_value_with_its_ttl(services: ServiceEndpoints) -> None:
    assert services.redis_url is not None
    store = RedisDedupStore(services.redis_url, ttl_s=120)
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
    finally:
        await client.delete(*(k for k, _ in items))
        await client.aclose()
        await store.close()
