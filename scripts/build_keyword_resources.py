"""Builds the keyword extractor's data files in analyzers/resources/ (reproducibly).

1. ``zh_boundary_words.txt``: words that are frequent in the CSL abstracts but almost
   never inside an author keyword (进行, 结果表明, 具有 ...). They split candidate
   phrases like function words do.
2. ``keyword_ranker.json``: logistic-regression weights over the candidate features of
   ``analyzers.keywords.FEATURE_NAMES`` and N_INTERACTIONS products of pairs of numeric
   features (label: the candidate is an author keyword), and the quantile edges of the
   binned continuous features. The pairs are those with the largest standardised weights
   in a model over all pairs, fitted on the whole tuning part (so the CV, which refits
   the weights per fold but keeps the pairs, is slightly optimistic); features are
   standardised for training and the scaling is folded into the shipped weights.

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
# Regularisation of the standardised features and the number of products. Tuning 5-fold
# CV F1@5 (as printed below): 32 products at C=0.05 0.2820, 0.1 0.2819, 0.2 0.2816; at
# C=0.1 16 products 0.2778, 24 0.2821, 32 0.2819, 40 0.2804; without products (kw-3: C=1,
# unscaled) 0.2676. 24: the best, and each product costs scoring time.
C = 0.1
N_INTERACTIONS = 24
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

    x, y = np.array(features), np.array(labels)
    fold_of = np.array([index % FOLDS for index, _ in owners])
    total = 0.0
    for fold in range(FOLDS):
        train = fold_of != fold
        weights, bias = fit(x[train], y[train])
        scores = x[~train] @ weights + bias
        ranked: dict[int, list[tuple[float, int, str]]] = {}
        for order, (score, (index, phrase)) in enumerate(
            zip(scores, [o for o, t in zip(owners, train, strict=True) if not t], strict=True)
        ):
            ranked.setdefault(index, []).append((-float(score), order, phrase))
        for index in range(fold, len(rows), FOLDS):
            top = [phrase for _, _, phrase in sorted(ranked.get(index, []))[:TOP_K]]
            total += f1_at_k(top, rows[index]["keywords"])
    return total / len(rows)


def fit(x: Any, y: Any) -> tuple[Any, float]:
    """Logistic regression on standardised features; weights and bias for the raw ones."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    model = LogisticRegression(C=C, max_iter=5000).fit((x - mean) / scale, y)
    weights = model.coef_[0] / scale
    return weights, float(model.intercept_[0] - np.dot(weights, mean))


def strongest_pairs(features: list[list[float]], labels: list[int]) -> list[tuple[int, int]]:
    """The N_INTERACTIONS pairs of NUMERIC_FEATURES (a feature with itself included) whose
    products weigh most in a standardised model over all pairs."""
    import itertools

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    n = len(kw.NUMERIC_FEATURES)
    pairs = [*itertools.combinations(range(n), 2), *((i, i) for i in range(n))]
    x = np.array(features)
    base = x[:, :n]
    products = np.column_stack([base[:, i] * base[:, j] for i, j in pairs])
    full = np.hstack([x, products])
    scale = full.std(axis=0)
    scale[scale == 0.0] = 1.0
    model = LogisticRegression(C=C, max_iter=5000).fit((full - full.mean(axis=0)) / scale, labels)
    strength = np.abs(model.coef_[0][x.shape[1] :])
    order = sorted(range(len(pairs)), key=lambda k: (-float(strength[k]), k))
    return [pairs[k] for k in order[:N_INTERACTIONS]]


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

    import numpy as np

    base, labels, owners = base_matrix(tune)
    edges = bin_edges(base)
    binned = [row + kw.bin_features(row, edges) for row in base]
    pairs = strongest_pairs(binned, labels)
    features = [row + kw.interaction_features(row, pairs) for row in binned]
    cv = cross_validated_f1(tune, features, labels, owners)
    print(f"ranker    F1@5 tuning {FOLDS}-fold CV {cv:.4f}")
    weights, bias = fit(np.array(features), np.array(labels))
    names = kw.NUMERIC_FEATURES
    payload = {
        "features": [
            *kw.FEATURE_NAMES,
            *(f"{names[i]}{kw.INTERACTION_SEPARATOR}{names[j]}" for i, j in pairs),
        ],
        "edges": edges,
        "weights": [round(float(w), 6) for w in weights],
        "bias": round(float(bias), 6),
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
