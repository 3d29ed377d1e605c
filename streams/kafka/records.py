"""Transport-neutral views of Kafka records, so processing logic is testable without Kafka."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, bytes]]
# (topic, partition): the one spelling of a topic-partition inside contentstream; the
# clients' own types are converted at their edges.
TopicPartition = tuple[str, int]


def as_headers(pairs: Iterable[tuple[Any, Any]]) -> Headers:
    """Kafka client headers as (str, bytes) pairs, whatever the client handed over."""
    return [(str(k), v if isinstance(v, bytes) else str(v).encode("utf-8")) for k, v in pairs]


@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # seconds since the epoch (Kafka's record timestamp)
    headers: Headers = field(default_factory=list)

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to publish; its partition is chosen from the key (streams/kafka/partitioning.py)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


def input_record(message: Any, *, timestamp_s: float | None) -> InputRecord:
    """A consumed Kafka message (aiokafka's ConsumerRecord, Faust's Message) as an
    InputRecord. The clients differ in the timestamp's unit (ms vs s: the caller
    converts) and in the headers' form (pairs vs dict)."""
    raw = message.headers
    pairs = raw.items() if isinstance(raw, dict) else raw
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=timestamp_s,
        headers=as_headers(pairs) if pairs else [],
    )
