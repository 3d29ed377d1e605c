"""What one analysis costs to cross from an analyzer process to the worker.

    python bench/wire.py [--docs 2000] [--rounds 40] [--against OTHER/streams/analysis/wire.py]

Runs the built-in pipeline once over the corpus (or examples/), then times the hand-off
alone, in batches of 64 as the pool sends them: in the analyzer process encode +
pickle, in the worker unpickle + decode + ``orjson.dumps`` of the result fields (what
``build_result`` splices). The worker's side is the one that matters: its event loop is
the single thread every result passes through. Prints µs per event on each side (min
and median of ``--rounds``) and pickled bytes per event. With ``--against`` another
version of the wire module (e.g. from ``git archive OLD streams | tar -x -C /tmp/old``)
is timed in alternating rounds on the same outputs, and the ratios are printed: on a
shared host only a side-by-side ratio means much.
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analyzers.config import PipelineConfig  # noqa: E402
from analyzers.factory import build_pipeline  # noqa: E402
from analyzers.pipeline import AnalysisOutput, AnalysisRequest  # noqa: E402
from evaluation.data import default_data_dir, read_jsonl  # noqa: E402
from streams.analysis import wire  # noqa: E402

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


def measure(module: Any, outputs: list[AnalysisOutput]) -> tuple[float, float, float]:
    """(analyzer µs, worker µs, bytes) per event."""
    batches = [outputs[i : i + BATCH] for i in range(0, len(outputs), BATCH)]
    started = time.perf_counter()
    sent = [pickle.dumps([module.encode_output(o) for o in b], protocol=5) for b in batches]
    analyzer_s = time.perf_counter() - started
    started = time.perf_counter()
    for blob in sent:
        for one in pickle.loads(blob):
            orjson.dumps(module.decode_output(one))
    worker_s = time.perf_counter() - started
    n = len(outputs)
    return analyzer_s * 1e6 / n, worker_s * 1e6 / n, sum(len(b) for b in sent) / n


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("other_wire", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    return {
        "analyzer_us_min": round(min(r[0] for r in rows), 2),
        "analyzer_us_median": round(statistics.median(r[0] for r in rows), 2),
        "worker_us_min": round(min(r[1] for r in rows), 2),
        "worker_us_median": round(statistics.median(r[1] for r in rows), 2),
        "bytes": round(rows[0][2], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--against", type=Path, help="another wire.py to time beside this one")
    args = parser.parse_args()
    pipeline = build_pipeline(PipelineConfig())
    docs = texts(args.docs)
    outputs: list[AnalysisOutput] = []
    for i in range(0, len(docs), BATCH):
        outputs.extend(pipeline.analyze([AnalysisRequest(text=t) for t in docs[i : i + BATCH]]))
    modules: dict[str, Any] = {"this": wire}
    if args.against:
        modules["against"] = load(args.against)
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in modules}
    for _ in range(args.rounds):
        for name, module in modules.items():
            rows[name].append(measure(module, outputs))
    report: dict[str, Any] = {name: summary(r) for name, r in rows.items()}
    report["docs"] = len(outputs)
    if args.against:
        this, other = report["this"], report["against"]
        report["worker_ratio_min"] = round(this["worker_us_min"] / other["worker_us_min"], 3)
        report["analyzer_ratio_min"] = round(this["analyzer_us_min"] / other["analyzer_us_min"], 3)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
