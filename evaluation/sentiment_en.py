"""English sentiment data, its train / tune / held-out splits, and held-out quality.

``scripts/train_sentiment_en.py`` and this module share the split, so no reported text
was trained on or used to choose settings.

- **SST-2** (``sst2_train.jsonl``) holds sentences *and* every labelled phrase inside
  them. Sentences are the rows no other row contains; 10% of them (by sha1) are held
  out and 10% tune. A phrase is trained on only when some training sentence contains it,
  exactly as GLUE's train file relates to its dev sentences, so no part of a held-out
  sentence leaks into training except phrases other sentences share.
- **IMDB** (``imdb_train.jsonl``, full reviews) is split by review: 10% held out, 5% tune.
- **UCI Amazon** sentences: the same 20% held out as before (``evaluation.sentiment_splits``
  buckets), 10% tune.

The held-out figures are accuracies (a ``neutral`` answer counts as the larger of
positive and negative); the English target is the mean over the sentence families
(SST sentences, review sentences).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evaluation.data import default_data_dir, load_rows
from evaluation.sentiment_splits import bucket as uci_bucket

Split = Literal["train", "tune", "test"]
SST_FILE = "sentiment_en/sst2_train.jsonl"
IMDB_FILE = "sentiment_en/imdb_train.jsonl"
UCI_FILE = "sentiment_en/uci_amazon.jsonl"
NEWS_TRAIN_FILE = "ner_en/conll2003_train.jsonl"
NEWS_DEV_FILE = "ner_en/conll2003_dev.jsonl"
# A news sentence counts when it has this many tokens and is not a capitals headline.
NEWS_MIN_TOKENS = 8
# The families whose mean is the English target (both sentence-level).
REPORTED_MEAN = ("sst2_sentences", "uci_amazon")

HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class EnText:
    source: str  # sst2_sentences, sst2_phrases, imdb, uci_amazon
    text: str
    label: int  # 1 positive, 0 negative
    split: Split


def _bucket(key: str) -> int:
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % 100


def _split(b: int, test: int, tune: int) -> Split:
    return "test" if b < test else "tune" if b < test + tune else "train"


def _spans(tokens: tuple[str, ...], proper: bool) -> set[int]:
    """Hashes of the contiguous token runs of a row (without the whole row if proper)."""
    n = len(tokens)
    out = {hash(tokens[i:j]) for i in range(n) for j in range(i + 1, n + 1)}
    if proper:
        out.discard(hash(tokens))
    return out


def sst_rows(root: Path) -> list[EnText]:
    rows = load_rows(root / SST_FILE, {"text": str, "label": int})
    tokens = [tuple(r["text"].split()) for r in rows]
    inside_others: set[int] = set()
    for t in tokens:
        inside_others |= _spans(t, proper=True)
    out: list[EnText] = []
    train_spans: set[int] = set()
    phrases: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for t, r in zip(tokens, rows, strict=True):
        if not t:
            continue
        if hash(t) in inside_others:
            phrases.append((t, r))
            continue
        split = _split(_bucket("sst2:" + " ".join(t)), 10, 10)
        out.append(EnText("sst2_sentences", r["text"], int(r["label"]), split))
        if split == "train":
            train_spans |= _spans(t, proper=False)
    for t, r in phrases:
        if hash(t) in train_spans:
            out.append(EnText("sst2_phrases", r["text"], int(r["label"]), "train"))
    return out


def imdb_rows(root: Path) -> list[EnText]:
    rows = load_rows(root / IMDB_FILE, {"text": str, "label": int})
    out = []
    for r in rows:
        text = HTML_BREAK.sub(" ", r["text"])
        out.append(EnText("imdb", text, int(r["label"]), _split(_bucket("imdb:" + text), 10, 5)))
    return out


def uci_rows(root: Path) -> list[EnText]:
    rows = load_rows(root / UCI_FILE, {"text": str, "label": int})
    return [
        EnText("uci_amazon", r["text"], int(r["label"]), _split(uci_bucket(r["text"]), 20, 10))
        for r in rows
    ]


def news_rows(root: Path, path: str, split: Split | None) -> list[EnText]:
    """Reuters sentences (CoNLL-2003): factual news, the neutral anchor.

    No sentiment labels exist for them; training gives each one both labels at half
    weight, so words of plain news are pulled towards zero and their text towards
    P(positive) = 0.5, where the three-way rule answers ``neutral``. Label -1. With
    ``split`` None, 10% of the sentences (by sha1) are "tune" and the rest "train"."""
    rows = load_rows(root / path, {"text": str})
    out = []
    for r in rows:
        text: str = r["text"]
        letters = [c for c in text if c.isalpha()]
        if len(text.split()) < NEWS_MIN_TOKENS or not letters:
            continue
        if sum(c.isupper() for c in letters) > 0.5 * len(letters):
            continue
        where = split or _split(_bucket("news:" + text), 0, 10)
        out.append(EnText("news", text, -1, where))
    return out


def all_rows(root: Path, news: bool = True) -> list[EnText]:
    """Labelled rows, plus (``news``) CoNLL train sentences as neutral training anchors
    and CoNLL dev sentences as a held-out neutrality check."""
    rows = sst_rows(root) + imdb_rows(root) + uci_rows(root)
    if news:
        rows += news_rows(root, NEWS_TRAIN_FILE, None) + news_rows(root, NEWS_DEV_FILE, "test")
    return rows


def news_neutrality(
    rows: list[EnText], positive: np.ndarray[Any, Any], negative: np.ndarray[Any, Any], task: str
) -> list[dict[str, Any]]:
    """On held-out news sentences: the share answered neutral, and the share answered
    confidently negative or positive (that label's score above 0.6)."""
    idx = [i for i, r in enumerate(rows) if r.source == "news" and r.split == "test"]
    if not idx:
        return []
    pos, neg = positive[idx], negative[idx]
    neutral = 1.0 - pos - neg
    out = []
    for metric, value in (
        ("share neutral", float(np.mean((neutral >= pos) & (neutral >= neg)))),
        ("share negative > 0.6", float(np.mean(neg > 0.6))),
        ("share positive > 0.6", float(np.mean(pos > 0.6))),
    ):
        out.append(
            {
                "task": task,
                "dataset": "conll2003_dev news sentences (no labels)",
                "metric": metric,
                "value": round(value, 4),
                "n": len(idx),
            }
        )
    return out


def accuracy_rows(
    rows: list[EnText], positive: np.ndarray[Any, Any], split: Split, task: str
) -> list[dict[str, Any]]:
    """Accuracy per source on ``split``, and the mean over ``REPORTED_MEAN``."""
    out: list[dict[str, Any]] = []
    found: dict[str, float] = {}
    for source in ("sst2_sentences", "uci_amazon", "imdb"):
        idx = [i for i, r in enumerate(rows) if r.source == source and r.split == split]
        if not idx:
            continue
        y = np.array([rows[i].label for i in idx])
        acc = float(np.mean((positive[idx] > 0.5) == (y == 1)))
        found[source] = acc
        name = {"sst2_sentences": "sst2 sentences", "imdb": "imdb reviews"}.get(source, source)
        out.append(
            {
                "task": task,
                "dataset": f"{name} ({'held-out' if split == 'test' else split})",
                "metric": "accuracy",
                "value": round(acc, 4),
                "n": len(idx),
            }
        )
    if all(s in found for s in REPORTED_MEAN):
        out.append(
            {
                "task": task,
                "dataset": "en mean (sst2 sentences, uci_amazon)",
                "metric": "accuracy",
                "value": round(float(np.mean([found[s] for s in REPORTED_MEAN])), 4),
                "n": 0,
            }
        )
    return out


def evaluate(data_dir_: Path | None = None) -> list[dict[str, Any]]:
    """Held-out accuracy of the shipped analyzer's English path."""
    from analyzers.sentiment import SentimentAnalyzer

    root = data_dir_ or default_data_dir()
    rows = [r for r in all_rows(root) if r.split == "test"]
    analyzer = SentimentAnalyzer.load()
    results = analyzer.analyze_batch([r.text for r in rows], ["en"] * len(rows))
    pos = np.array([s.scores.positive for s in results])
    neg = np.array([s.scores.negative for s in results])
    out = accuracy_rows(rows, pos / np.maximum(pos + neg, 1e-12), "test", "sentiment_en")
    return out + news_neutrality(rows, pos, neg, "sentiment_en")


if __name__ == "__main__":
    for row in evaluate():
        print(json.dumps(row))
