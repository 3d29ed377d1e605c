"""``contentstream lag``: the consumer group's lag per partition, from the broker.

Needs no running worker: offsets come from Kafka (the group's committed offsets and
each partition's log end), read without joining the group. Exit status: 0, or 1 when
the total lag is above ``--max-lag``, or 2 when Kafka cannot be reached or the topic
does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from streams.operations.lag_monitor import KafkaOffsetReader, PartitionOffsets
from streams.settings import Settings, load_settings

EXIT_OVER_MAX_LAG = 1
EXIT_UNREACHABLE = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lag",
        help="print the consumer group's lag per partition",
        description="Reads the group's committed offsets and the log-end offsets from Kafka "
        "(no worker needed) and prints the lag of every partition of the topic.",
    )
    p.add_argument("--group", help="consumer group (default: CONTENTSTREAM_APP_ID)")
    p.add_argument("--topic", help="topic (default: CONTENTSTREAM_INPUT_TOPIC)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--max-lag",
        type=int,
        default=None,
        metavar="N",
        help="exit with status 1 when the total lag is above N events",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for Kafka before giving up (exit status 2)",
    )
    p.set_defaults(func=run)


def partition_row(po: PartitionOffsets, age_s: float | None) -> dict[str, Any]:
    return {
        "partition": po.partition,
        "committed": po.committed,
        "log_start": po.log_start,
        "log_end": po.log_end,
        "lag": po.lag,
        "lag_seconds": None if age_s is None else round(age_s, 3),
    }


def render_table(report: dict[str, Any]) -> str:
    header = ("PARTITION", "COMMITTED", "LOG-END", "LAG", "OLDEST-UNCOMMITTED-AGE")
    rows = [header]
    for row in report["partitions"]:
        age = row["lag_seconds"]
        rows.append(
            (
                str(row["partition"]),
                "-" if row["committed"] is None else str(row["committed"]),
                str(row["log_end"]),
                str(row["lag"]),
                "-" if age is None else f"{age:.1f}s",
            )
        )
    rows.append(("TOTAL", "", "", str(report["total_lag"]), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"group {report['group']}  topic {report['topic']}"]
    for r in rows:
        lines.append("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(r)).rstrip())
    return "\n".join(lines)


async def read_lag(settings: Settings, group: str, topic: str, timeout_s: float) -> dict[str, Any]:
    """The report; raises LookupError for a missing topic, connection errors as they come."""
    from streams.security import check_kafka_connection

    await check_kafka_connection(settings, timeout_s=timeout_s)
    reader = KafkaOffsetReader(settings, request_timeout_s=timeout_s)
    await reader.start()
    try:
        partitions = await asyncio.wait_for(reader.partitions(topic), timeout_s)
        offsets = await asyncio.wait_for(
            reader.read(group, [(topic, p) for p in partitions]), timeout_s
        )
        now = time.time()
        rows = []
        for po in offsets:
            age: float | None = 0.0
            if po.lag > 0:
                stamp = await reader.timestamp_at(po.tp, po.next_offset)
                age = None if stamp is None else max(0.0, now - stamp)
            rows.append(partition_row(po, age))
    finally:
        await reader.close()
    return {
        "group": group,
        "topic": topic,
        "total_lag": sum(row["lag"] for row in rows),
        "partitions": rows,
    }


async def lag(args: argparse.Namespace) -> int:
    from streams.security import describe_connection_error

    settings = load_settings()
    group = args.group or settings.app_id
    topic = args.topic or settings.input_topic
    try:
        report = await read_lag(settings, group, topic, args.timeout)
    except LookupError as exc:
        print(f"contentstream: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Exception as exc:
        # One line naming the cause (refused, TLS, SASL, timeout) and what to check.
        print(f"contentstream: {describe_connection_error(exc, settings)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode("utf-8") + "\n")
    else:
        sys.stdout.write(render_table(report) + "\n")
    sys.stdout.flush()
    if args.max_lag is not None and report["total_lag"] > args.max_lag:
        return EXIT_OVER_MAX_LAG
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(lag(args))
    except BrokenPipeError:
        return 0
