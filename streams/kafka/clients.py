"""aiokafka clients for the CLI tools, configured from Settings (security included)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
)

from streams.settings import Settings

# What a broker answers for a record it will never take as it is (larger than the
# topic's max.message.bytes, a batch over the limit, a record it cannot read): sending
# it again cannot help, unlike every other produce error.
RECORD_REFUSALS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
)
# After these an idempotent aiokafka producer's sequence numbers for the partition no
# longer match the broker's (it does not take back those of a refused batch): every
# later batch there is refused as out of order until the producer is replaced.
PRODUCER_SEQUENCE_BREAKERS: tuple[type[Exception], ...] = (
    *RECORD_REFUSALS,
    OutOfOrderSequenceNumber,
)


# The largest record this project writes or reads: the producers' request limit, a
# partition fetch, and the dead-letter topic's max.message.bytes (so an original that
# fitted the input topic fits its dead letter).
MAX_RECORD_BYTES = 16 * 1024 * 1024


def _security(settings: Settings) -> dict[str, Any]:
    from streams.security import aiokafka_client_kwargs

    return aiokafka_client_kwargs(settings)


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    kwargs: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_request_size": MAX_RECORD_BYTES,
        "request_timeout_ms": 30_000,
        "compression_type": settings.producer_compression,
    }
    kwargs.update(_security(settings))  # bootstrap_servers + security
    kwargs.update(overrides)
    return AIOKafkaProducer(**kwargs)


def make_transactional_producer(settings: Settings, transactional_id: str) -> AIOKafkaProducer:
    """The producer of one input partition under exactly_once (streams/kafka/transactions.py).

    Its records go out as whole record batches at commit time, so it does not linger;
    ``transactional_id`` is stable per input partition: a new producer under it fences
    every older one."""
    return make_producer(
        settings,
        transactional_id=transactional_id,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=MAX_RECORD_BYTES,
    )


def make_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    kwargs: dict[str, Any] = {
        "enable_auto_commit": False,
        "auto_offset_reset": "latest",
        "max_partition_fetch_bytes": MAX_RECORD_BYTES,
        "fetch_max_bytes": 64 * 1024 * 1024,
    }
    kwargs.update(_security(settings))
    kwargs.update(overrides)
    return AIOKafkaConsumer(*topics, **kwargs)
