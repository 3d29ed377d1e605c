"""What one analysis costs to cross from an analyzer process to the worker.

    python bench/wire.py [--docs 2000] [--rounds 7]

Runs the built-in pipeline once over the corpus (or examples/), then times the hand-off
alone, in batches of 64 as the pool sends them: in the analyzer process encode +
pickle, in the worker unpickle + decode + ``orjson.dumps`` of the result fields (what
``build_result`` splices). Prints µs per event on each side and pickled bytes per
event, the median of ``--rounds``. The worker's side is the one that matters: its
event loop is the single thread every result passes through.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analyzers.config import PipelineConfig  # noqa: E402
from analyzers.factory import build_pipeline  # noqa: E402
from analyzers.pipeline import AnalysisOutput, AnalysisRequest  # noqa: E402
from evaluation.data import default_data_dir, read_jsonl  # noqa: E402
from streams.analysis.wire import decode_output, encode_output  # noqa: E402

BATCH = 64


def texts(limit: int) -> list[str]:
    corpus = default_data_dir() / "corpus" / "zh_mixed.jsonl"
    paths = [corpus] if corpus.is_file() else sorted((REPO / "examples").glob("*.jsonl"))
    found: list[str] = []
    for path in paths:
        for row in read_jsonl(path):
            text = row.get("text") if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                found.append(text)
            if len(found) >= limit:
                return found
    return found


def measure(outputs: list[AnalysisOutput]) -> dict[str, float]:
    batches = [outputs[i : i + BATCH] for i in range(0, len(outputs), BATCH)]
    started = time.perf_counter()
    sent = [pickle.dumps([encode_output(o) for o in b], protocol=5) for b in batches]
    analyzer_s = time.perf_counter() - started
    started = time.perf_counter()
    for blob in sent:
        for wire in pickle.loads(blob):
            orjson.dumps(decode_output(wire))
    worker_s = time.perf_counter() - started
    n = len(outputs)
    return {
        "analyzer_us": analyzer_s * 1e6 / n,
        "worker_us": worker_s * 1e6 / n,
        "bytes": sum(len(b) for b in sent) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    pipeline = build_pipeline(PipelineConfig())
    docs = texts(args.docs)
    outputs: list[AnalysisOutput] = []
    for i in range(0, len(docs), BATCH):
        outputs.extend(pipeline.analyze([AnalysisRequest(text=t) for t in docs[i : i + BATCH]]))
    rounds = [measure(outputs) for _ in range(args.rounds)]
    summary: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0]
    }
    summary["docs"] = len(outputs)
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
