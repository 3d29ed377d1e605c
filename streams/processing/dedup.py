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
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

# v2: keys name the tenant, the language hint and the exact text (v1 keys named only a
# hash of the normalised text, so tenants and whitespace variants shared analyses).
KEY_PREFIX = "contentstream:dedup:v2:"

DedupScope = Literal["tenant", "global"]


def dedup_owner(tenant: str | None, language: str | None, scope: DedupScope = "tenant") -> str:
    """Who may share an analysis: the tenant (unless the scope is global) and the
    language hint, which the analysis depends on. Length-prefixed, so no tenant name
    can pose as another tenant plus a hint."""
    who = "*" if scope == "global" else ("-" if tenant is None else "=" + tenant)
    hint = language or ""
    return f"{len(who)}:{who}{len(hint)}:{hint}"


def dedup_key(
    text: str,
    analyses: Iterable[str],
    versions: dict[str, str],
    *,
    tenant: str | None = None,
    language: str | None = None,
    scope: DedupScope = "tenant",
) -> str:
    """Same owner (tenant, language hint) + exactly the same text + same analyses + same
    analyzer versions = same analysis. The exact text, not its normalised form: a stored
    result's entity offsets index the text it was computed from."""
    return dedup_key_with(
        text, dedup_owner(tenant, language, scope), dedup_key_suffix(analyses, versions)
    )


def dedup_key_suffix(analyses: Iterable[str], versions: dict[str, str]) -> str:
    """The part of a dedup key shared by every text with these analyses and versions
    (computed once per batch, not per event)."""
    wanted = sorted(set(analyses))
    return "|".join([",".join(wanted), *(f"{name}={versions.get(name, '?')}" for name in wanted)])


def dedup_key_with(text: str, owner: str, suffix: str) -> str:
    digest = hashlib.sha256(f"{owner}|{suffix}|".encode())
    # surrogatepass: a str built in Python (not decoded from JSON) may hold lone
    # surrogates; they must hash, not raise.
    digest.update(text.encode("utf-8", "surrogatepass"))
    return KEY_PREFIX + digest.hexdigest()


class BatchDedupKeys:
    """The dedup keys of one batch of events, as every path that reads or writes the
    store builds them (the batch processor, the HTTP API): the analyses-and-versions
    part once per set of analyses and the owner part once per tenant and hint, not per
    event."""

    __slots__ = ("_owners", "_scope", "_suffixes", "_versions")

    def __init__(self, versions: dict[str, str], scope: DedupScope) -> None:
        self._versions = versions
        self._scope = scope
        self._suffixes: dict[tuple[str, ...], str] = {}
        self._owners: dict[tuple[str | None, str | None], str] = {}

    def key(
        self, text: str, tenant: str | None, language: str | None, analyses: tuple[str, ...]
    ) -> str:
        suffix = self._suffixes.get(analyses)
        if suffix is None:
            suffix = self._suffixes[analyses] = dedup_key_suffix(analyses, self._versions)
        owner = self._owners.get((tenant, language))
        if owner is None:
            owner = self._owners[tenant, language] = dedup_owner(tenant, language, self._scope)
        return dedup_key_with(text, owner, suffix)


def compress(value: bytes) -> bytes:
    return zlib.compress(value, 1)


def decompress(value: bytes) -> bytes:
    return zlib.decompress(value)


def stored_value(value: bytes) -> bytes:
    """A value as read back: zlib streams (first byte 0x78) are inflated, anything
    else (a result's JSON starts with ``{``) is the value itself."""
    return zlib.decompress(value) if value[:1] == b"\x78" else value


class BulkDedupStore(Protocol):
    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def put_many(self, items: list[tuple[str, bytes]]) -> None: ...

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

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [await self.get(k) for k in keys]

    async def put_many(self, items: list[tuple[str, bytes]]) -> None:
        for k, v in items:
            await self.put(k, v)

    async def close(self) -> None:
        self._data.clear()


# SET key value EX ttl for every key: ARGV[1] is the ttl, ARGV[i + 1] the i-th value.
_PUT_MANY_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


def hiredis_packed(connection_class: type) -> type:
    """``connection_class`` (plain, TLS or unix socket, as the URL chose it) packing
    commands with hiredis' C encoder, or unchanged where hiredis is not installed.

    redis.asyncio packs in Python even when hiredis is installed: for a worker's
    batched MGET and store script that was ~9 µs per event, the largest single cost
    of deduplication (profiled)."""
    try:
        from hiredis import pack_command as pack
    except ImportError:
        return connection_class

    def pack_command(self: Any, *args: Any) -> list[bytes]:
        first = args[0]
        # Multi-word command names ("CONFIG GET") go to Redis as separate words, as
        # redis-py's own packer sends them.
        if (isinstance(first, str) and " " in first) or (
            isinstance(first, bytes) and b" " in first
        ):
            args = (*first.split(), *args[1:])
        return [pack(args)]

    return type(
        f"HiredisPacked{connection_class.__name__}",
        (connection_class,),
        {"pack_command": pack_command},
    )


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
        compress_values: bool = False,
        retry_after_s: float = 2.0,
        op_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        kwargs: dict[str, Any] = {
            # After a Redis restart the pooled connections are dead; one immediate retry
            # on a fresh connection keeps that from looking like an outage.
            "retry": Retry(NoBackoff(), 1),
            "retry_on_error": [RedisConnectionError],
            "socket_timeout": op_timeout_s,
            "socket_connect_timeout": op_timeout_s,
            "retry_on_timeout": False,
            # Lookups go a batch at a time (get_many): a few connections suffice,
            # and an unbounded pool under load is what exhausts Redis' clients.
            "max_connections": 8,
        }
        kwargs.update(client_kwargs or {})
        # A blocking pool: a burst of concurrent batches waits (up to the operation
        # timeout) for one of the few connections instead of failing as an outage.
        pool = redis_asyncio.BlockingConnectionPool.from_url(url, timeout=op_timeout_s, **kwargs)
        pool.connection_class = hiredis_packed(pool.connection_class)
        self._client = redis_asyncio.Redis(connection_pool=pool)
        self._put_script = self._client.register_script(_PUT_MANY_LUA)
        # zlib level 1 stores a result in ~1/3 of the memory but was 17 % of a busy
        # worker's CPU (profiled): off unless Redis memory is the scarcer resource.
        self._encode: Callable[[bytes], bytes] = compress if compress_values else bytes
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
            return stored_value(value if isinstance(value, bytes) else value.encode("latin-1"))
        except zlib.error:
            return None

    async def put(self, key: str, value: bytes) -> None:
        if self._circuit_open():
            return
        try:
            await self._client.set(key, self._encode(value), ex=self._ttl)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        if self._circuit_open():
            return [None] * len(keys)
        try:
            values = await self._client.mget(keys)
        except Exception as exc:
            self._failed(exc)
            return [None] * len(keys)
        self._succeeded()
        found: list[bytes | None] = []
        for value in values:
            if value is None:
                found.append(None)
                continue
            try:
                found.append(stored_value(value if isinstance(value, bytes) else value.encode()))
            except zlib.error:
                found.append(None)
        return found

    async def put_many(self, items: list[tuple[str, bytes]]) -> None:
        if not items or self._circuit_open():
            return
        try:
            # One command for the whole batch: a pipeline of SETs cost the worker
            # ~50 µs per key to pack and parse, the script ~15 µs.
            encode = self._encode
            await self._put_script(
                keys=[key for key, _ in items],
                args=[self._ttl, *(encode(value) for _, value in items)],
            )
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
