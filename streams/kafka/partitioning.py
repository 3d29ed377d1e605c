"""Which partition a keyed record goes to: Kafka's default (murmur2) partitioner.

The same partition the Java client and aiokafka's ``send`` pick, so a result lands
where its id's results always land. aiokafka's own murmur2 works a byte at a time
(~3.8 µs per short key here, once per published record); this one unpacks the 4-byte
words in one call (~1 µs). Equality with aiokafka's is tested on random keys.
"""

from __future__ import annotations

import random
import struct
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@lru_cache(maxsize=256)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    count = length >> 2
    for k in _words(count).unpack_from(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = count << 2
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes | None, partitions: list[int]) -> int:
    """The partition of ``key`` among ``partitions`` (sorted ids); a random one for no key."""
    if key is None:
        return random.choice(partitions)
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
