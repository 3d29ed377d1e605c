"""Consumed messages of either Kafka client as InputRecords."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord

from streams.engines.batch import to_record
from streams.kafka.records import input_record


def test_aiokafka_record_timestamp_in_ms_and_header_pairs() -> None:
    message = ConsumerRecord(
        topic="raw",
        partition=2,
        offset=41,
        timestamp=1_700_000_000_123,
        timestamp_type=0,
        key=b"k",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=[("trace", b"abc"), ("n", "1")],
    )
    record = to_record(message)
    assert (record.topic, record.partition, record.offset) == ("raw", 2, 41)
    assert record.key == b"k" and record.value == b"{}"
    assert record.timestamp == 1_700_000_000.123
    assert record.headers == [("trace", b"abc"), ("n", b"1")]


def test_dict_headers_and_none() -> None:
    base = dict(topic="t", partition=0, offset=0, key=None, value=None)
    as_dict = input_record(SimpleNamespace(**base, headers={"a": b"1"}), timestamp_s=5.0)
    assert as_dict.headers == [("a", b"1")] and as_dict.timestamp == 5.0
    for empty in (None, [], {}):
        assert input_record(SimpleNamespace(**base, headers=empty), timestamp_s=None).headers == []
