"""English sentiment: logistic regression over negation-scoped word n-grams + a lexicon.

Trained by ``scripts/train_sentiment_en.py`` on SST-2 (sentences and phrases), IMDB
full reviews and UCI Amazon sentences, with Reuters news sentences as neutral anchors,
so one-line sentences and whole reviews share one model: each text's n-gram vector is
sublinear TF-IDF scaled to unit length, which makes a sentence and a review comparable.
Terms are lower-case words and word pairs inside a sentence piece; inside a negation
scope (after "not", "never", "n't" ... up to the next punctuation or "but") words are
marked ``not_word``, so "not good" and "good" get their own weights. Three VADER-style
lexicon scores (``analyzers.sentiment_lexicon``) carry the model to words its training
data never had.

Terms are 64-bit keys, not strings: a word's key is a stable hash (cached per distinct
word), a pair's key is mixed from its two words' keys by numpy, and the model stores
only the sorted keys it knows. That keeps a ~400k-term model at a few MB in memory and
its load at a few milliseconds. Numpy only at run time.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
PIECE_END = "|"
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
FloatArray = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


def words(text: str) -> list[str]:
    """Lower-case words, negation-marked, with ``|`` where a sentence piece ends."""
    out: list[str] = []
    negated = False
    for token in _TOKEN.findall(_NOT.sub(" not", text.lower())):
        if token in _BREAK or token in _SCOPE_END:
            negated = False
            out.append(PIECE_END)
            if token in _SCOPE_END:
                out.append(token)
            continue
        out.append("not_" + token if negated else token)
        if token in NEGATORS:
            negated = True
    return out


def terms(text: str) -> list[str]:
    """The model's terms as strings (for reading; the model uses their keys)."""
    ws = words(text)
    out = [w for w in ws if w != PIECE_END]
    out.extend(f"{a} {b}" for a, b in itertools.pairwise(ws) if PIECE_END not in (a, b))
    return out


def word_key(word: str) -> int:
    """Stable 64-bit key of a word (never 0, which marks a piece end)."""
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


class WordKeys:
    """Word -> key, cached; the cache starts over when full (bounded memory)."""

    def __init__(self, capacity: int = 300_000) -> None:
        self.capacity = capacity
        self._cache: dict[str, int] = {PIECE_END: 0}

    def keys(self, ws: Sequence[str]) -> list[int]:
        cache = self._cache
        if len(cache) + len(ws) > self.capacity:
            cache.clear()
            cache[PIECE_END] = 0
        out = []
        for w in ws:
            k = cache.get(w)
            if k is None:
                k = cache[w] = word_key(w)
            out.append(k)
        return out


@dataclass(frozen=True, slots=True)
class TermBatch:
    """Every known term occurrence of a batch: (text, term index), counted."""

    rows: I64  # text of each (text, term) pair
    terms: I64  # index into the model's sorted keys
    counts: I64


def term_keys(word_keys: U64) -> U64:
    """Keys of the unigrams and bigrams of one text's word keys (0 = piece end).

    Pairs that touch a piece end are dropped; a unigram's key is its word's key."""
    uni: U64 = word_keys[word_keys != 0]
    if word_keys.shape[0] < 2:
        return uni
    a, b = word_keys[:-1], word_keys[1:]
    ok = (a != 0) & (b != 0)
    pair = (a[ok] * _M1) ^ b[ok]
    pair = (pair ^ (pair >> np.uint64(29))) * _M2
    out: U64 = np.concatenate([uni, pair | np.uint64(1)])
    return out


class EnglishNgramModel:
    """The fitted model: term weights, IDF, lexicon weights, intercept, temperature."""

    def __init__(
        self,
        *,
        keys: U64,
        coef: npt.NDArray[np.floating],
        idf: npt.NDArray[np.floating],
        lexicon_coef: npt.NDArray[np.floating],
        intercept: float,
        temperature: float,
        lexicon: EnglishLexicon,
    ) -> None:
        if keys.shape[0] > 1 and not bool(np.all(keys[1:] > keys[:-1])):
            raise ValueError("term keys must be sorted and unique")
        self.keys = keys
        self.coef = np.asarray(coef, dtype=np.float64)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.lexicon_coef = np.asarray(lexicon_coef, dtype=np.float64)
        self.intercept = intercept
        self.temperature = temperature
        self.lexicon = lexicon
        self.word_keys = WordKeys()

    @classmethod
    def load(cls, path: Path, lexicon: EnglishLexicon) -> EnglishNgramModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                keys=data["keys"].astype(np.uint64),
                coef=data["coef"],
                idf=data["idf"],
                lexicon_coef=data["lexicon_coef"],
                intercept=float(data["intercept"]),
                temperature=float(data["temperature"]),
                lexicon=lexicon,
            )

    def term_batch(self, texts: Sequence[str]) -> TermBatch:
        """Known terms of every text, found with one sorted-key search for the batch."""
        return find_terms(texts, self.keys, self.word_keys)

    def lexicon_matrix(self, texts: Sequence[str]) -> FloatArray:
        out = np.zeros((len(texts), 3), dtype=np.float64)
        for i, text in enumerate(texts):
            score = self.lexicon.score(text)
            out[i] = (score.compound, score.positive, score.negative)
        return out

    def logits(self, texts: Sequence[str]) -> FloatArray:
        """Decision values; NaN for a text with no known term and no lexicon word."""
        n = len(texts)
        batch = self.term_batch(texts)
        values = (1.0 + np.log(batch.counts)) * self.idf[batch.terms]
        norm = np.sqrt(np.bincount(batch.rows, weights=values * values, minlength=n))
        dot = np.bincount(batch.rows, weights=values * self.coef[batch.terms], minlength=n)
        lex = self.lexicon_matrix(texts)
        out: FloatArray = dot / np.where(norm > 0, norm, 1.0) + lex @ self.lexicon_coef
        out += self.intercept
        out[(norm == 0) & ~lex.any(axis=1)] = math.nan
        return out

    def positive_probability(self, texts: Sequence[str]) -> FloatArray:
        z = np.nan_to_num(np.clip(self.logits(texts) / self.temperature, -40.0, 40.0), nan=0.0)
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        return out


def text_term_keys(texts: Sequence[str], cache: WordKeys) -> tuple[I64, U64]:
    """(text index, term key) of every term occurrence in ``texts``."""
    parts: list[U64] = []
    owners: list[I64] = []
    for i, text in enumerate(texts):
        keys = term_keys(np.array(cache.keys(words(text)), dtype=np.uint64))
        parts.append(keys)
        owners.append(np.full(keys.shape[0], i, dtype=np.int64))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(owners), np.concatenate(parts)


def find_terms(texts: Sequence[str], known: U64, cache: WordKeys) -> TermBatch:
    rows, keys = text_term_keys(texts, cache)
    empty = np.zeros(0, np.int64)
    if keys.size == 0 or known.size == 0:
        return TermBatch(empty, empty, empty)
    pos = np.minimum(np.searchsorted(known, keys), known.shape[0] - 1)
    hit = known[pos] == keys
    pairs = rows[hit] * np.int64(known.shape[0]) + pos[hit]
    uniq, counts = np.unique(pairs, return_counts=True)
    return TermBatch(uniq // known.shape[0], uniq % known.shape[0], counts)
