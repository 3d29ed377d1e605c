"""Property-based fuzzing of the decoder and of the processor both engines share: arbitrary
bytes, arbitrary JSON (deep nesting included), event-shaped JSON with hostile field
values, arbitrary headers. ``process()`` never raises, and every record yields exactly
one result or one dead letter (dedup and the fake analysis included)."""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_untrusted_records import Engine

from schemas.dead_letter import HEADER_NAMES, DeadLetter
from schemas.errors import EventRejected
from schemas.events import ContentEvent
from streams.kafka.records import Headers, InputRecord
from streams.processing.decoding import EventDecoder
from streams.processing.processor import Outcome

# More for a long hunt: FUZZ_EXAMPLES=5000 pytest tests/streams/processing/test_fuzz_processing.py
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _deep(depth: int, leaf: bytes) -> bytes:
    return b'{"a": ' * depth + leaf + b"}" * depth


deep_json = st.builds(
    _deep, st.integers(min_value=1, max_value=400), st.sampled_from([b"1", b"[]", b"{}"])
)

texts = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(["北京", "好" * 60, " " * 50 + "\n", "北京  北京", "a\u0000b"]),
)
ids = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
)
events = st.fixed_dictionaries(
    {"id": ids, "text": texts},
    optional={
        "tenant": st.one_of(st.none(), st.sampled_from(["a", "b"]), st.text(max_size=5)),
        "language": st.one_of(st.none(), st.sampled_from(["zh", "en"]), st.integers(-5, 5)),
        "analyses": st.one_of(
            st.none(),
            st.lists(st.sampled_from(["language", "entities", "keywords", "nope"]), max_size=3),
        ),
        "schema_version": st.one_of(st.just(1), st.just(True), st.just(1.0), st.just(2)),
        "metadata": json_values,
        "source": st.text(max_size=5),
        "extra": json_values,
    },
)


def _event_bytes(event: dict[str, Any], deep: bytes | None) -> bytes:
    raw = orjson.dumps(event)
    if deep is None:
        return raw
    return raw[:-1] + (b", " if len(event) else b"") + b'"metadata": ' + deep + b"}"


values = st.one_of(
    st.binary(max_size=64),
    st.none(),
    json_values.map(orjson.dumps),
    deep_json,
    st.builds(_event_bytes, events, st.none() | deep_json),
    st.builds(_event_bytes, events, st.none()),
)
header_names = st.one_of(st.sampled_from(sorted(HEADER_NAMES.values())), st.text(max_size=10))
header_values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"x", b"-5", b"0", b"99999999999999999999999", b"\xff\xfe", b"raw", b"7"]),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=5)
records = st.lists(st.tuples(values, headers), min_size=1, max_size=8)


def as_records(drawn: list[tuple[bytes | None, Headers]]) -> list[InputRecord]:
    return [
        InputRecord(topic="raw", partition=0, offset=i, key=None, value=value, headers=h)
        for i, (value, h) in enumerate(drawn)
    ]


def check_outputs(engine: Engine, records: list[InputRecord], outcomes: Counter[Outcome]) -> None:
    assert sum(outcomes.values()) == len(records)
    assert Outcome.DROPPED not in outcomes  # the policy is reuse
    assert len(engine.out.sent) == len(records), "exactly one output per record"
    letters = engine.out.letters()
    assert len(letters) == outcomes[Outcome.DEAD_LETTERED]
    for letter in letters:
        own = letter.source_topic == "raw" and 0 <= letter.source_offset < len(records)
        if own and letter.source_partition == 0 and letter.attempts == 1:
            continue
        # Else the headers named a possible origin of a replay: well-formed, and never
        # the record itself or a later one of its partition.
        assert letter.attempts >= 2
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", letter.source_topic)
        assert letter.source_partition >= 0 and letter.source_offset >= 0
        assert (letter.source_topic, letter.source_partition) != ("raw", 0) or (
            letter.source_offset < len(records) - 1
        )
    for result in engine.out.results():
        orjson.loads(orjson.dumps(result))


@FUZZ
@given(raws=st.lists(values, max_size=10))
def test_decode_many_is_decode_of_each_and_never_raises(raws: list[bytes | None]) -> None:
    decoder = EventDecoder(max_payload_bytes=100_000, max_text_chars=1000)
    decoded = decoder.decode_many(raws)
    assert len(decoded) == len(raws)
    for raw, one in zip(raws, decoded, strict=True):
        assert isinstance(one, ContentEvent | EventRejected)
        try:
            alone: ContentEvent | EventRejected = decoder.decode(raw)
        except EventRejected as exc:
            alone = exc
        if isinstance(one, EventRejected):
            assert isinstance(alone, EventRejected) and alone.code == one.code
        else:
            assert alone == one
            orjson.dumps(one.metadata)  # whatever passes can be written into a result


@FUZZ
@given(drawn=records)
def test_batch_processor_never_raises_and_answers_every_record(
    drawn: list[tuple[bytes | None, Headers]],
) -> None:
    engine = Engine()
    batch = as_records(drawn)
    outcomes = asyncio.run(engine.process(batch))
    check_outputs(engine, batch, outcomes)


def test_letters_read_back() -> None:
    """check_outputs reads dead letters back with DeadLetter.from_record: also from
    headers that are not the worker's."""
    letter = DeadLetter.from_record(
        b"x", [(HEADER_NAMES["partition"], b"x"), (HEADER_NAMES["attempts"], b"-5")]
    )
    assert letter.source_partition == -1 and letter.attempts == 1
