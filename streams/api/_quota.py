"""Per-tenant quotas shared by every API replica: GCRA in one Redis script.

Each tenant has two limits, requests/s and texts/s (an event counts as a text), each
with a burst of ``burst_s`` seconds of its rate. GCRA keeps one number per limit, the
theoretical arrival time (TAT): a request of cost ``c`` is allowed when
``TAT + c·T - burst·T <= now`` (T = 1/rate), or when the bucket is full (TAT <= now,
so a batch larger than the burst is not refused for ever: it spends the burst and
leaves a debt the next requests wait out). Both limits are checked and updated in one
script (atomic), with the time from Redis' own clock, so replicas with skewed clocks
share one limit.

When Redis cannot be reached, each replica falls back to a local bucket with the same
limits (so N replicas may admit up to N times the limit for as long as Redis is away)
and tries Redis again after ``retry_after_s``: the API keeps answering.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "contentstream:quota:v1:"

# KEYS[1], KEYS[2]: TAT of the request and text limits (seconds, as strings).
# ARGV: T_requests, burst_requests, T_texts, burst_texts, cost_texts, ttl_s.
# Returns {allowed (0/1), retry_after_s, remaining_requests, remaining_texts, which}
# with floats as strings (Redis truncates Lua numbers to integers).
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function check(key, period, burst, cost)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * period
  local allow_at = new_tat - burst * period
  if allow_at <= now + 1e-6 or tat <= now then
    return true, 0, new_tat
  end
  return false, allow_at - now, tat
end
local ok1, wait1, tat1 = check(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1)
local ok2, wait2, tat2 = check(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
if ok1 and ok2 then
  local ttl = tonumber(ARGV[6])
  local p1, b1 = tonumber(ARGV[1]), tonumber(ARGV[2])
  local p2, b2 = tonumber(ARGV[3]), tonumber(ARGV[4])
  redis.call('SET', KEYS[1], tostring(tat1), 'EX', ttl)
  redis.call('SET', KEYS[2], tostring(tat2), 'EX', ttl)
  local rem1 = math.floor((now - (tat1 - b1 * p1)) / p1)
  local rem2 = math.floor((now - (tat2 - b2 * p2)) / p2)
  return {1, '0', tostring(rem1), tostring(rem2), ''}
end
local which = 'requests'
local wait = wait1
if not ok2 and (ok1 or wait2 > wait1) then
  which = 'texts'
  wait = wait2
end
return {0, tostring(wait), '0', '0', which}
"""


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_s: float
    texts_per_s: float
    burst_s: float

    @property
    def request_burst(self) -> float:
        return max(1.0, self.requests_per_s * self.burst_s)

    @property
    def text_burst(self) -> float:
        return max(1.0, self.texts_per_s * self.burst_s)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float
    remaining_requests: int
    remaining_texts: int
    limit: str  # which limit refused: "requests" or "texts" ("" when allowed)
    source: str  # "redis" or "local"

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class LocalBuckets:
    """The same GCRA in this process (the fallback, and the reference in tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_tenants: int = 10_000):
        self._clock = clock
        self._tat: dict[tuple[str, str], float] = {}
        self._max = max_tenants

    def check(self, tenant: str, limits: Limits, texts: int) -> Decision:
        now = self._clock()
        req_key, txt_key = (tenant, "requests"), (tenant, "texts")
        ok1, wait1, tat1 = _check(
            self._tat.get(req_key, 0.0), now, 1 / limits.requests_per_s, limits.request_burst, 1
        )
        ok2, wait2, tat2 = _check(
            self._tat.get(txt_key, 0.0), now, 1 / limits.texts_per_s, limits.text_burst, texts
        )
        if ok1 and ok2:
            if len(self._tat) > self._max:
                self._tat.clear()  # only ever reached by a flood of tenants: forget, not grow
            self._tat[req_key] = tat1
            self._tat[txt_key] = tat2
            rem1 = (now - (tat1 - limits.request_burst / limits.requests_per_s)) * (
                limits.requests_per_s
            )
            rem2 = (now - (tat2 - limits.text_burst / limits.texts_per_s)) * limits.texts_per_s
            return Decision(True, 0.0, math.floor(rem1), math.floor(rem2), "", "local")
        texts_refused = not ok2 and (ok1 or wait2 > wait1)
        return Decision(
            False,
            wait2 if texts_refused else wait1,
            0,
            0,
            "texts" if texts_refused else "requests",
            "local",
        )


def _check(
    tat: float, now: float, period: float, burst: float, cost: int
) -> tuple[bool, float, float]:
    tat = max(tat, now)
    new_tat = tat + cost * period
    allow_at = new_tat - burst * period
    # The epsilon: the sum of many float periods must not refuse the burst's last one.
    if allow_at <= now + 1e-6 or tat <= now:
        return True, 0.0, new_tat
    return False, allow_at - now, tat


class QuotaLimiter:
    """Redis GCRA with a local fallback; never raises to the caller."""

    def __init__(
        self,
        client: Any | None,
        *,
        retry_after_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._script = client.register_script(_GCRA_LUA) if client is not None else None
        self.local = LocalBuckets(clock)
        self._clock = clock
        self._retry_after = retry_after_s
        self._open_until = 0.0
        self._on_fallback = on_fallback
        self._last_log = -1e9
        self.redis_available = client is not None

    async def check(self, tenant: str, limits: Limits, texts: int) -> Decision:
        texts = max(1, texts)
        if self._script is None or self._clock() < self._open_until:
            return self._fallback(tenant, limits, texts)
        keys = [f"{KEY_PREFIX}{tenant}:requests", f"{KEY_PREFIX}{tenant}:texts"]
        ttl = math.ceil(limits.burst_s + 60 + texts / limits.texts_per_s)
        try:
            reply = await self._script(
                keys=keys,
                args=[
                    repr(1 / limits.requests_per_s),
                    repr(limits.request_burst),
                    repr(1 / limits.texts_per_s),
                    repr(limits.text_burst),
                    texts,
                    ttl,
                ],
            )
        except Exception as exc:
            self._failed(exc)
            return self._fallback(tenant, limits, texts)
        if not self.redis_available:
            log.info("Redis available again; per-tenant quotas shared again")
        self.redis_available = True
        allowed, wait, rem1, rem2, which = reply
        return Decision(
            bool(int(allowed)),
            float(wait),
            int(float(rem1)),
            int(float(rem2)),
            which.decode() if isinstance(which, bytes) else str(which),
            "redis",
        )

    def _fallback(self, tenant: str, limits: Limits, texts: int) -> Decision:
        if self._on_fallback is not None and self._script is not None:
            self._on_fallback()
        return self.local.check(tenant, limits, texts)

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._open_until = now + self._retry_after
        self.redis_available = False
        if now - self._last_log >= 60.0:
            self._last_log = now
            log.warning(
                "Redis unavailable for quotas (%s); each replica enforces its own local "
                "buckets until it is back",
                type(exc).__name__,
            )
