"""English sentiment: logistic regression over negation-scoped word n-grams + a lexicon.

Trained by ``scripts/train_sentiment_en.py`` on SST-2 (sentences and phrases), IMDB
full reviews and UCI Amazon sentences, so one-line sentences and whole reviews share one
model: each text's n-gram vector is sublinear TF-IDF scaled to unit length, which makes a
sentence and a review comparable. Terms are lower-case words and word pairs inside a
sentence piece; inside a negation scope (after "not", "never", "n't" ... up to the next
punctuation or "but") words are marked ``not_word``, so "not good" and "good" get their
own weights. Three VADER-style lexicon scores (``analyzers.sentiment_lexicon``) carry the
model to words its training data never had. Numpy only at run time.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analyzers.sentiment_lexicon import NEGATORS, EnglishLexicon

MODEL_FILE = "en_ngram.npz"

# Contractions are expanded so that SST's "is n't" and plain "isn't" give the same words.
_NOT = re.compile(r"n['’]t\b")
_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|[.,;:!?]")
_SCOPE_END = frozenset({"but", "however", "although", "though", "yet", "except"})
_BREAK = frozenset(".,;:!?")
FloatArray = npt.NDArray[np.float64]


def words(text: str) -> list[str]:
    """Lower-case words, negation-marked, with ``|`` where a sentence piece ends."""
    out: list[str] = []
    negated = False
    for token in _TOKEN.findall(_NOT.sub(" not", text.lower())):
        if token in _BREAK or token in _SCOPE_END:
            negated = False
            out.append("|")
            if token in _SCOPE_END:
                out.append(token)
            continue
        out.append("not_" + token if negated else token)
        if token in NEGATORS:
            negated = True
    return out


def terms(text: str) -> list[str]:
    """Unigrams and bigrams within sentence pieces (no pair crosses a ``|``)."""
    ws = words(text)
    out = [w for w in ws if w != "|"]
    out.extend(f"{a} {b}" for a, b in itertools.pairwise(ws) if a != "|" and b != "|")
    return out


def encode_vocabulary(vocabulary: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The terms as one newline-joined UTF-8 byte array (compact in an .npz, no pickle)."""
    return np.frombuffer("\n".join(vocabulary).encode("utf-8"), dtype=np.uint8)


def decode_vocabulary(raw: npt.NDArray[np.uint8]) -> list[str]:
    return raw.tobytes().decode("utf-8").split("\n") if raw.size else []


class EnglishNgramModel:
    """The fitted model: term weights, IDF, lexicon weights, intercept, temperature."""

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        coef: npt.NDArray[np.floating],
        idf: npt.NDArray[np.floating],
        lexicon_coef: npt.NDArray[np.floating],
        intercept: float,
        temperature: float,
        lexicon: EnglishLexicon,
    ) -> None:
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.coef = np.asarray(coef, dtype=np.float64)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.lexicon_coef = np.asarray(lexicon_coef, dtype=np.float64)
        self.intercept = intercept
        self.temperature = temperature
        self.lexicon = lexicon

    @classmethod
    def load(cls, path: Path, lexicon: EnglishLexicon) -> EnglishNgramModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                vocabulary=decode_vocabulary(data["vocabulary"]),
                coef=data["coef"],
                idf=data["idf"],
                lexicon_coef=data["lexicon_coef"],
                intercept=float(data["intercept"]),
                temperature=float(data["temperature"]),
                lexicon=lexicon,
            )

    def lexicon_features(self, text: str) -> tuple[float, float, float]:
        score = self.lexicon.score(text)
        return score.compound, score.positive, score.negative

    def term_ids(self, text: str) -> list[int]:
        get = self.index.get
        return [i for i in map(get, terms(text)) if i is not None]

    def logits(self, texts: Sequence[str]) -> FloatArray:
        """Decision values; NaN for a text with no known term and no lexicon word."""
        out = np.empty(len(texts), dtype=np.float64)
        for k, text in enumerate(texts):
            ids = self.term_ids(text)
            lex = self.lexicon_features(text)
            if not ids and not any(lex):
                out[k] = math.nan
                continue
            total = self.intercept + float(self.lexicon_coef @ np.asarray(lex))
            if ids:
                uniq, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
                values = (1.0 + np.log(counts)) * self.idf[uniq]
                total += float(self.coef[uniq] @ values) / float(np.sqrt(values @ values))
            out[k] = total
        return out

    def positive_probability(self, texts: Sequence[str]) -> FloatArray:
        z = np.nan_to_num(np.clip(self.logits(texts) / self.temperature, -40.0, 40.0), nan=0.0)
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        return out
