"""``contentstream analyze``: batch analysis of a JSON Lines file, no Kafka needed.

    contentstream analyze --input events.jsonl --output results.jsonl \\
        [--analyses sentiment,keywords,summary,entities,language] [--processes N] [--batch-size N]

Each input line is ``{"id": ..., "text": ...}`` (other fields are ignored) or a full
ContentEvent (then its source, tenant, language hint, analyses, metadata and produced_at
are used). Each output line is one AnalysisResult, in input order, with the id exactly
as given. A bad line (not JSON, not an object, no id, no text, empty or too long text,
an invalid ContentEvent) becomes ``{"id": <id or null>, "line": <n>, "error": {"code":
..., "message": ...}}`` and the run goes on; blank lines are skipped. The exit code is 0
when the whole input was read, even with bad lines.

Work is spread over all cores (one pipeline per process, built by the pool initializer;
chunks of lines go through ``imap`` so order is kept). Inputs smaller than a few chunks
per process run in this process: starting the pool would cost more than it saves.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeGuard

import orjson

from analyzers.config import PipelineConfig
from schemas.content_hash import content_hash
from schemas.errors import ErrorCode
from schemas.events import ALL_ANALYSES, AnalysisName, ContentEvent
from schemas.results import AnalysisResult

Line = tuple[int, bytes]

# Below this many chunks per process, a pool costs more than it saves.
_MIN_CHUNKS_PER_PROCESS = 4
_EVENT_FIELDS = frozenset(ContentEvent.model_fields)


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


def pipeline_config_from_settings(
    settings: Any, analyses: Iterable[AnalysisName]
) -> PipelineConfig:
    from streams.pipeline_config import pipeline_config

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


def _valid_id(value: Any) -> TypeGuard[str | int]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def parse_line(number: int, raw: bytes, options: AnalyzeOptions) -> ParsedLine:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LineRejected(ErrorCode.INVALID_UTF8, "the line is not valid UTF-8") from None
        raise LineRejected(ErrorCode.INVALID_JSON, f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise LineRejected(
            ErrorCode.INVALID_EVENT, f"expected a JSON object, got {type(payload).__name__}"
        )
    event_id: Any = payload.get("id")
    if not _valid_id(event_id):
        raise LineRejected(ErrorCode.INVALID_EVENT, "'id' is missing or not a string/integer")
    if "text" not in payload or payload["text"] is None:
        raise LineRejected(ErrorCode.MISSING_TEXT, "no 'text' field", event_id)
    text = payload["text"]
    if not isinstance(text, str):
        raise LineRejected(ErrorCode.INVALID_EVENT, "'text' is not a string", event_id)
    if not text.strip():
        raise LineRejected(ErrorCode.EMPTY_TEXT, "'text' is empty", event_id)
    if len(text) > options.max_text_chars:
        raise LineRejected(
            ErrorCode.TEXT_TOO_LONG,
            f"text has {len(text)} characters; the limit is {options.max_text_chars}",
            event_id,
        )
    if payload.keys() <= _EVENT_FIELDS:
        # A full ContentEvent: honour its fields, and reject it when they are invalid.
        try:
            event = ContentEvent.model_validate(payload)
        except ValueError as exc:
            unknown_analysis = "analyses" in str(exc)
            raise LineRejected(
                ErrorCode.UNKNOWN_ANALYSIS if unknown_analysis else ErrorCode.INVALID_EVENT,
                str(exc).replace("\n", " ")[:500],
                event_id,
            ) from None
        return ParsedLine(
            line=number,
            event_id=event.id,
            text=event.text,
            source=event.source,
            tenant=event.tenant,
            language=event.language,
            analyses=tuple(event.analyses) if event.analyses is not None else options.analyses,
            metadata=event.metadata,
            produced_at=event.produced_at,
        )
    return ParsedLine(
        line=number,
        event_id=event_id,
        text=text,
        source=None,
        tenant=None,
        language=None,
        analyses=options.analyses,
        metadata={},
        produced_at=None,
    )


def error_line(number: int, event_id: Any, code: ErrorCode, message: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id if _valid_id(event_id) else None,
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

    from streams.redaction import mask_credentials
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
