"""``contentstream analyze``: batch analysis of a JSON Lines file, no Kafka needed.

    contentstream analyze --input events.jsonl --output results.jsonl \\
        [--analyses sentiment,keywords,summary,entities,language] [--processes N] [--batch-size N]

The command runs the worker's own parts, built from the same settings: its decoder
(streams/processing/decoding.py: the same limits, the same codes, unknown fields
refused), its pipeline factory (streams/analysis/pipeline_factory.py, so
``CONTENTSTREAM_PIPELINE_FACTORY`` is honoured) and its result builder
(streams/processing/results.py). Each input line is a ContentEvent (``{"id": ...,
"text": ...}`` at the least); absent or empty ``analyses`` mean ``--analyses``. Each
output line is the result a worker would publish for it, in input order, with the id
exactly as given. A bad line becomes ``{"id": <id or null>, "line": <n>, "error":
{"code": ..., "message": ...}}`` with the code its dead letter would carry, and the run
goes on; blank lines are skipped. The exit code is 0 when the whole input was read,
even with bad lines.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from schemas.content_hash import content_hash
from schemas.errors import ConfigurationError, ContentStreamError, ErrorCode, EventRejected
from schemas.events import ALL_ANALYSES, AnalysisName, ContentEvent
from streams.processing.decoding import EventDecoder, readable_id

if TYPE_CHECKING:
    from streams.settings import Settings

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
    """What a process analysing chunks needs (picklable): the worker's parts, built
    from the same settings the worker reads."""

    pipeline_factory: Callable[[], Any]
    decoder: EventDecoder
    analyses: tuple[AnalysisName, ...]  # for events that name none

    @classmethod
    def from_settings(
        cls, settings: Settings, analyses: tuple[AnalysisName, ...]
    ) -> AnalyzeOptions:
        """The worker's decoder and pipeline factory (CONTENTSTREAM_PIPELINE_FACTORY
        honoured), with the stages of ``analyses`` enabled."""
        from streams.analysis.pipeline_factory import resolve_pipeline_factory

        return cls(
            pipeline_factory=resolve_pipeline_factory(settings, analyses),
            decoder=EventDecoder.from_settings(settings),
            analyses=analyses,
        )


def parse_analyses(value: str | None, default: Iterable[AnalysisName]) -> tuple[AnalysisName, ...]:
    if value is None:
        return tuple(default)
    names = [part.strip() for part in value.split(",") if part.strip()]
    declared = [name.value for name in AnalysisName]  # a plugin's stages too
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(
            f"unknown analyses: {', '.join(unknown)} (choose from {', '.join(declared)})"
        )
    return tuple(dict.fromkeys(AnalysisName(n) for n in names))


# --------------------------------------------------------------------------- per line


def line_id(raw: bytes, decoder: EventDecoder) -> str | int | None:
    """The id of a refused line, as given, when it has one (only for its error line:
    the line was already refused by the decoder)."""
    if len(raw) > decoder.max_payload_bytes:
        return None
    try:
        return readable_id(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


def error_line(number: int, event_id: str | int | None, code: ErrorCode, message: str) -> bytes:
    return orjson.dumps(
        {"id": event_id, "line": number, "error": {"code": code.value, "message": message}}
    )


# --------------------------------------------------------------------------- chunks


class ChunkAnalyzer:
    """Decodes and analyses chunks of lines with one pipeline (one per process), with
    the worker's parts: its decoder, its pipeline factory, its wire encoding of an
    analysis and its result builder, so a line's result is the record a worker would
    publish for it."""

    def __init__(self, options: AnalyzeOptions) -> None:
        self.options = options
        self.decoder = options.decoder
        self.pipeline = options.pipeline_factory()

    def __call__(self, chunk: list[Line]) -> list[bytes]:
        from analyzers.pipeline import AnalysisRequest

        out: list[bytes | None] = [None] * len(chunk)
        events: list[tuple[int, int, ContentEvent, tuple[AnalysisName, ...]]] = []
        decoded = self.decoder.decode_many([raw for _, raw in chunk])
        for slot, ((number, raw), event) in enumerate(zip(chunk, decoded, strict=True)):
            if isinstance(event, EventRejected):
                out[slot] = error_line(
                    number, line_id(raw, self.decoder), event.code, event.message
                )
            else:
                analyses = tuple(event.analyses) if event.analyses else self.options.analyses
                events.append((slot, number, event, analyses))
        requests = [
            AnalysisRequest(text=e.text, analyses=frozenset(a), language_hint=e.language)
            for _, _, e, a in events
        ]
        try:
            outputs = self.pipeline.analyze(requests)
        except Exception:
            outputs = []  # analysed one by one below, so one bad line costs only itself
        for index, (slot, number, event, analyses) in enumerate(events):
            try:
                output = outputs[index] if outputs else self.pipeline.analyze([requests[index]])[0]
                out[slot] = result_line(event, analyses, output)
            except Exception as exc:
                error = _failure(exc)
                out[slot] = error_line(number, event.id, error.code, error.message)
        return [line for line in out if line is not None]


def result_line(event: ContentEvent, analyses: tuple[AnalysisName, ...], output: Any) -> bytes:
    """The result a worker publishes for ``event`` analysed into ``output``."""
    from streams.analysis.wire import decode_output, encode_output
    from streams.processing.results import build_result

    fields = decode_output(encode_output(output))
    return orjson.dumps(build_result(event, content_hash(event.text), analyses, fields))


def _failure(exc: Exception) -> ContentStreamError:
    """The error a worker dead-letters an event with when its analysis raised ``exc``
    and no attempt is left (a file is read once: nothing is retried)."""
    from streams.processing.results import analysis_failure

    error = analysis_failure(exc, attempts=1, max_attempts=1)
    assert error is not None, "with no attempt left there is no retry"
    return error


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
    try:
        options = AnalyzeOptions.from_settings(settings, analyses)
    except ConfigurationError as exc:
        print(f"contentstream analyze: {exc.message}", file=sys.stderr)
        return 2
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
