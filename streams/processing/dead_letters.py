"""Building and publishing dead letters: the original bytes, the reason in headers.

Building one never fails: it is what a worker falls back on when anything else about an
event failed. The ``contentstream-*`` headers a record arrives with are the producer's
word, not the worker's: they are read only as the origin of a replayed record
(``contentstream replay`` carries them over), only when they form a well-formed, possible
origin, and they never steer processing; otherwise the dead letter names the record's
own topic, partition and offset, first seen now, attempt 1.
"""

from __future__ import annotations

import base64
import logging
import re
from datetime import UTC, datetime

from schemas.dead_letter import HEADER_NAMES, DeadLetter
from schemas.errors import ContentStreamError, ErrorCode
from streams.kafka.records import InputRecord
from streams.processing.decoding import peek_event_id

log = logging.getLogger(__name__)

# Kafka's own rules for topic names; anything else cannot be where a record came from.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_NUMBER = re.compile(r"[0-9]{1,19}")  # int() would also take " 5", "+5", "5_0", "٥"
_MAX_PARTITION = 2**31 - 1
_MAX_OFFSET = 2**63 - 1
_MAX_ATTEMPTS = 1_000_000


def _number(raw: bytes | None, maximum: int) -> int | None:
    if raw is None:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if _NUMBER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None


def _origin(record: InputRecord, previous: dict[str, bytes]) -> tuple[str, int, int] | None:
    """Where a replayed record was first read, when its headers say so consistently."""
    raw_topic = previous.get(HEADER_NAMES["topic"])
    partition = _number(previous.get(HEADER_NAMES["partition"]), _MAX_PARTITION)
    offset = _number(previous.get(HEADER_NAMES["offset"]), _MAX_OFFSET)
    if raw_topic is None or partition is None or offset is None:
        return None
    try:
        topic = raw_topic.decode("ascii")
    except UnicodeDecodeError:
        return None
    if _TOPIC.fullmatch(topic) is None:
        return None
    if (topic, partition) == record.tp and offset >= record.offset:
        return None  # a record cannot be a replay of itself or of a later one
    return topic, partition, offset


def _first_seen(raw: bytes | None, now: datetime) -> datetime:
    if not raw or len(raw) > 64:
        return now
    try:
        seen = datetime.fromisoformat(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return now
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen if seen <= now else now


def build_dead_letter(
    record: InputRecord, error: ContentStreamError, *, stage: str, max_peek_bytes: int
) -> DeadLetter:
    """The dead letter of ``record``; never raises."""
    try:
        return _build(record, error, stage=stage, max_peek_bytes=max_peek_bytes)
    except Exception as exc:  # a bug here must not cost more than this record's details
        log.exception("building a dead letter failed; publishing a minimal one")
        return DeadLetter(
            error_code=ErrorCode.INTERNAL_ERROR,
            message=f"{_code(error)}; building its dead letter failed: {type(exc).__name__}",
            stage="dead-letter",
            source_topic=str(record.topic),
            source_partition=int(record.partition),
            source_offset=int(record.offset),
            first_seen=datetime.now(UTC),
            original_b64=base64.b64encode(record.value or b"").decode("ascii"),
        )


def _code(error: object) -> str:
    code = getattr(error, "code", None)
    return code.value if isinstance(code, ErrorCode) else ErrorCode.INTERNAL_ERROR.value


def _build(
    record: InputRecord, error: ContentStreamError, *, stage: str, max_peek_bytes: int
) -> DeadLetter:
    now = datetime.now(UTC)
    previous: dict[str, bytes] = {}
    for name, value in record.headers:
        if name.startswith("contentstream-") and isinstance(value, bytes):
            previous[name] = value
    origin = _origin(record, previous)
    if origin is None:
        topic, partition, offset = record.topic, record.partition, record.offset
        first_seen, attempts = now, 1
    else:
        topic, partition, offset = origin
        first_seen = _first_seen(previous.get(HEADER_NAMES["first_seen"]), now)
        earlier = _number(previous.get(HEADER_NAMES["attempts"]), _MAX_ATTEMPTS)
        attempts = earlier + 1 if earlier else 2  # a replay is at least a second attempt
    code = error.code if isinstance(error.code, ErrorCode) else ErrorCode.INTERNAL_ERROR
    return DeadLetter(
        error_code=code,
        message=str(error.message),
        stage=str(error.stage or stage),
        event_id=peek_event_id(record.value, max_peek_bytes),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        first_seen=first_seen,
        attempts=attempts,
        original_b64=base64.b64encode(record.value or b"").decode("ascii"),
    )


def log_dead_letter(record: InputRecord, error: ContentStreamError, letter: DeadLetter) -> None:
    log.info(
        "dead-lettered %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        f"{letter.error_code.value}: {letter.message}",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error_code": letter.error_code.value,
            "stage": letter.stage,
            "event_id": letter.event_id,
        },
    )
