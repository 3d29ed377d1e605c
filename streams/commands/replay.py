"""``contentstream replay``: dead letters back to the raw topic, after a fix."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.dead_letter import HEADER_NAMES, HEADER_PREFIX, DeadLetter
from streams.settings import load_settings

# Headers that describe the earlier failure and must follow the record, so a record
# that fails again keeps its first-seen time, its attempt count and its origin.
_CARRIED = {
    HEADER_NAMES["first_seen"],
    HEADER_NAMES["attempts"],
    HEADER_NAMES["topic"],
    HEADER_NAMES["partition"],
    HEADER_NAMES["offset"],
}


def carried_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers a replayed record goes back with: the origin of its failure, and
    the input headers its dead letter carried on (trace context, ``x-*``: see
    streams/kafka/headers.py); not the reason of the earlier failure."""
    return [(k, v) for k, v in headers if k in _CARRIED or not k.lower().startswith(HEADER_PREFIX)]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay",
        help="re-publish dead letters to the raw topic",
        description="Reads the dead-letter topic from the beginning up to its current end "
        "and re-publishes the original bytes of the selected dead letters to the raw topic.",
    )
    p.add_argument("--code", action="append", help="only this error code (repeatable)")
    p.add_argument("--since", help="only dead letters first seen at/after this ISO time")
    p.add_argument("--until", help="only dead letters first seen before this ISO time")
    p.add_argument("--to-topic", help="publish here instead of the raw topic")
    p.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def selected(letter: DeadLetter, args: argparse.Namespace) -> bool:
    if args.code and letter.error_code.value not in set(args.code):
        return False
    since, until = _parse_time(args.since), _parse_time(args.until)
    first_seen = letter.first_seen
    if first_seen.tzinfo is None:
        first_seen = first_seen.replace(tzinfo=UTC)
    if since and first_seen < since:
        return False
    return not (until and first_seen >= until)


async def replay(args: argparse.Namespace) -> int:
    from aiokafka import TopicPartition
    from tqdm import tqdm

    from streams.connection_errors import fail_fast
    from streams.kafka.clients import make_consumer, make_producer

    settings = load_settings()
    target = args.to_topic or settings.input_topic
    consumer = make_consumer(settings, auto_offset_reset="earliest")
    producer = make_producer(settings)
    async with fail_fast(settings):
        await consumer.start()
        if not args.dry_run:
            await producer.start()
    replayed = scanned = 0
    originals: Any = None  # a consumer, started for the first left-out original
    try:
        # Asked of the cluster: a consumer that subscribed to nothing has no metadata
        # for the topic, and its partitions_for_topic answers None.
        partitions = await _partitions(settings, settings.dead_letter_topic)
        if not partitions:
            print(f"no dead-letter topic {settings.dead_letter_topic}", file=sys.stderr)
            return 1
        tps = [TopicPartition(settings.dead_letter_topic, p) for p in partitions]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        total = sum(end.values())
        remaining = {tp for tp in tps if end[tp] > 0}
        futures = []
        with tqdm(total=total, unit="rec", disable=args.quiet, file=sys.stderr) as bar:
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset >= end[tp]:
                            continue
                        scanned += 1
                        bar.update(1)
                        headers = list(record.headers)
                        letter = DeadLetter.from_record(record.value or b"", headers)
                        if not selected(letter, args):
                            continue
                        replayed += 1
                        if args.dry_run:
                            sys.stdout.buffer.write(
                                orjson.dumps(
                                    letter.model_dump(mode="json", exclude={"original_b64"})
                                )
                                + b"\n"
                            )
                            continue
                        value = record.value
                        if letter.original_dropped is not None:
                            if originals is None:
                                originals = make_consumer(settings)
                                await originals.start()
                            value = await _original(originals, letter)
                            if value is None:
                                replayed -= 1
                                print(
                                    f"skipped: the original of {letter.source_topic}"
                                    f"[{letter.source_partition}]@{letter.source_offset} is "
                                    "neither in its dead letter nor retained any more",
                                    file=sys.stderr,
                                )
                                continue
                        carried = carried_headers(headers)
                        futures.append(
                            await producer.send(
                                target, value=value, key=record.key, headers=carried
                            )
                        )
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        if futures:
            await producer.flush()
            await asyncio.gather(*futures)
    finally:
        await consumer.stop()
        if originals is not None:
            await originals.stop()
        if not args.dry_run:
            await producer.stop()
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {replayed} of {scanned} dead letter(s) to {target}", file=sys.stderr)
    return 0


async def _partitions(settings: Any, topic: str) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.security import aiokafka_client_kwargs

    admin = AIOKafkaAdminClient(**aiokafka_client_kwargs(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        return []
    return sorted(int(p["partition"]) for p in described["partitions"])


async def _original(consumer: Any, letter: DeadLetter) -> bytes | None:
    """The original record of a dead letter that Kafka took only without it (too large
    for the dead-letter topic), read back from where it was first consumed."""
    from aiokafka import TopicPartition

    tp = TopicPartition(letter.source_topic, letter.source_partition)
    consumer.assign([tp])
    consumer.seek(tp, letter.source_offset)
    batches = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
    for record in batches.get(tp, []):
        if record.offset == letter.source_offset:
            value: bytes | None = record.value
            return value
    return None


def run(args: argparse.Namespace) -> int:
    return asyncio.run(replay(args))
