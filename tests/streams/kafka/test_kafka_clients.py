from typing import Any

import pytest
from aiokafka import codec

from streams.engines.faust_agent import create_app
from streams.kafka import clients as kafka_clients
from streams.settings import load_settings


class _CapturedProducer:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("none", None), ("gzip", "gzip"), ("snappy", "snappy"), ("lz4", "lz4"), ("zstd", "zstd")],
)
def test_the_producer_compresses_as_configured(
    monkeypatch: pytest.MonkeyPatch, setting: str, expected: str | None
) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION_TYPE", setting)
    monkeypatch.setattr(kafka_clients, "AIOKafkaProducer", _CapturedProducer)
    producer: Any = kafka_clients.make_producer(load_settings())
    assert producer.kwargs["compression_type"] == expected


def test_the_faust_engine_compresses_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION_TYPE", "lz4")
    assert create_app(load_settings()).conf.producer_compression_type == "lz4"


def test_an_unknown_compression_type_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION_TYPE", "brotli")
    with pytest.raises(ValueError, match=r"kafka_compression_type|KAFKA_COMPRESSION_TYPE"):
        load_settings()


def test_every_kafka_codec_can_be_read() -> None:
    # Upstream producers choose the codec; a missing one stops the consumer at the first
    # batch that uses it (the install must bring cramjam: aiokafka[lz4,snappy,zstd]).
    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
