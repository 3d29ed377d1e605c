"""Keyword extraction: F1@5 by exact string match against author keywords (CSL)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.data import read_jsonl, split_rows

DATASET = "keywords/csl_dev.jsonl"
TOP_K = 5


def f1_at_k(predicted: Sequence[str], gold: Sequence[str], k: int = TOP_K) -> float:
    """F1 of the first ``k`` predictions against the gold set (exact match)."""
    top = set(predicted[:k])
    wanted = set(gold)
    hits = len(top & wanted)
    if hits == 0:
        return 0.0
    precision = hits / len(top)
    recall = hits / len(wanted)
    return 2 * precision * recall / (precision + recall)


def mean_f1(extractor: Any, rows: Sequence[dict[str, Any]], k: int = TOP_K) -> float:
    if not rows:
        return 0.0
    texts = [r["text"] for r in rows]
    predicted = extractor.analyze_batch(texts, ["zh"] * len(texts))
    return sum(
        f1_at_k([kw.text for kw in kws], r["keywords"], k)
        for kws, r in zip(predicted, rows, strict=True)
    ) / len(rows)


def evaluate(data_dir: Path) -> list[dict[str, Any]]:
    from analyzers.keywords import METHODS, KeywordExtractor

    path = data_dir / DATASET
    if not path.is_file():
        return [
            {
                "task": "keywords",
                "dataset": DATASET,
                "metric": "F1@5",
                "value": None,
                "n": 0,
                "note": "skipped: file absent",
            }
        ]
    _, held = split_rows(list(read_jsonl(path)))
    rows = []
    for method in METHODS:
        extractor = KeywordExtractor(top_k=TOP_K, method=method)
        rows.append(
            {
                "task": "keywords",
                "dataset": f"{DATASET} (held-out, {method})",
                "metric": "F1@5",
                "value": round(mean_f1(extractor, held), 4),
                "n": len(held),
            }
        )
    return rows
