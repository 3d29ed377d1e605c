import orjson
import pytest

from schemas.errors import ErrorCode, EventRejected
from streams.processing.decoding import EventDecoder, peek_event_id

DECODER = EventDecoder(max_payload_bytes=10_000, max_text_chars=100)


REJECTIONS = [
    (None, ErrorCode.INVALID_EVENT),
    (b"x" * 10_001, ErrorCode.PAYLOAD_TOO_LARGE),
    (b'{"id": "1", "text": "caf\xe9"}', ErrorCode.INVALID_UTF8),
    # UTF-8 is checked only when orjson fails; every kind of bad UTF-8 must still
    # be reported as such: encoded surrogates, overlong forms, past U+10FFFF, a
    # truncated sequence, bad bytes in a key or after the JSON.
    (b'{"id": "1", "text": "\xed\xa0\x80"}', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "text": "\xc0\xaf"}', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "text": "\xf4\x90\x80\x80"}', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "text": "a\xe4\xb8"}', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "t\xffext": "a"}', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "text": "ok"}\xff', ErrorCode.INVALID_UTF8),
    (b'{"id": "1", "text": "\\ud800"}', ErrorCode.INVALID_JSON),
    (b"{not json", ErrorCode.INVALID_JSON),
    (b"[1, 2]", ErrorCode.INVALID_EVENT),
    (b'{"id": "1"}', ErrorCode.MISSING_TEXT),
    (b'{"id": "1", "text": null}', ErrorCode.MISSING_TEXT),
    (b'{"id": "1", "text": " \\t\\n"}', ErrorCode.EMPTY_TEXT),
    (orjson.dumps({"id": "1", "text": "a" * 101}), ErrorCode.TEXT_TOO_LONG),
    (b'{"id": "1", "text": 5}', ErrorCode.INVALID_EVENT),
    (b'{"text": "no id"}', ErrorCode.INVALID_EVENT),
    (b'{"id": "1", "text": "x", "extra": 1}', ErrorCode.INVALID_EVENT),
    (b'{"id": "1", "text": "x", "analyses": ["nope"]}', ErrorCode.UNKNOWN_ANALYSIS),
    (b'{"id": "1", "text": "x", "schema_version": 2}', ErrorCode.UNSUPPORTED_VERSION),
    # Strict types: lax validation turned these into id 1 / version 1.
    (b'{"id": true, "text": "x"}', ErrorCode.INVALID_EVENT),
    (b'{"id": 1.5, "text": "x"}', ErrorCode.INVALID_EVENT),
    # An integer-valued float past 2**53 may have been rounded by the parse: no id.
    (b'{"id": 9007199254740994.0, "text": "x"}', ErrorCode.INVALID_EVENT),
    (b'{"id": 18446744073709551616, "text": "x"}', ErrorCode.INVALID_EVENT),
    (b'{"id": "1", "text": "x", "schema_version": true}', ErrorCode.UNSUPPORTED_VERSION),
    (b'{"id": "1", "text": "x", "schema_version": 1.5}', ErrorCode.UNSUPPORTED_VERSION),
    # produced_at is an RFC 3339 date-time string with its offset, not epoch seconds.
    (b'{"id": "1", "text": "x", "produced_at": 0}', ErrorCode.INVALID_EVENT),
    (b'{"id": "1", "text": "x", "produced_at": "1700000000"}', ErrorCode.INVALID_EVENT),
    (b'{"id": "1", "text": "x", "produced_at": "2026-01-01T08:00:00"}', ErrorCode.INVALID_EVENT),
    # metadata nested past the limit (default 32; 300 is past what orjson can write).
    (
        b'{"id": "1", "text": "x", "metadata": ' + b'{"a": ' * 33 + b"1" + b"}" * 34,
        ErrorCode.METADATA_TOO_LARGE,
    ),
    (
        b'{"id": "1", "text": "x", "metadata": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}",
        ErrorCode.METADATA_TOO_LARGE,
    ),
]


