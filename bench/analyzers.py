"""Throughput of each analyzer, and of all of them together, on ONE core.

    python bench/analyzers.py [--limit N] [--quick] [--batch-size 64] [--data-dir DIR]

Reads corpus/zh_mixed.jsonl from the data folder ($CONTENTSTREAM_DATA_DIR or
../shared/data; falls back to examples/*.jsonl), runs every stage that
``analyzers.build_pipeline(PipelineConfig())`` wires (language, sentiment, keywords,
summary, entities: whichever exist) in batches, once over all documents and once over
those of at least 1,000 characters, and prints docs/s and chars/s as a markdown table.
Writes the numbers to bench/results/analyzers.json. The segmentation cache is cleared
before each measurement so no stage profits from one measured before it.

Targets (whole pipeline, one core): >= 2,000 docs/s on the corpus, >= 150 docs/s on
its long documents. Those are absolute and the host's speed drifts by a third within an
hour, so the pipeline is also timed side by side with a per-event jieba engine of the
seed tutorial's design (bench/reference_engine.py) on an evenly spaced sample, slice by
slice in turn: the ratio moves less than either absolute figure (README, Benchmarks).
"""

from __future__ import annotations

import os

# One core: no hidden thread pools in numpy/torch.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analyzers import segmentation  # noqa: E402
from analyzers.config import PipelineConfig  # noqa: E402
from analyzers.factory import build_pipeline  # noqa: E402
from analyzers.pipeline import AnalysisRequest  # noqa: E402
from bench.reference_engine import JiebaReferenceEngine  # noqa: E402
from evaluation.data import default_data_dir, read_jsonl  # noqa: E402

STAGES = ("language", "sentiment", "keywords", "summary", "entities")
LONG_CHARS = 1000
TARGETS = {"corpus": 2000.0, "long": 150.0}
# Side-by-side sample sizes (corpus, long) and the number of alternating slices.
REFERENCE_SAMPLE = {"quick": (600, 40), "full": (2000, 120)}
REFERENCE_SLICES = 8


def load_texts(data_dir: Path, limit: int | None) -> tuple[list[str], str]:
    corpus = data_dir / "corpus" / "zh_mixed.jsonl"
    paths = [corpus] if corpus.is_file() else sorted((REPO / "examples").glob("*.jsonl"))
    texts: list[str] = []
    for path in paths:
        try:
            for row in read_jsonl(path):
                text = row.get("text")
                if isinstance(text, str) and text.strip():
                    texts.append(text)
        except orjson.JSONDecodeError:
            continue  # examples/malformed.jsonl
    source = str(corpus) if paths == [corpus] else "examples/*.jsonl"
    return (texts[:limit] if limit else texts), source


def time_batches(
    work: Callable[[list[str]], object], texts: Sequence[str], batch_size: int
) -> float:
    segmentation.clear_cache()
    started = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        work(list(texts[i : i + batch_size]))
    return time.perf_counter() - started


def measure(texts: list[str], batch_size: int, pipeline: Any) -> list[dict[str, Any]]:
    if not texts:
        return []
    chars = sum(len(t) for t in texts)
    languages = pipeline.language.analyze_batch(texts, [""] * len(texts))
    lang_of = dict(zip(texts, languages, strict=True))
    rows: list[dict[str, Any]] = []

    def record(stage: str, seconds: float) -> None:
        rows.append(
            {
                "stage": stage,
                "docs": len(texts),
                "seconds": round(seconds, 3),
                "docs_per_s": round(len(texts) / seconds, 1),
                "chars_per_s": round(chars / seconds),
                "us_per_doc": round(seconds / len(texts) * 1e6, 1),
            }
        )

    stages: dict[str, Any] = {"language": pipeline.language}
    stages.update({name.value: analyzer for name, analyzer in pipeline.stages.items()})
    for stage, analyzer in _unwired_stages(set(stages)).items():
        stages[stage] = analyzer
    for stage in STAGES:
        analyzer = stages.get(stage)
        if analyzer is None:
            continue

        def run_stage(batch: list[str], analyzer: Any = analyzer) -> object:
            return analyzer.analyze_batch(batch, [lang_of[t] for t in batch])

        run_stage(texts[:8])  # warm-up: lazy loads are not throughput
        record(stage, time_batches(run_stage, texts, batch_size))

    run_pipeline = pipeline_runner(pipeline)
    run_pipeline(texts[:8])
    record("all (pipeline)", time_batches(run_pipeline, texts, batch_size))
    return rows


def pipeline_runner(pipeline: Any) -> Callable[[list[str]], object]:
    """The whole pipeline over a batch of texts, each with the default analyses."""

    def run(batch: list[str]) -> object:
        return pipeline.analyze([AnalysisRequest(text=t) for t in batch])

    return run


