"""``contentstream analyze``: batch analysis of a JSON Lines file, no Kafka needed.

    contentstream analyze --input events.jsonl --output results.jsonl \\
        [--analyses sentiment,keywords,summary,entities,language] [--processes N] [--batch-size N]

Each input line is a ContentEvent (``{"id": ..., "text": ...}`` at the least), accepted
or refused exactly as a worker would (the one validator, streams/processing/decoding.py: the same
limits from the same settings, the same codes, unknown fields refused); its source,
tenant, language hint, analyses, metadata and produced_at are used, and absent or empty
``analyses`` mean ``--analyses``. Each output line is one AnalysisResult, in input
order, with the id exactly as given. A bad line becomes ``{"id": <id or null>, "line":
<n>, "error": {"code": ..., "message": ...}}`` with the code its dead letter would carry,
and the run goes on; blank lines are skipped. The exit code is 0 when the whole input
was read, even with bad lines.

Work is spread over all cores (one pipeline per process, built by the pool initializer;
chunks of lines go through ``imap`` so order is kept). Inputs smaller than a few chunks
per process run in this process: starting the pool would cost more than it saves.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from analyzers.config import PipelineConfig
from schemas.content_hash import content_hash
from schemas.errors import ErrorCode, EventRejected
from schemas.events import (
    ALL_ANALYSES,
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_MAX_METADATA_DEPTH,
    AnalysisName,
)
from schemas.results import AnalysisResult
from streams.processing.decoding import EventDecoder, readable_id

Line = tuple[int, bytes]

# Below this many chunks per process, a pool costs more than it saves.
_MIN_CHUNKS_PER_PROCESS = 4


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="analyse a JSON Lines file (or stdin) without Kafka",
        description="Reads {'id', 'text'} lines or ContentEvents and writes one "
        "AnalysisResult per line, in input order; bad lines get an error object.",
    )
    p.add_argument("--input", "-i", default="-", help="JSONL file, or - for stdin (default)")
    p.add_argument("--output", "-o", default="-", help="JSONL file, or - for stdout (default)")
    p.add_argument(
        "--analyses",
        default=None,
        help="comma-separated analyses (default: CONTENTSTREAM_ANALYSES, i.e. all of "
        + ",".join(ALL_ANALYSES)
        + ")",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default: CONTENTSTREAM_POOL_PROCESSES, 0 = one per core)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="lines per chunk sent to a process")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class AnalyzeOptions:
    """What a worker process needs besides the pipeline (picklable)."""

    pipeline: PipelineConfig
    analyses: tuple[AnalysisName, ...]
    max_text_chars: int
    max_payload_bytes: int = 1_048_576
    max_metadata_depth: int = DEFAULT_MAX_METADATA_DEPTH
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES

    def decoder(self) -> EventDecoder:
        return _decoder(
            self.max_payload_bytes,
            self.max_text_chars,
            self.max_metadata_depth,
            self.max_metadata_bytes,
        )


@functools.lru_cache(maxsize=4)
def _decoder(payload: int, text: int, depth: int, metadata: int) -> EventDecoder:
    return EventDecoder(
        max_payload_bytes=payload,
        max_text_chars=text,
        max_metadata_depth=depth,
        max_metadata_bytes=metadata,
    )


def pipeline_config_from_settings(
    settings: Any, analyses: Iterable[AnalysisName]
) -> PipelineConfig:
    from streams.analysis.pipeline_config import pipeline_config

    return pipeline_config(settings, analyses)


def parse_analyses(value: str | None, default: Iterable[AnalysisName]) -> tuple[AnalysisName, ...]:
    if value is None:
        return tuple(default)
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [n for n in names if n not in AnalysisName.__members__.values()]
    if unknown:
        raise ValueError(
            f"unknown analyses: {', '.join(unknown)} (choose from {', '.join(ALL_ANALYSES)})"
        )
    return tuple(dict.fromkeys(AnalysisName(n) for n in names))


# --------------------------------------------------------------------------- per line


class LineRejected(Exception):
    def __init__(self, code: ErrorCode, message: str, event_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.event_id = event_id


@dataclass(slots=True)
class ParsedLine:
    line: int
    event_id: str | int
    text: str
    source: str | None
    tenant: str | None
    language: str | None
    analyses: tuple[AnalysisName, ...]
    metadata: dict[str, Any]
    produced_at: datetime | None


def parse_line(number: int, raw: bytes, options: AnalyzeOptions) -> ParsedLine:
    """The event of one line, validated as a worker validates a record's value."""
    decoder = options.decoder()
    try:
        payload = decoder.parse(raw)
    except EventRejected as exc:
        raise LineRejected(exc.code, exc.message) from None
    try:
        event = decoder.validate(payload)
    except EventRejected as exc:
        raise LineRejected(exc.code, exc.message, readable_id(payload)) from None
    return ParsedLine(
        line=number,
        event_id=event.id,
        text=event.text,
        source=event.source,
        tenant=event.tenant,
        language=event.language,
        analyses=tuple(event.analyses) if event.analyses else options.analyses,
        metadata=event.metadata,
        produced_at=event.produced_at,
    )


def error_line(number: int, event_id: Any, code: ErrorCode, message: str) -> bytes:
    return orjson.dumps(
        {
            "id": readable_id({"id": event_id}),
            "line": number,
            "error": {"code": code.value, "message": message},
        }
    )


