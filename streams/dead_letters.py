"""Building and publishing dead letters: the original bytes, the reason in headers."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from schemas.dead_letter import HEADER_NAMES, DeadLetter
from schemas.errors import ContentStreamError
from streams.decoding import peek_event_id
from streams.records import InputRecord, RecordSink

log = logging.getLogger(__name__)


def build_dead_letter(
    record: InputRecord, error: ContentStreamError, *, stage: str, max_peek_bytes: int
) -> DeadLetter:
    import base64

    previous = {name: value for name, value in record.headers}
    first_seen_raw = previous.get(HEADER_NAMES["first_seen"])
    first_seen = datetime.now(UTC)
    if first_seen_raw:
        with contextlib.suppress(ValueError):
            first_seen = datetime.fromisoformat(first_seen_raw.decode("utf-8"))
    attempts = 1
    attempts_raw = previous.get(HEADER_NAMES["attempts"])
    if attempts_raw:
        with contextlib.suppress(ValueError):
            attempts = int(attempts_raw) + 1
    # A replayed record keeps the partition/offset where it first failed.
    src_topic = previous.get(HEADER_NAMES["topic"])
    src_partition = previous.get(HEADER_NAMES["partition"])
    src_offset = previous.get(HEADER_NAMES["offset"])
    value = record.value if record.value is not None else b""
    return DeadLetter(
        error_code=error.code,
        message=error.message,
        stage=error.stage or stage,
        event_id=peek_event_id(record.value, max_peek_bytes),
        source_topic=src_topic.decode() if src_topic else record.topic,
        source_partition=int(src_partition) if src_partition else record.partition,
        source_offset=int(src_offset) if src_offset else record.offset,
        first_seen=first_seen,
        attempts=attempts,
        original_b64=base64.b64encode(value).decode("ascii"),
    )


def log_dead_letter(record: InputRecord, error: ContentStreamError, letter: DeadLetter) -> None:
    log.info(
        "dead-lettered %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        error,
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error_code": error.code.value,
            "stage": letter.stage,
            "event_id": letter.event_id,
        },
    )


class DeadLetterPublisher:
    def __init__(self, sink: RecordSink, *, topic: str, max_peek_bytes: int) -> None:
        self._sink = sink
        self.topic = topic
        self._max_peek = max_peek_bytes

    def use_sink(self, sink: RecordSink) -> None:
        self._sink = sink

    async def publish(
        self, record: InputRecord, error: ContentStreamError, *, stage: str
    ) -> DeadLetter:
        letter = build_dead_letter(record, error, stage=stage, max_peek_bytes=self._max_peek)
        log_dead_letter(record, error, letter)
        await self._sink.send(self.topic, record.key, record.value or b"", letter.headers())
        return letter
