"""Backpressure: a bounded number of texts in analysis at once, shared fairly.

A request that does not fit is refused at once (503 + Retry-After) rather than queued:
a queue without bound is how the tutorial's service turned a burst into minutes of
latency for everyone. One tenant may hold at most ``tenant_share`` of the capacity, so
its flood leaves room for the others; a tenant with nothing in flight is always let in
when the total has room (a batch larger than the share must not be refused for ever).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # "capacity" or "tenant_share"
    retry_after_s: int


class Admission:
    def __init__(self, capacity: int, tenant_share: float, retry_after_s: int = 1) -> None:
        self.capacity = capacity
        self.tenant_cap = max(1, math.floor(capacity * tenant_share))
        self._retry_after = retry_after_s
        self._held: Counter[str] = Counter()
        self.in_flight = 0

    def held(self, tenant: str) -> int:
        return self._held[tenant]

    def try_acquire(self, tenant: str, texts: int) -> Refusal | None:
        """Take ``texts`` slots for ``tenant``; a refusal when they are not there."""
        if self.in_flight + texts > self.capacity and self.in_flight > 0:
            return Refusal("capacity", self._retry_after)
        held = self._held[tenant]
        if held and held + texts > self.tenant_cap:
            return Refusal("tenant_share", self._retry_after)
        self._held[tenant] = held + texts
        self.in_flight += texts
        return None

    def release(self, tenant: str, texts: int) -> None:
        self.in_flight -= texts
        left = self._held[tenant] - texts
        if left > 0:
            self._held[tenant] = left
        else:
            del self._held[tenant]
