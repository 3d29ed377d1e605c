"""Extractive summary: character-level ROUGE-1/2/L (F) on headline and title data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.data import read_jsonl, split_rows
from evaluation.rouge import rouge_scores

DATASETS = ("summarization/lcsts_dev.jsonl", "summarization/csl_title_dev.jsonl")
# Scored whole: never trained on (CLTS: seven long news articles; csl_title_train's held-out
# fifth is validation for the ranker's settings, see its model card).
WHOLE = ("summarization/clts_samples.jsonl",)


def mean_rouge(summarizer: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    totals = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    if not rows:
        return totals
    texts = [r["text"] for r in rows]
    summaries = summarizer.analyze_batch(texts, ["zh"] * len(texts))
    for summary, row in zip(summaries, rows, strict=True):
        for key, value in rouge_scores(summary, row["summary"]).items():
            totals[key] += value
    return {k: v / len(rows) for k, v in totals.items()}


def evaluate(data_dir: Path) -> list[dict[str, Any]]:
    from analyzers.summary import Summarizer

    summarizer = Summarizer()
    results: list[dict[str, Any]] = []
    for dataset in (*DATASETS, *WHOLE):
        path = data_dir / dataset
        if not path.is_file():
            results.append(
                {
                    "task": "summary",
                    "dataset": dataset,
                    "metric": "ROUGE-L",
                    "value": None,
                    "n": 0,
                    "note": "skipped: file absent",
                }
            )
            continue
        rows = list(read_jsonl(path))
        held = rows if dataset in WHOLE else split_rows(rows)[1]
        scores = mean_rouge(summarizer, held)
        for metric in ("rouge-1", "rouge-2", "rouge-l"):
            results.append(
                {
                    "task": "summary",
                    "dataset": dataset if dataset in WHOLE else f"{dataset} (held-out)",
                    "metric": metric.upper(),
                    "value": round(scores[metric], 4),
                    "n": len(held),
                }
            )
    return results
