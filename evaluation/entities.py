"""Entity-recognition quality on the held-out splits, beside the jieba.posseg baseline.

Exact-span micro precision / recall / F1 over PER, LOC and ORG, on the splits that
``evaluation.entities_splits`` defines (the same ones ``scripts/train_entities.py`` holds
out). The baseline tags jieba.posseg words nr*/ns/nt as PER/LOC/ORG.

    python -m evaluation.entities
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from evaluation.entities_splits import Sentence, Span, Split, data_dir, sentences

# (report name, source, split)
REPORTED: tuple[tuple[str, str, Split], ...] = (
    ("peoples_daily (held-out)", "peoples_daily", "test"),
    ("msra (held-out 25% of msra_train_part)", "msra", "test"),
    ("weibo_dev (named mentions)", "weibo_dev", "test"),
    ("cluener (held-out, coarse)", "cluener", "test"),
)
_JIEBA_KIND = {"nr": "PER", "nrfg": "PER", "nrt": "PER", "ns": "LOC", "nt": "ORG"}


def prf(gold: Sequence[Sentence], predicted: Sequence[Sequence[Span]]) -> dict[str, float]:
    tp = n_pred = n_gold = 0
    for sentence, spans in zip(gold, predicted, strict=True):
        want, got = set(sentence.spans), set(spans)
        tp += len(want & got)
        n_pred += len(got)
        n_gold += len(want)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1_micro": f1}


def jieba_posseg_spans(texts: Sequence[str]) -> list[list[Span]]:
    import jieba.posseg

    out: list[list[Span]] = []
    for text in texts:
        spans: list[Span] = []
        pos = 0
        for pair in jieba.posseg.cut(text):
            word, flag = pair.word, pair.flag
            kind = _JIEBA_KIND.get(flag)
            if kind is not None:
                spans.append((pos, pos + len(word), kind))
            pos += len(word)
        out.append(spans)
    return out


def model_spans(model_dir: Path | None = None) -> Callable[[Sequence[str]], list[list[Span]]]:
    from analyzers.entities import EntityRecognizer

    recognizer = EntityRecognizer.load(model_dir)

    def predict(texts: Sequence[str]) -> list[list[Span]]:
        results = recognizer.analyze_batch(list(texts), ["zh"] * len(texts))
        return [[(e.start, e.end, e.type) for e in ents] for ents in results]

    return predict


def evaluate(data_dir_: Path | None = None, *, baseline: bool = True) -> list[dict[str, object]]:
    """One row per (system, dataset, metric), e.g. the held-out People's Daily F1."""
    root = data_dir_ or data_dir()
    systems: list[tuple[str, Callable[[Sequence[str]], list[list[Span]]]]] = [
        ("entities", model_spans())
    ]
    if baseline:
        systems.append(("entities_baseline_jieba_posseg", jieba_posseg_spans))
    rows: list[dict[str, object]] = []
    for report_name, source, split in REPORTED:
        gold = sentences(source, {split}, root)
        for task, predict in systems:
            scores = prf(gold, predict([s.text for s in gold]))
            for metric, value in scores.items():
                rows.append(
                    {
                        "task": task,
                        "dataset": report_name,
                        "metric": metric,
                        "value": round(value, 4),
                        "n": len(gold),
                    }
                )
    return rows


def main() -> None:
    for row in evaluate():
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
