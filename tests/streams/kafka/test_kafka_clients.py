from typing import Any

import pytest
from aiokafka import codec

from streams.kafka import clients as kafka_clients
from streams.kafka.publisher import results_publisher
from streams.settings import load_settings


class _CapturedProducer:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    async def start(self) -> None:
        pass


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


async def test_both_engines_results_publisher_compresses_as_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Faust engine publishes through it too, not through Faust's producer.
    monkeypatch.setenv("KAFKA_COMPRESSION_TYPE", "lz4")
    monkeypatch.setattr(kafka_clients, "AIOKafkaProducer", _CapturedProducer)
    publisher = results_publisher(load_settings())
    await publisher.start()
    producer: Any = publisher.producer
    assert producer.kwargs["compression_type"] == "lz4"


def test_an_unknown_compression_type_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION_TYPE", "brotli")
    with pytest.raises(ValueError, match=r"kafka_compression_type|KAFKA_COMPRESSION_TYPE"):
        load_settings()


def test_every_kafka_codec_can_be_read() -> None:
    # Upstream producers choose the codec; a missing one stops the consumer at the first
    # batch that uses it (the install must bring cramjam: aiokafka[lz4,snappy,zstd]).
    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
