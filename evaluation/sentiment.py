"""Held-out quality of the shipped sentiment model: accuracy per set and calibration.

Uses the split definition in :mod:`evaluation.sentiment_splits`, the same one the
training script uses, so no reported text was trained on. The sets are binary: a
``neutral`` answer counts as the larger of its positive and negative scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analyzers.sentiment import SentimentAnalyzer
from evaluation.sentiment_splits import EN_REPORTED, ZH_REPORTED, LabelledText, load

TASK = "sentiment"


def expected_calibration_error(
    positive: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], bins: int = 10
) -> float:
    """ECE of the binary decision: confidence max(q, 1 - q) against being right, 10 bins."""
    confidence = np.maximum(positive, 1.0 - positive)
    correct = (positive > 0.5) == (labels == 1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(float(confidence[members].mean()) - float(correct[members].mean()))
            total += gap * float(members.mean())
    return total


def _binary_positive(analyzer: SentimentAnalyzer, texts: list[str], language: str) -> Any:
    """P(positive) / (P(positive) + P(negative)) as the analyzer outputs it."""
    results = analyzer.analyze_batch(texts, [language] * len(texts))
    pos = np.array([r.scores.positive for r in results])
    neg = np.array([r.scores.negative for r in results])
    return pos / np.maximum(pos + neg, 1e-12)


def _rows_for(
    analyzer: SentimentAnalyzer,
    rows: list[LabelledText],
    names: tuple[str, ...],
    language: str,
) -> tuple[list[dict[str, Any]], list[float], list[Any], list[Any]]:
    out: list[dict[str, Any]] = []
    accuracies: list[float] = []
    all_q: list[Any] = []
    all_y: list[Any] = []
    for name in names:
        held_out = [r for r in rows if r.source == name and r.split == "test"]
        if not held_out:
            continue
        q = _binary_positive(analyzer, [r.text for r in held_out], language)
        y = np.array([r.label for r in held_out], dtype=np.int64)
        accuracy = float(np.mean((q > 0.5) == (y == 1)))
        accuracies.append(accuracy)
        all_q.append(q)
        all_y.append(y)
        out.append(
            {
                "task": TASK,
                "dataset": f"{name} (held-out)",
                "metric": "accuracy",
                "value": round(accuracy, 4),
                "n": len(held_out),
            }
        )
    return out, accuracies, all_q, all_y


def evaluate(data_dir: Path, analyzer: SentimentAnalyzer | None = None) -> list[dict[str, Any]]:
    """Accuracy per held-out set, the zh mean accuracy, and ECE per language."""
    model = analyzer or SentimentAnalyzer.load()
    results: list[dict[str, Any]] = []
    languages: tuple[tuple[Literal["zh", "en"], tuple[str, ...]], ...] = (
        ("zh", ZH_REPORTED),
        ("en", EN_REPORTED),
    )
    for language, names in languages:
        rows = load(data_dir, language)
        per_set, accuracies, qs, ys = _rows_for(model, rows, names, language)
        results.extend(per_set)
        if not qs:
            continue
        q = np.concatenate(qs)
        y = np.concatenate(ys)
        if len(accuracies) > 1:
            results.append(
                {
                    "task": TASK,
                    "dataset": f"{language} mean of {len(accuracies)} held-out sets",
                    "metric": "accuracy",
                    "value": round(float(np.mean(accuracies)), 4),
                    "n": int(y.size),
                }
            )
        results.append(
            {
                "task": TASK,
                "dataset": f"{language} held-out (all sets)",
                "metric": "ece",
                "value": round(expected_calibration_error(q, y), 4),
                "n": int(y.size),
            }
        )
    return results


if __name__ == "__main__":
    from evaluation.sentiment_splits import data_dir

    for row in evaluate(data_dir()):
        print(row)
