"""The Faust app and agent: Kafka in, the runtime in the middle, Kafka out.

Faust owns the consumer group (assignment, rebalances, commits); contentstream owns
concurrency and the order of acknowledgements (streams/engines/faust_runtime.py). The agent reads
raw bytes with Faust's ``raw`` serializer and never deserialises itself, so no payload
can crash it.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import EventT

from streams.kafka.clients import MAX_RECORD_BYTES
from streams.kafka.records import Headers, InputRecord, input_record
from streams.security import faust_broker_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)


class FaustSink:
    """RecordSink over Faust's producer: returns once the broker acknowledged."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        await self._app.producer.send_and_wait(
            topic, key=key, value=value, partition=None, timestamp=None, headers=headers or None
        )


def create_app(settings: Settings, *, extra: dict[str, Any] | None = None) -> faust.App:
    conf: dict[str, Any] = {
        "value_serializer": "raw",
        "key_serializer": "raw",
        "web_enabled": False,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "producer_acks": -1,
        # Many results are in flight at once; a few ms of linger packs them into far
        # fewer produce requests.
        "producer_linger": 0.005,
        "producer_max_request_size": MAX_RECORD_BYTES,
        "producer_compression_type": settings.producer_compression,
        "consumer_auto_offset_reset": settings.kafka_auto_offset_reset,
        "broker_commit_interval": settings.commit_interval_s,
        "processing_guarantee": settings.processing_guarantee,
        # Faust's own timeout would log warnings for events our runtime holds on purpose.
        "stream_processing_timeout": max(300.0, settings.stage_timeout_s * 4),
        "stream_buffer_maxsize": max(settings.in_flight_limit * 2, 512),
        "consumer_max_fetch_size": max(settings.max_payload_bytes * 2, 4 * 1024 * 1024),
        "table_cleanup_interval": 3600.0,
        "worker_redirect_stdouts": False,
        # contentstream drains in-flight events itself (GracefulWorker); Faust waiting
        # for acks of events that were never started would hang shutdown forever.
        "stream_wait_empty": False,
    }
    conf.update(faust_broker_kwargs(settings))  # broker URLs and credentials
    conf.update(extra or {})
    return faust.App(settings.app_id, **conf)


def declare_topics(app: faust.App, settings: Settings) -> tuple[Any, Any, Any]:
    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication_factor,
        )

    return (
        topic(settings.input_topic),
        topic(settings.output_topic),
        topic(settings.dead_letter_topic),
    )


def to_record(event: EventT[Any]) -> InputRecord:
    """Faust gives the record timestamp in seconds."""
    message = event.message
    return input_record(message, timestamp_s=message.timestamp)