@pytest.mark.parametrize(("raw", "code"), REJECTIONS)
def test_rejections_carry_the_right_code(raw: bytes | None, code: ErrorCode) -> None:
    with pytest.raises(EventRejected) as info:
        DECODER.decode(raw)
    assert info.value.code == code
    assert not info.value.retriable
    assert info.value.message


def test_valid_event_decodes_with_defaults() -> None:
    event = DECODER.decode(
        '{"id": 7, "text": "你好", "analyses": ["sentiment"], "produced_at": '
        '"2026-01-01T00:00:00Z"}'.encode()
    )
    assert event.id == 7
    assert event.source == "unknown"
    assert [a.value for a in event.analyses or []] == ["sentiment"]
    assert event.produced_at is not None and event.produced_at.year == 2026


def test_a_number_without_fraction_is_an_integer_as_the_json_schema_says() -> None:
    # The published contract's "integer" counts 1.0 as 1; the id comes out as an int.
    event = DECODER.decode(b'{"id": 1.0, "text": "x", "schema_version": 1.0}')
    assert event.id == 1 and type(event.id) is int
    assert DECODER.decode(b'{"id": -9007199254740992.0, "text": "x"}').id == -(2**53)
    assert DECODER.decode(b'{"id": "1.0", "text": "x"}').id == "1.0"


def test_metadata_bounds_are_configurable_and_inclusive() -> None:
    decoder = EventDecoder(
        max_payload_bytes=10_000, max_text_chars=100, max_metadata_depth=3, max_metadata_bytes=20
    )
    assert decoder.decode(b'{"id": 1, "text": "x", "metadata": {"a": {"b": [1]}}}').metadata
    for metadata in (b'{"a": {"b": [[]]}}', b'{"a": "' + b"x" * 20 + b'"}'):
        with pytest.raises(EventRejected) as info:
            decoder.decode(b'{"id": 1, "text": "x", "metadata": ' + metadata + b"}")
        assert info.value.code == ErrorCode.METADATA_TOO_LARGE
    # 20 bytes exactly is allowed: {"a":"xxxxxxxxxxxx"}
    assert decoder.decode(b'{"id": 1, "text": "x", "metadata": {"a": "' + b"x" * 12 + b'"}}')


def test_empty_analyses_mean_the_default_set() -> None:
    event = DECODER.decode(b'{"id": 1, "text": "x", "analyses": []}')
    assert event.analyses is None


def test_peek_event_id_reads_ids_of_rejected_payloads() -> None:
    assert peek_event_id(b'{"id": "abc", "text": ""}', 100) == "abc"
    assert peek_event_id(b'{"id": 12}', 100) == "12"
    assert peek_event_id(b'{"id": true}', 100) is None
    assert peek_event_id(b"not json", 100) is None
    assert peek_event_id(b'{"id": "abc"}', 5) is None


VALID = [
    b'{"id": "a", "text": "\xe4\xbd\xa0\xe5\xa5\xbd"}',
    b'{"id": 7, "text": "x", "analyses": ["sentiment"], '
    b'"produced_at": "2026-01-01T08:00:00+08:00"}',
    b'{"id": "b", "text": "y", "metadata": {"k": [1, 2]}, "tenant": "t", "language": "en"}',
]


def outcome(decoded: object) -> object:
    if isinstance(decoded, EventRejected):
        return (type(decoded), decoded.code, decoded.message)
    return decoded


def test_decode_many_gives_what_decode_gives_event_by_event() -> None:
    bad = [raw for raw, _ in REJECTIONS]
    for raws in (VALID, VALID + bad, bad + VALID[:1], [VALID[0]] * 5 + [bad[-1]], bad, []):
        expected = []
        for raw in raws:
            try:
                expected.append(outcome(DECODER.decode(raw)))
            except EventRejected as exc:
                expected.append(outcome(exc))
        assert [outcome(d) for d in DECODER.decode_many(raws)] == expected
