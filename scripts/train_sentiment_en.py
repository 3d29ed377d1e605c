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
    U64,
    EnglishNgramModel,
    WordKeys,
    text_term_keys,
)
from analyzers.sentiment_lexicon import (  # noqa: E402
    REVIEW_LEXICON_FILE,
    EnglishLexicon,
    _load_lexicon,
)
from evaluation.data import default_data_dir, exit_on_data_error  # noqa: E402
from evaluation.sentiment_en import EnText, accuracy_rows, all_rows  # noqa: E402

DEFAULT_OUT = ROOT / "analyzers" / "models" / "sentiment_en"
LEXICON_DIR = ROOT / "analyzers" / "models" / "sentiment"
MIN_DF = 2
C = 2.0
NB = True
# Lexicon scores are multiplied by this before fitting (a larger scale means a smaller
# L2 penalty on their weights, i.e. more trust in the lexicon off the training domains).
LEX_SCALE = 1.0
# Per-source sample weights (SST phrases are many and short; IMDB reviews are long).
# "news" rows (unlabelled Reuters sentences) enter twice, once per label, at half weight.
WEIGHTS = {
    "sst2_sentences": 1.0,
    "sst2_phrases": 1.0,
    "imdb": 1.0,
    "uci_amazon": 1.0,
    "news": 3.0,
    "lexicon": 3.0,
}
# Lexicon words with |valence| >= this enter training as one-word texts labelled by their
# sign (a lexicon given to the model as data, as the Chinese model's polar words are):
# words rare in film and phone reviews ("crashing", "delayed") then get word weights of
# the right sign instead of whatever their few training contexts taught them.
LEXICON_MIN_VALENCE = 1.0
FloatArray = npt.NDArray[np.float64]


def fit_temperature(logits: FloatArray, labels: npt.NDArray[np.int64]) -> float:
    y = labels.astype(np.float64)

    def loss(t: float) -> float:
        z = logits / t
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 161))
    return float(min(grid, key=loss))


