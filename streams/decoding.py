"""Raw Kafka record value -> ContentEvent, or a precise rejection.

The agent receives raw bytes and decodes them here so that no payload, however
malformed, can raise anywhere but in this function, and every rejection carries the
error code that lands in the dead-letter headers.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from schemas.errors import (
    ErrorCode,
    InvalidEncoding,
    InvalidEvent,
    InvalidJson,
    PayloadTooLarge,
    TextTooLong,
)
from schemas.events import ContentEvent


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def peek_event_id(raw: bytes | None, max_bytes: int) -> str | None:
    """The event id of a rejected payload when one is readable (for dead letters)."""
    if raw is None or len(raw) > max_bytes:
        return None
    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(payload, dict):
        value = payload.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:256]
    return None


class EventDecoder:
    """Validates raw bytes against the ContentEvent v1 contract and the size limits."""

    def __init__(self, *, max_payload_bytes: int, max_text_chars: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.max_text_chars = max_text_chars

    def decode(self, raw: bytes | None) -> ContentEvent:
        if raw is None:
            raise InvalidEvent("record has no value (tombstone)", code=ErrorCode.INVALID_EVENT)
        if len(raw) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload is {len(raw)} bytes; the limit is {self.max_payload_bytes}"
            )
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # orjson rejects invalid UTF-8 too, but as a JSON error: tell the producer
            # the real cause. (Checked only on failure: orjson validates UTF-8 anyway.)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise InvalidEncoding(f"payload is not valid UTF-8 (byte {bad.start})") from None
            raise InvalidJson(f"payload is not JSON: {exc}") from None
        return self.validate(payload)

    def validate(self, payload: Any) -> ContentEvent:
        if not isinstance(payload, dict):
            raise InvalidEvent(
                f"event must be a JSON object, got {type(payload).__name__}",
            )
        text = payload.get("text")
        if "text" not in payload or text is None:
            raise InvalidEvent("event has no 'text'", code=ErrorCode.MISSING_TEXT)
        if isinstance(text, str):
            if not text.strip():
                raise InvalidEvent("event 'text' is empty", code=ErrorCode.EMPTY_TEXT)
            if len(text) > self.max_text_chars:
                raise TextTooLong(
                    f"text has {len(text)} characters; the limit is {self.max_text_chars}"
                )
        try:
            return ContentEvent.model_validate(payload)
        except ValidationError as exc:
            code = ErrorCode.INVALID_EVENT
            if any(e["loc"][:1] == ("analyses",) for e in exc.errors()):
                code = ErrorCode.UNKNOWN_ANALYSIS
            elif any(e["loc"][:1] == ("schema_version",) for e in exc.errors()):
                code = ErrorCode.UNSUPPORTED_VERSION
            raise InvalidEvent(
                f"event does not match ContentEvent v1: {_describe(exc)}", code=code
            ) from None
