"""Creates the contentstream topics when they are missing, with the configured layout.

Faust only subscribes to topics that exist when it starts, and a broker's automatic
topic creation would give the raw topic one partition: no scaling. So the worker and
the CLI make sure the three topics exist first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from schemas.errors import ConfigurationError
from streams.kafka.clients import MAX_RECORD_BYTES
from streams.settings import Settings

log = logging.getLogger(__name__)


def _refusals(topic_errors: Iterable[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """(topic, reason) of each topic the broker did not create. The admin client does
    not raise for these: the response carries an error code per topic. A topic that
    already exists is fine (another worker won the race)."""
    refused = []
    for name, code, *message in topic_errors:
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        detail = message[0] if message and message[0] else ""
        reason = for_code(code).__name__
        refused.append((str(name), f"{reason}: {detail}" if detail else reason))
    return refused


def topic_names(settings: Settings) -> list[str]:
    return [settings.input_topic, settings.output_topic, settings.dead_letter_topic]


async def ensure_topics(settings: Settings, *, timeout_s: float = 60.0) -> list[str]:
    """Create missing topics; returns the names created."""
    from streams.security import aiokafka_client_kwargs

    admin = AIOKafkaAdminClient(
        request_timeout_ms=int(timeout_s * 1000),
        **aiokafka_client_kwargs(settings),
    )
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)}
                if name == settings.dead_letter_topic
                else {},
            )
            for name in missing
        ]
        response = await admin.create_topics(new)
        refused = _refusals(response.topic_errors)
        if refused:
            raise ConfigurationError(
                "cannot create topic(s): "
                + "; ".join(f"{name}: {reason}" for name, reason in refused)
                + " (create them yourself, or fix CONTENTSTREAM_TOPIC_PARTITIONS / "
                "CONTENTSTREAM_TOPIC_REPLICATION_FACTOR or the worker's ACLs)"
            )
        log.info("created topics %s with %d partitions", missing, settings.topic_partitions)
        return missing
    finally:
        await admin.close()