class Featurizer:
    """Term keys and lexicon scores of every text, computed once for all settings."""

    def __init__(self, texts: list[str], lexicon: EnglishLexicon) -> None:
        self.n = len(texts)
        self.rows, self.keys = text_term_keys(texts, WordKeys(capacity=10_000_000))
        self.lex = np.array(
            [(s.compound, s.positive, s.negative) for s in (lexicon.score(t) for t in texts)]
        )

    def vocabulary(self, rows: list[int], min_df: int) -> tuple[U64, FloatArray]:
        """Sorted keys of the terms in ``min_df``+ of ``rows``, and their IDF."""
        chosen = np.zeros(self.n, dtype=bool)
        chosen[rows] = True
        mask = chosen[self.rows]
        k, r = self.keys[mask], self.rows[mask]
        order = np.lexsort((r, k))
        k, r = k[order], r[order]
        first = np.ones(k.shape[0], dtype=bool)
        first[1:] = (k[1:] != k[:-1]) | (r[1:] != r[:-1])
        vocab, df = np.unique(k[first], return_counts=True)
        keep = df >= min_df
        idf = np.log((1.0 + len(rows)) / (1.0 + df[keep])) + 1.0
        # Stored as float16: train on exactly what inference reads.
        return vocab[keep], idf.astype(np.float16).astype(np.float64)

    def matrix(
        self, rows: list[int], vocab: U64, idf: FloatArray, lex_scale: float = 1.0
    ) -> sp.csr_matrix:
        if len(set(rows)) != len(rows):
            raise ValueError("rows must be distinct")
        position = np.full(self.n, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        where = position[self.rows]
        mask = where >= 0
        keys, owner = self.keys[mask], where[mask]
        n = vocab.shape[0]
        pos = np.minimum(np.searchsorted(vocab, keys), n - 1)
        hit = vocab[pos] == keys
        uniq, counts = np.unique(owner[hit] * np.int64(n) + pos[hit], return_counts=True)
        row, col = uniq // n, uniq % n
        values = (1.0 + np.log(counts)) * idf[col]
        norm = np.sqrt(np.bincount(row, weights=values * values, minlength=len(rows)))
        values = values / norm[row]
        lex_rows = np.repeat(np.arange(len(rows)), 3)
        lex_cols = np.tile(np.arange(n, n + 3), len(rows))
        data = np.concatenate([values, lex_scale * self.lex[rows].ravel()])
        m = sp.csr_matrix(
            (data, (np.concatenate([row, lex_rows]), np.concatenate([col, lex_cols]))),
            shape=(len(rows), n + 3),
        )
        return m


def lexicon_rows(directory: Path = LEXICON_DIR) -> list[EnText]:
    """The review lexicon's clearly polar words as labelled training texts.

    Only the review-domain list (product and service words: crashing, refund, delayed),
    not all of VADER: VADER's news words (killed, attack, crisis) as labelled rows made
    Reuters sentences confidently negative."""
    valences = _load_lexicon(directory / REVIEW_LEXICON_FILE)
    return [
        EnText("lexicon", word, int(valence > 0), "train")
        for word, valence in sorted(valences.items())
        if abs(valence) >= LEXICON_MIN_VALENCE and word.isalpha()
    ]


def fit(
    x: sp.csr_matrix, y: npt.NDArray[np.int64], weights: FloatArray, c: float, nb: bool
) -> tuple[FloatArray, float]:
    """Logistic regression; with ``nb`` the average of it and an NB-LR (features scaled
    by Naive Bayes log-count ratios, Wang & Manning 2012), still one linear model."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="liblinear", random_state=0, max_iter=1000)
    model.fit(x, y, sample_weight=weights)
    coef, intercept = model.coef_.ravel().astype(np.float64), float(model.intercept_[0])
    if not nb:
        return coef, intercept
    present = x.copy()
    present.data = np.ones_like(present.data)
    pos = 1.0 + np.asarray(present[y == 1].sum(axis=0)).ravel()
    neg = 1.0 + np.asarray(present[y == 0].sum(axis=0)).ravel()
    ratio = np.log((pos / pos.sum()) / (neg / neg.sum()))
    ratio[-3:] = 1.0  # the lexicon columns stay as they are
    scaled = LogisticRegression(C=c, solver="liblinear", random_state=0, max_iter=1000)
    scaled.fit(x @ sp.diags(ratio), y, sample_weight=weights)
    coef = (coef + ratio * scaled.coef_.ravel()) / 2.0
    return coef, (intercept + float(scaled.intercept_[0])) / 2.0


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


def run(
    rows: list[EnText],
    feats: Featurizer,
    c: float,
    weights: dict[str, float],
    min_df: int,
    nb: bool = NB,
    lex_scale: float = LEX_SCALE,
) -> dict[str, Any]:
    train = [i for i, r in enumerate(rows) if r.split == "train"]
    tune = [i for i, r in enumerate(rows) if r.split == "tune" and r.label >= 0]
    vocab, idf = feats.vocabulary(train, min_df)
    labelled = [i for i in train if rows[i].label >= 0]
    anchors = [i for i in train if rows[i].label < 0]
    once = feats.matrix(labelled + anchors, vocab, idf, lex_scale)
    x = sp.vstack([once, once[len(labelled) :]]).tocsr()
    y = np.array(
        [rows[i].label for i in labelled] + [1] * len(anchors) + [0] * len(anchors),
        dtype=np.int64,
    )
    w = np.array(
        [weights[rows[i].source] for i in labelled] + [weights["news"] / 2] * (2 * len(anchors))
    )
    coef, intercept = fit(x, y, w, c, nb)
    # The model reads unscaled lexicon scores: fold the scale into their weights.
    coef[-3:] *= lex_scale
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
    lexicon = EnglishLexicon.load(LEXICON_DIR)
    rows = all_rows(root) + lexicon_rows()
    feats = Featurizer([r.text for r in rows], lexicon)
    print(f"sentiment_en: {len(rows)} texts featurised, {time.perf_counter() - started:.0f} s")
    if args.grid:
        grid: list[tuple[float, dict[str, float], int, bool, float]] = []
        for lexicon_weight in (0.0, 1.0, 3.0):
            grid.append((args.c, {**WEIGHTS, "lexicon": lexicon_weight}, args.min_df, NB, 1.0))
        for c, weights, min_df, nb, lex_scale in grid:
            result = run(rows, feats, c, weights, min_df, nb, lex_scale)
            tune_rows = [rows[i] for i in result["tune"]]
            table = accuracy_rows(tune_rows, result["tune_positive"], "tune", "tune")
            table += news_shares(result["news_positive"])
            print(
                f"C={c} weights={weights} min_df={min_df} nb={nb} lex_scale={lex_scale}: "
                + ", ".join(f"{r['dataset']} {r['value']}" for r in table),
                flush=True,
            )
        return 0
    result = run(rows, feats, args.c, WEIGHTS, args.min_df)
    args.out.mkdir(parents=True, exist_ok=True)
    n = len(result["vocab"])
    np.savez_compressed(
        args.out / MODEL_FILE,
        keys=result["vocab"],
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
