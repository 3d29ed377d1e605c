"""Deduplication: a repeated text costs a lookup, not an analysis.

Two stores share one small interface. ``RedisDedupStore`` is shared by all workers of a
group; ``LruDedupStore`` serves a single worker without Redis. Redis trouble never
blocks or crashes the worker: the store opens a circuit for a few seconds, counts the
miss as "unavailable", logs at most once a minute, and tries again later.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

KEY_PREFIX = "contentstream:dedup:v1:"


def dedup_key(content_hash: str, analyses: Iterable[str], versions: dict[str, str]) -> str:
    """Same text + same analyses + same analyzer versions = same analysis."""
    wanted = sorted(set(analyses))
    parts = [content_hash, ",".join(wanted)]
    parts.extend(f"{name}={versions.get(name, '?')}" for name in wanted)
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()
    return KEY_PREFIX + digest


def compress(value: bytes) -> bytes:
    return zlib.compress(value, 1)


def decompress(value: bytes) -> bytes:
    return zlib.decompress(value)


class DedupStore(Protocol):
    kind: str

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class LruDedupStore:
    kind = "memory"

    def __init__(
        self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return decompress(value)

    async def put(self, key: str, value: bytes) -> None:
        self._data[key] = (self._clock() + self._ttl, compress(value))
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def close(self) -> None:
        self._data.clear()


class RedisDedupStore:
    """Redis-backed store with a circuit breaker; never raises to the caller."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int,
        client_kwargs: dict[str, Any] | None = None,
        on_unavailable: Callable[[], None] | None = None,
        retry_after_s: float = 2.0,
        op_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis.asyncio as redis_asyncio

        kwargs: dict[str, Any] = {
            "socket_timeout": op_timeout_s,
            "socket_connect_timeout": op_timeout_s,
            "retry_on_timeout": False,
        }
        kwargs.update(client_kwargs or {})
        self._client = redis_asyncio.Redis.from_url(url, **kwargs)
        self._ttl = ttl_s
        self._on_unavailable = on_unavailable
        self._retry_after = retry_after_s
        self._clock = clock
        self._open_until = 0.0
        self._last_log = -1e9
        self.available = True

    def _circuit_open(self) -> bool:
        if self._open_until and self._clock() < self._open_until:
            if self._on_unavailable is not None:
                self._on_unavailable()
            return True
        return False

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._open_until = now + self._retry_after
        self.available = False
        if self._on_unavailable is not None:
            self._on_unavailable()
        if now - self._last_log >= 60.0:
            self._last_log = now
            log.warning(
                "Redis unavailable (%s: %s); processing continues without deduplication",
                type(exc).__name__,
                exc,
            )

    def _succeeded(self) -> None:
        if not self.available:
            log.info("Redis available again; deduplication resumed")
        self.available = True
        self._open_until = 0.0

    async def get(self, key: str) -> bytes | None:
        if self._circuit_open():
            return None
        try:
            value = await self._client.get(key)
        except Exception as exc:
            self._failed(exc)
            return None
        self._succeeded()
        if value is None:
            return None
        try:
            return decompress(value if isinstance(value, bytes) else value.encode("latin-1"))
        except zlib.error:
            return None

    async def put(self, key: str, value: bytes) -> None:
        if self._circuit_open():
            return
        try:
            await self._client.set(key, compress(value), ex=self._ttl)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:
            return False

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except Exception:  # closing a dead connection must not fail shutdown
            log.debug("error closing Redis client", exc_info=True)
