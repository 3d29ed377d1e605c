"""Builds the keyword extractor's data files in analyzers/resources/ (reproducibly).

1. ``zh_boundary_words.txt``: words that are frequent in the CSL abstracts but almost
   never inside an author keyword (进行, 结果表明, 具有 ...). They split candidate
   phrases like function words do.
2. ``keyword_ranker.json``: logistic-regression weights over the candidate features of
   ``analyzers.keywords.FEATURE_NAMES`` (label: the candidate is an author keyword), and
   the quantile edges of the binned continuous features.

Both are learned from the tuning part of ``keywords/csl_dev.jsonl`` (CSL, Apache-2.0);
the held-out part (``evaluation.data.is_held_out``) only measures. Run:

    python scripts/build_keyword_resources.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analyzers import keywords as kw  # noqa: E402
from analyzers.segmentation import segment_with_offsets  # noqa: E402
from evaluation.data import (  # noqa: E402
    default_data_dir,
    exit_on_data_error,
    load_rows,
    split_rows,
)
from evaluation.keywords import DATASET, TOP_K, f1_at_k, mean_f1  # noqa: E402

RESOURCES = REPO / "analyzers" / "resources"
BOUNDARY_MIN_COUNT = 8
BOUNDARY_MAX_INSIDE_SHARE = 0.01
C = 1.0
FOLDS = 5


def boundary_words(rows: list[dict[str, Any]]) -> list[str]:
    inside: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for row in rows:
        text = row["text"]
        spans = [
            (m.start(), m.end()) for k in row["keywords"] for m in re.finditer(re.escape(k), text)
        ]
        for word, start, end in segment_with_offsets(text):
            total[word] += 1
            if any(a <= start and end <= b for a, b in spans):
                inside[word] += 1
    return sorted(
        (
            w
            for w, n in total.items()
            if n >= BOUNDARY_MIN_COUNT
            and inside[w] / n < BOUNDARY_MAX_INSIDE_SHARE
            and any(ch.isalpha() for ch in w)
        ),
        key=lambda w: (-total[w], w),
    )


def base_matrix(
    rows: list[dict[str, Any]],
) -> tuple[list[list[float]], list[int], list[tuple[int, str]]]:
    """Base features and labels of every candidate, and its (row index, phrase)."""
    res = kw.load_resources()
    features: list[list[float]] = []
    labels: list[int] = []
    owners: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        found = kw.zh_candidates(row["text"], res)
        first, last = kw._first_and_last_sentence(row["text"])
        gold = set(row["keywords"])
        for phrase, cand in found.candidates.items():
            features.append(kw.base_features(phrase, cand, found, first, last, res))
            labels.append(int(phrase in gold))
            owners.append((index, phrase))
    return features, labels, owners


def cross_validated_f1(
    rows: list[dict[str, Any]],
    features: list[list[float]],
    labels: list[int],
    owners: list[tuple[int, str]],
) -> float:
    """Mean F1@5 over FOLDS folds of the tuning rows (row index modulo FOLDS)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x, y = np.array(features), np.array(labels)
    fold_of = np.array([index % FOLDS for index, _ in owners])
    total = 0.0
    for fold in range(FOLDS):
        train = fold_of != fold
        model = LogisticRegression(C=C, max_iter=5000).fit(x[train], y[train])
        scores = model.decision_function(x[~train])
        ranked: dict[int, list[tuple[float, int, str]]] = {}
        for order, (score, (index, phrase)) in enumerate(
            zip(scores, [o for o, t in zip(owners, train, strict=True) if not t], strict=True)
        ):
            ranked.setdefault(index, []).append((-float(score), order, phrase))
        for index in range(fold, len(rows), FOLDS):
            top = [phrase for _, _, phrase in sorted(ranked.get(index, []))[:TOP_K]]
            total += f1_at_k(top, rows[index]["keywords"])
    return total / len(rows)


def bin_edges(features: list[list[float]]) -> list[list[float]]:
    """N_BINS - 1 quantile edges per binned feature, over the training candidates."""
    import numpy as np

    matrix = np.array(features)
    quantiles = np.linspace(0.0, 1.0, kw.N_BINS + 1)[1:-1]
    return [
        [
            round(float(q), 6)
            for q in np.quantile(matrix[:, kw.NUMERIC_FEATURES.index(name)], quantiles)
        ]
        for name in kw.BINNED_FEATURES
    ]


def predicate_words_in_keywords(rows: list[dict[str, Any]]) -> Counter[str]:
    """Hand-listed predicate words that are a whole word of some author keyword."""
    listed = kw._read_words("zh_predicate_words.txt")
    found: Counter[str] = Counter()
    for row in rows:
        for keyword in row["keywords"]:
            for word, _, _ in segment_with_offsets(keyword):
                if word in listed:
                    found[word] += 1
    return found


@exit_on_data_error
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = parser.parse_args()
    rows = load_rows(args.data_dir / DATASET, {"text": str, "keywords": list})
    tune, held = split_rows(rows)
    print(f"tuning rows {len(tune)}, held-out rows {len(held)}")
    inside = predicate_words_in_keywords(tune)
    if inside:
        print("zh_predicate_words.txt words inside CSL keywords:", dict(inside.most_common(10)))

    words = boundary_words(tune)
    header = (
        "# Words frequent in CSL abstracts (Apache-2.0) but almost never inside an author\n"
        "# keyword; built by scripts/build_keyword_resources.py. One word per line.\n"
    )
    (RESOURCES / "zh_boundary_words.txt").write_text(header + "\n".join(words) + "\n", "utf-8")
    print(f"{len(words)} boundary words")
    kw.load_resources.cache_clear()

    from sklearn.linear_model import LogisticRegression

    base, labels, owners = base_matrix(tune)
    edges = bin_edges(base)
    features = [row + kw.bin_features(row, edges) for row in base]
    cv = cross_validated_f1(tune, features, labels, owners)
    print(f"ranker    F1@5 tuning {FOLDS}-fold CV {cv:.4f}")
    model = LogisticRegression(C=C, max_iter=5000).fit(features, labels)
    payload = {
        "features": list(kw.FEATURE_NAMES),
        "edges": edges,
        "weights": [round(float(w), 6) for w in model.coef_[0]],
        "bias": round(float(model.intercept_[0]), 6),
        "trained_on": f"{DATASET} tuning split ({len(tune)} abstracts), CSL Apache-2.0",
        "candidates": len(labels),
        "positives": int(sum(labels)),
    }
    (RESOURCES / "keyword_ranker.json").write_bytes(
        orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n"
    )
    kw.load_resources.cache_clear()
    for method in kw.METHODS:
        extractor = kw.KeywordExtractor(top_k=5, method=method)
        print(
            f"{method:9s} F1@5 tuning {mean_f1(extractor, tune):.4f}  "
            f"held-out {mean_f1(extractor, held):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
