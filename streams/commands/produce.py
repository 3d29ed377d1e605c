"""``contentstream produce``: JSON Lines (file or stdin) -> the raw topic, bytes untouched."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

from streams.settings import load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "produce",
        help="publish JSON Lines events to the raw topic",
        description="Each input line is published as one record, exactly as read (invalid "
        "lines too: the worker dead-letters them). The key is the event id when readable.",
    )
    p.add_argument("input", nargs="?", default="-", help="JSONL file, or - for stdin")
    p.add_argument("--topic", help="topic (default: CONTENTSTREAM_INPUT_TOPIC)")
    p.add_argument(
        "--no-stamp",
        dest="stamp",
        action="store_false",
        help="do not add produced_at to events that lack it",
    )
    p.add_argument("--rate", type=float, default=0.0, help="events per second (0 = max)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def prepare(line: bytes, *, stamp: bool) -> tuple[bytes | None, bytes]:
    """Key and value for one input line; the value is the line unless stamped."""
    try:
        payload = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, line
    if not isinstance(payload, dict):
        return None, line
    key = None
    event_id = payload.get("id")
    if isinstance(event_id, str | int) and not isinstance(event_id, bool):
        key = str(event_id).encode("utf-8")
    if stamp and "produced_at" not in payload:
        payload["produced_at"] = datetime.now(UTC).isoformat()
        return key, orjson.dumps(payload)
    return key, line


def read_lines(stream: BinaryIO) -> list[bytes]:
    return [line.rstrip(b"\r\n") for line in stream if line.strip()]


async def produce_lines(
    args: argparse.Namespace, lines: list[bytes], topic: str, quiet: bool
) -> int:
    from tqdm import tqdm

    from streams.connection_errors import fail_fast
    from streams.kafka.clients import make_producer

    settings = load_settings()
    producer = make_producer(settings)
    try:
        async with fail_fast(settings):
            await producer.start()
    except BaseException:
        await producer.stop()
        raise
    try:
        futures = []
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        started = time.perf_counter()
        with tqdm(total=len(lines), unit="ev", disable=quiet, file=sys.stderr) as bar:
            for i, line in enumerate(lines):
                key, value = prepare(line, stamp=args.stamp)
                futures.append(await producer.send(topic, value=value, key=key))
                bar.update(1)
                if interval:
                    delay = started + (i + 1) * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
            await producer.flush()
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    if not quiet:
        print(f"produced {len(lines)} event(s) to {topic}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    topic = args.topic or settings.input_topic
    if args.input == "-":
        lines = read_lines(sys.stdin.buffer)
    else:
        with open(args.input, "rb") as fh:
            lines = read_lines(fh)
    return asyncio.run(produce_lines(args, lines, topic, args.quiet))
