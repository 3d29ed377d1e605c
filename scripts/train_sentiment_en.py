"""Train the shipped English sentiment model (analyzers/models/sentiment_en/en_ngram.npz).

    python scripts/train_sentiment_en.py            # train, calibrate on tune, write, report
    python scripts/train_sentiment_en.py --grid     # settings table on the tune split only

Logistic regression (scikit-learn, training only) over sublinear TF-IDF of negation-marked
word uni/bigrams (``analyzers.sentiment_en.terms``) plus three lexicon scores, trained
on the train split of SST-2 (sentences and the phrases of training sentences), IMDB
reviews and UCI Amazon sentences (``evaluation.sentiment_en``). The temperature is fitted
on the tune split; settings were chosen on it with ``--grid``; held-out figures are printed
at the end and never used for choices. Deterministic: same data, same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.sentiment import NeutralRule  # noqa: E402
from analyzers.sentiment_en import (  # noqa: E402
    MODEL_FILE,
    EnglishNgramModel,
    encode_vocabulary,
    terms,
)
from analyzers.sentiment_lexicon import EnglishLexicon  # noqa: E402
from evaluation.data import default_data_dir, exit_on_data_error  # noqa: E402
from evaluation.sentiment_en import EnText, accuracy_rows, all_rows  # noqa: E402

DEFAULT_OUT = ROOT / "analyzers" / "models" / "sentiment_en"
LEXICON_DIR = ROOT / "analyzers" / "models" / "sentiment"
MIN_DF = 2
C = 1.0
# Per-source sample weights (SST phrases are many and short; IMDB reviews are long).
# "news" rows (unlabelled Reuters sentences) enter twice, once per label, at half weight.
WEIGHTS = {
    "sst2_sentences": 1.0,
    "sst2_phrases": 1.0,
    "imdb": 1.0,
    "uci_amazon": 3.0,
    "news": 1.0,
}
FloatArray = npt.NDArray[np.float64]


def fit_temperature(logits: FloatArray, labels: npt.NDArray[np.int64]) -> float:
    y = labels.astype(np.float64)

    def loss(t: float) -> float:
        z = logits / t
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 161))
    return float(min(grid, key=loss))


class Featurizer:
    def __init__(self, texts: list[str], lexicon: EnglishLexicon) -> None:
        self.lexicon = lexicon
        self.term_lists = [terms(t) for t in texts]
        self.lex = np.array(
            [(s.compound, s.positive, s.negative) for s in (lexicon.score(t) for t in texts)]
        )

    def vocabulary(self, rows: list[int], min_df: int) -> tuple[list[str], FloatArray]:
        df: Counter[str] = Counter()
        for i in rows:
            df.update(set(self.term_lists[i]))
        vocab = sorted(t for t, c in df.items() if c >= min_df)
        counts = np.array([df[t] for t in vocab], dtype=np.float64)
        idf = np.log((1.0 + len(rows)) / (1.0 + counts)) + 1.0
        # Stored as float16: train on exactly what inference reads.
        return vocab, idf.astype(np.float16).astype(np.float64)

    def matrix(self, rows: list[int], vocab: list[str], idf: FloatArray) -> sp.csr_matrix:
        index = {t: i for i, t in enumerate(vocab)}
        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        n = len(vocab)
        for r in rows:
            ids = [i for i in map(index.get, self.term_lists[r]) if i is not None]
            if ids:
                uniq, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
                values = (1.0 + np.log(counts)) * idf[uniq]
                values /= np.sqrt(values @ values)
                cols.extend(uniq.tolist())
                data.extend(values.tolist())
            cols.extend((n, n + 1, n + 2))
            data.extend(self.lex[r].tolist())
            indptr.append(len(cols))
        return sp.csr_matrix((data, cols, indptr), shape=(len(rows), n + 3))


def fit(
    x: sp.csr_matrix, y: npt.NDArray[np.int64], weights: FloatArray, c: float
) -> tuple[FloatArray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="liblinear", random_state=0, max_iter=1000)
    model.fit(x, y, sample_weight=weights)
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


def run(
    rows: list[EnText],
    feats: Featurizer,
    c: float,
    weights: dict[str, float],
    min_df: int,
) -> dict[str, Any]:
    train = [i for i, r in enumerate(rows) if r.split == "train"]
    tune = [i for i, r in enumerate(rows) if r.split == "tune" and r.label >= 0]
    vocab, idf = feats.vocabulary(train, min_df)
    labelled = [i for i in train if rows[i].label >= 0]
    anchors = [i for i in train if rows[i].label < 0]
    x = feats.matrix(labelled + anchors + anchors, vocab, idf)
    y = np.array(
        [rows[i].label for i in labelled] + [1] * len(anchors) + [0] * len(anchors),
        dtype=np.int64,
    )
    w = np.array(
        [weights[rows[i].source] for i in labelled] + [weights["news"] / 2] * (2 * len(anchors))
    )
    coef, intercept = fit(x, y, w, c)
    coef16 = coef.astype(np.float16).astype(np.float64)
    x_tune = feats.matrix(tune, vocab, idf)
    tune_logits = x_tune @ coef16 + intercept
    y_tune = np.array([rows[i].label for i in tune], dtype=np.int64)
    temperature = fit_temperature(tune_logits, y_tune)
    news = [i for i, r in enumerate(rows) if r.split == "tune" and r.label < 0]
    news_logits = feats.matrix(news, vocab, idf) @ coef16 + intercept
    return {
        "news_positive": _sigmoid(news_logits / temperature),
        "vocab": vocab,
        "idf": idf,
        "coef": coef16,
        "intercept": intercept,
        "temperature": temperature,
        "tune_positive": _sigmoid(tune_logits / temperature),
        "tune": tune,
    }


def news_shares(q: FloatArray) -> list[dict[str, Any]]:
    """Tune news sentences: share answered neutral / confidently negative (the three-way
    rule of ``analyzers.sentiment``)."""
    rule = NeutralRule()
    scores = np.array([rule.three_way(float(v)) for v in q])
    neutral = (scores[:, 2] >= scores[:, 0]) & (scores[:, 2] >= scores[:, 1])
    return [
        {"dataset": "news neutral", "value": round(float(neutral.mean()), 3)},
        {"dataset": "news negative>0.6", "value": round(float((scores[:, 1] > 0.6).mean()), 3)},
        {"dataset": "news positive>0.6", "value": round(float((scores[:, 0] > 0.6).mean()), 3)},
    ]


@exit_on_data_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--grid", action="store_true", help="tune-split table, writes nothing")
    parser.add_argument("--c", type=float, default=C)
    parser.add_argument("--min-df", type=int, default=MIN_DF)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root: Path = args.data_dir or default_data_dir()
    rows = all_rows(root)
    lexicon = EnglishLexicon.load(LEXICON_DIR)
    feats = Featurizer([r.text for r in rows], lexicon)
    print(f"sentiment_en: {len(rows)} texts featurised, {time.perf_counter() - started:.0f} s")
    if args.grid:
        grid: list[tuple[float, dict[str, float], int]] = []
        for news in (0.0, 1.0, 3.0):
            grid.append((args.c, {**WEIGHTS, "news": news}, args.min_df))
        for c in (1.0, 4.0):
            grid.append((c, WEIGHTS, args.min_df))
        grid.append((args.c, WEIGHTS, 3))
        for c, weights, min_df in grid:
            result = run(rows, feats, c, weights, min_df)
            tune_rows = [rows[i] for i in result["tune"]]
            table = accuracy_rows(tune_rows, result["tune_positive"], "tune", "tune")
            table += news_shares(result["news_positive"])
            print(
                f"C={c} weights={weights} min_df={min_df}: "
                + ", ".join(f"{r['dataset']} {r['value']}" for r in table),
                flush=True,
            )
        return 0
    result = run(rows, feats, args.c, WEIGHTS, args.min_df)
    args.out.mkdir(parents=True, exist_ok=True)
    n = len(result["vocab"])
    np.savez_compressed(
        args.out / MODEL_FILE,
        vocabulary=encode_vocabulary(result["vocab"]),
        coef=result["coef"][:n].astype(np.float16),
        idf=result["idf"].astype(np.float16),
        lexicon_coef=result["coef"][n:].astype(np.float32),
        intercept=np.float64(result["intercept"]),
        temperature=np.float64(result["temperature"]),
    )
    model = EnglishNgramModel.load(args.out / MODEL_FILE, lexicon)
    test = [r for r in rows if r.split == "test"]
    held_out = accuracy_rows(
        test, model.positive_probability([r.text for r in test]), "test", "sentiment_en"
    )
    tune_rows = [rows[i] for i in result["tune"]]
    report = {
        "train_texts": sum(1 for r in rows if r.split == "train"),
        "vocabulary": n,
        "C": args.c,
        "min_df": args.min_df,
        "source_weights": WEIGHTS,
        "temperature": result["temperature"],
        "lexicon_coef": [float(v) for v in result["coef"][n:]],
        "tune": accuracy_rows(tune_rows, result["tune_positive"], "tune", "sentiment_en"),
        "held_out": held_out,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    for row in held_out:
        print(f"sentiment_en {row['dataset']}: {row['metric']} {row['value']} (n={row['n']})")
    size = (args.out / MODEL_FILE).stat().st_size
    print(f"sentiment_en: wrote {args.out / MODEL_FILE} ({size / 1e6:.1f} MB)")
    print(f"sentiment_en: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