def result_line(parsed: ParsedLine, fields: dict[str, Any]) -> bytes:
    result = AnalysisResult(
        id=parsed.event_id,
        content_hash=content_hash(parsed.text),
        source=parsed.source,
        tenant=parsed.tenant,
        metadata=parsed.metadata,
        produced_at=parsed.produced_at,
        processed_at=datetime.now(UTC),
        **fields,
    )
    return result.model_dump_json().encode("utf-8")


# --------------------------------------------------------------------------- chunks


class ChunkAnalyzer:
    """Parses and analyses chunks of lines with one pipeline (one per process)."""

    def __init__(self, options: AnalyzeOptions) -> None:
        from analyzers.factory import build_pipeline

        self.options = options
        self.pipeline = build_pipeline(options.pipeline)

    def __call__(self, chunk: list[Line]) -> list[bytes]:
        from analyzers.pipeline import AnalysisRequest

        out: list[bytes | None] = [None] * len(chunk)
        parsed: list[tuple[int, ParsedLine]] = []
        for slot, (number, raw) in enumerate(chunk):
            try:
                parsed.append((slot, parse_line(number, raw, self.options)))
            except LineRejected as exc:
                out[slot] = error_line(number, exc.event_id, exc.code, exc.message)
        requests = [
            AnalysisRequest(text=p.text, analyses=frozenset(p.analyses), language_hint=p.language)
            for _, p in parsed
        ]
        try:
            outputs = self.pipeline.analyze(requests)
        except Exception:
            outputs = []  # analysed one by one below, so one bad line costs only itself
        for index, (slot, p) in enumerate(parsed):
            try:
                output = outputs[index] if outputs else self.pipeline.analyze([requests[index]])[0]
                out[slot] = result_line(p, output.fields())
            except Exception as exc:
                out[slot] = error_line(
                    p.line, p.event_id, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
                )
        return [line for line in out if line is not None]


_worker: ChunkAnalyzer | None = None


def _init_worker(options: AnalyzeOptions) -> None:
    global _worker
    _worker = ChunkAnalyzer(options)


def _work(chunk: list[Line]) -> tuple[int, list[bytes]]:
    assert _worker is not None, "pool initializer did not run"
    return len(chunk), _worker(chunk)


def read_chunks(stream: IO[bytes], size: int) -> Iterator[list[Line]]:
    numbered = ((n, line.rstrip(b"\r\n")) for n, line in enumerate(stream, start=1))
    lines = ((n, line) for n, line in numbered if line.strip())
    while chunk := list(itertools.islice(lines, size)):
        yield chunk


def analyze_stream(
    source: IO[bytes],
    sink: IO[bytes],
    options: AnalyzeOptions,
    *,
    processes: int,
    batch_size: int,
    progress: bool = True,
) -> int:
    """Analyses every line of ``source`` into ``sink``; returns the number of lines."""
    from tqdm import tqdm

    chunks = read_chunks(source, batch_size)
    head = list(itertools.islice(chunks, processes * _MIN_CHUNKS_PER_PROCESS))
    small = len(head) < processes * _MIN_CHUNKS_PER_PROCESS or processes <= 1
    bar = tqdm(unit=" lines", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    done = 0
    try:
        if small:
            analyzer = ChunkAnalyzer(options)
            results: Iterable[tuple[int, list[bytes]]] = (
                (len(chunk), analyzer(chunk)) for chunk in itertools.chain(head, chunks)
            )
            done = _write(results, sink, bar)
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(processes, initializer=_init_worker, initargs=(options,)) as pool:
                done = _write(pool.imap(_work, itertools.chain(head, chunks)), sink, bar)
    finally:
        bar.close()
    return done


def _write(results: Iterable[tuple[int, list[bytes]]], sink: IO[bytes], bar: Any) -> int:
    done = 0
    for count, lines in results:
        if lines:
            sink.write(b"\n".join(lines) + b"\n")
        done += count
        bar.update(count)
    sink.flush()
    return done


# --------------------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from streams.operations.redaction import mask_credentials
    from streams.settings import load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        print(
            f"contentstream analyze: invalid settings: {mask_credentials(str(exc))}",
            file=sys.stderr,
        )
        return 2
    try:
        analyses = parse_analyses(args.analyses, settings.analyses)
    except ValueError as exc:
        print(f"contentstream analyze: {exc}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("contentstream analyze: --batch-size must be at least 1", file=sys.stderr)
        return 2
    processes = args.processes if args.processes is not None else settings.pool_processes
    if processes <= 0:
        processes = multiprocessing.cpu_count() or 1
    options = AnalyzeOptions(
        pipeline=pipeline_config_from_settings(settings, analyses),
        analyses=analyses,
        max_text_chars=settings.max_text_chars,
        max_payload_bytes=settings.max_payload_bytes,
        max_metadata_depth=settings.max_metadata_depth,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    with contextlib.ExitStack() as files:
        try:
            source = (
                sys.stdin.buffer
                if args.input == "-"
                else files.enter_context(Path(args.input).open("rb"))
            )
            sink = (
                sys.stdout.buffer
                if args.output == "-"
                else files.enter_context(Path(args.output).open("wb"))
            )
        except OSError as exc:
            print(f"contentstream analyze: {exc}", file=sys.stderr)
            return 2
        analyze_stream(
            source,
            sink,
            options,
            processes=processes,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    return 0