def spaced_sample(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts spread evenly over ``texts`` (all of them when there are fewer)."""
    if n >= len(texts):
        return list(texts)
    step = len(texts) / n
    return [texts[int(i * step)] for i in range(n)]


def side_by_side(
    texts: list[str],
    batch_size: int,
    pipeline: Any,
    reference: Any,
    slices: int = REFERENCE_SLICES,
) -> dict[str, Any] | None:
    """The pipeline (in batches, cold segmentation cache) and the reference engine (one
    text at a time) over the same texts, slice by slice in turn, so that both see the
    same phases of a drifting host. docs/s of each and their ratio."""
    if not texts:
        return None
    run_pipeline = pipeline_runner(pipeline)

    def run_reference(batch: list[str]) -> object:
        return [reference.analyze(t) for t in batch]

    run_pipeline(texts[:8])
    run_reference(texts[:2])
    ours = theirs = 0.0
    size = -(-len(texts) // slices)
    for start in range(0, len(texts), size):
        part = texts[start : start + size]
        ours += time_batches(run_pipeline, part, batch_size)
        theirs += time_batches(run_reference, part, len(part))
    return {
        "docs": len(texts),
        "pipeline_docs_per_s": round(len(texts) / ours, 1),
        "reference_docs_per_s": round(len(texts) / theirs, 1),
        "ratio": round(theirs / ours, 2),
    }


def _unwired_stages(wired: set[str]) -> dict[str, Any]:
    """Stages that exist in analyzers/ but the factory does not build yet (measured alone,
    not part of the pipeline row)."""
    found: dict[str, Any] = {}
    if "summary" not in wired:
        try:
            from analyzers.summary import Summarizer

            found["summary"] = Summarizer()
        except ImportError:
            pass
    return found


def markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| documents | stage | docs | docs/s | chars/s | µs/doc |",
        "|---|---|---|---|---|---|",
    ]
    for label, rows in results.items():
        for row in rows:
            lines.append(
                f"| {label} | {row['stage']} | {row['docs']} | {row['docs_per_s']:,.0f} | "
                f"{row['chars_per_s']:,} | {row['us_per_doc']:,.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Analyzer throughput on one core.")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--limit", type=int, default=None, help="documents from the corpus")
    parser.add_argument("--quick", action="store_true", help="5,000 documents, 300 long ones")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the side-by-side run of the jieba reference engine",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "analyzers.json"
    )
    args = parser.parse_args(argv)

    limit = args.limit or (5000 if args.quick else None)
    all_texts, source = load_texts(args.data_dir, None)
    texts = all_texts[:limit] if limit else all_texts
    long_texts = [t for t in all_texts if len(t) >= LONG_CHARS]
    if args.quick:
        long_texts = long_texts[:300]
    elif limit:
        long_texts = long_texts[: max(100, limit // 20)]

    built = time.perf_counter()
    pipeline = build_pipeline(PipelineConfig())
    build_seconds = time.perf_counter() - built
    print(
        f"source {source}: {len(texts)} docs (mean {sum(map(len, texts)) / max(len(texts), 1):.0f}"
        f" chars), {len(long_texts)} docs >= {LONG_CHARS} chars; "
        f"stages {['language', *[n.value for n in pipeline.stages]]}; "
        f"pipeline built in {build_seconds:.2f}s",
        file=sys.stderr,
    )
    results = {
        "corpus": measure(texts, args.batch_size, pipeline),
        f">= {LONG_CHARS} chars": measure(long_texts, args.batch_size, pipeline),
    }
    print(markdown(results))
    reference = None if args.no_reference else JiebaReferenceEngine()
    n_short, n_long = REFERENCE_SAMPLE["quick" if args.quick or args.limit else "full"]
    samples = (spaced_sample(texts, n_short), spaced_sample(long_texts, n_long))
    compared: dict[str, dict[str, Any] | None] = {}
    for label, target, sample in zip(results, TARGETS.values(), samples, strict=True):
        overall = [r for r in results[label] if r["stage"] == "all (pipeline)"]
        if overall:
            verdict = "meets" if overall[0]["docs_per_s"] >= target else "misses"
            print(
                f"{label}: pipeline {overall[0]['docs_per_s']:,.0f} docs/s {verdict} {target:,.0f}"
            )
        found = compared[label] = (
            side_by_side(sample, args.batch_size, pipeline, reference) if reference else None
        )
        if found:
            print(
                f"{label}, side by side on {found['docs']} docs: pipeline "
                f"{found['pipeline_docs_per_s']:,.0f} vs jieba reference "
                f"{found['reference_docs_per_s']:,.1f} docs/s = {found['ratio']:.1f}x"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "source": source,
        "batch_size": args.batch_size,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "pipeline_build_seconds": round(build_seconds, 3),
        "results": results,
        "side_by_side": compared,
    }
    args.output.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
