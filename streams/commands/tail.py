"""``contentstream tail``: print results (or dead letters) as JSON Lines."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from schemas.dead_letter import DeadLetter
from streams.settings import load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tail",
        help="print analysis results or dead letters",
        description="Reads the output topic (or, with --dead-letters, the dead-letter topic) "
        "without joining the worker's group and prints one JSON object per line.",
    )
    p.add_argument("--dead-letters", action="store_true", help="read the dead-letter topic")
    p.add_argument("--topic", help="read this topic instead")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    p.add_argument("--limit", type=int, default=0, help="stop after N records (0 = no limit)")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=0.0,
        help="stop after this many seconds without a new record (0 = wait forever)",
    )
    p.set_defaults(func=run)


def render(value: bytes | None, headers: list[tuple[str, bytes]], dead_letters: bool) -> bytes:
    if dead_letters:
        letter = DeadLetter.from_record(value or b"", list(headers))
        return orjson.dumps(letter.model_dump(mode="json"))
    return value or b"null"


async def tail(args: argparse.Namespace) -> int:
    from streams.connection_errors import fail_fast
    from streams.kafka.clients import make_consumer

    settings = load_settings()
    topic = args.topic or (
        settings.dead_letter_topic if args.dead_letters else settings.output_topic
    )
    consumer = make_consumer(
        settings, topic, auto_offset_reset="earliest" if args.from_beginning else "latest"
    )
    try:
        async with fail_fast(settings):
            await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    out = sys.stdout.buffer
    seen = 0
    last = time.monotonic()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    out.write(render(record.value, list(record.headers), args.dead_letters))
                    out.write(b"\n")
                    seen += 1
                    last = time.monotonic()
                    if args.limit and seen >= args.limit:
                        out.flush()
                        return 0
            out.flush()
            if args.idle_timeout and time.monotonic() - last > args.idle_timeout:
                return 0 if not args.limit else 1
    finally:
        await consumer.stop()


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(tail(args))
    except BrokenPipeError:
        return 0
