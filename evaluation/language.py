"""Language detection: accuracy on labelled data whose language is known by construction.

Chinese rows come from the Chinese sentiment data, English ones from the UCI sentences;
the detector should call them ``zh`` and ``en``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.data import read_jsonl

DATASETS = (
    ("sentiment_zh/chnsenticorp_dev.jsonl", "zh"),
    ("sentiment_en/uci_amazon.jsonl", "en"),
)


def evaluate(data_dir: Path) -> list[dict[str, Any]]:
    from analyzers.language import LanguageDetector

    detector = LanguageDetector()
    results: list[dict[str, Any]] = []
    for dataset, expected in DATASETS:
        path = data_dir / dataset
        if not path.is_file():
            results.append(
                {
                    "task": "language",
                    "dataset": dataset,
                    "metric": "accuracy",
                    "value": None,
                    "n": 0,
                    "note": "skipped: file absent",
                }
            )
            continue
        texts = [str(r["text"]) for r in read_jsonl(path)]
        detected = detector.analyze_batch(texts, [""] * len(texts))
        correct = sum(1 for d in detected if d == expected)
        results.append(
            {
                "task": "language",
                "dataset": dataset,
                "metric": "accuracy",
                "value": round(correct / len(texts), 4) if texts else None,
                "n": len(texts),
            }
        )
    return results
