"""Sentiment (positive / negative / neutral) for Chinese and English with numpy linear models.

Chinese: logistic regression over hashed character 1..n-grams (TF-IDF), trained on
~120k labelled reviews (see models/sentiment/MODEL_CARD.md), stacked with the scores of a
Chinese lexicon with negation, degree, contrast and aspect rules
(``analyzers.sentiment_zh_lexicon``), which reads posts and mixed reviews where the
review-trained n-grams cannot ("太厉害了", "性价比不算高"). English: logistic
regression over negation-scoped word uni/bigrams plus VADER-style lexicon scores, trained
on SST-2, IMDB and UCI Amazon with news sentences as neutral anchors
(``analyzers.sentiment_en``, models/sentiment_en/MODEL_CARD.md).

Both models are binary. Their probability of "positive", calibrated on held-out data (a
temperature, or the Chinese stack's fitted weights), is turned into three classes by
giving the neutral class the mass the model leaves undecided: ``neutral = prior * (1 -
|2q - 1|) ** power``. A text with no sentiment signal (no known features, or positive ≈
negative) is neutral; the rest of the mass is split in the ratio q : 1 - q, so positive
and negative keep their order even when the label is neutral.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analyzers.sentiment_en import MODEL_FILE as EN_NGRAM_FILE
from analyzers.sentiment_en import EnglishNgramModel
from analyzers.sentiment_lexicon import (
    REVIEW_LEXICON_FILE,
    VADER_LEXICON_FILE,
    EnglishLexicon,
    word_terms,
)
from analyzers.sentiment_zh_lexicon import ZH_LEXICON_FILE, ChineseLexicon
from analyzers.text_features import char_ngram_ids, idf_weighted_rows
from schemas.results import Sentiment, SentimentScores

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "sentiment"
ZH_MODEL_FILE = "zh_char_ngram.npz"
EN_MODEL_FILE = "en_words_lexicon.npz"
_WEIGHT_FILES = (ZH_MODEL_FILE, EN_MODEL_FILE, VADER_LEXICON_FILE, REVIEW_LEXICON_FILE)
_OPTIONAL_FILES = (ZH_LEXICON_FILE,)
# The English n-gram model (analyzers.sentiment_en, scripts/train_sentiment_en.py); the
# older word/lexicon model in this folder answers for English only when it is absent.
DEFAULT_EN_MODEL_DIR = Path(__file__).resolve().parent / "models" / "sentiment_en"

# Bounds the feature arrays of one vectorised call: texts are processed in chunks of
# about this many characters.
_CHUNK_CHARS = 200_000


def _is_han(ch: str) -> bool:
    cp = ord(ch)
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF


@dataclass(frozen=True, slots=True)
class NeutralRule:
    """How much probability goes to "neutral" when a binary model is undecided."""

    prior: float = 0.6
    power: float = 2.0

    def three_way(self, q: float) -> tuple[float, float, float]:
        """(positive, negative, neutral) from the calibrated P(positive | polar) ``q``."""
        neutral = self.prior * (1.0 - abs(2.0 * q - 1.0)) ** self.power
        polar = 1.0 - neutral
        return polar * q, polar * (1.0 - q), neutral


def _probability(logits: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
    """Calibrated sigmoid; a NaN logit (the text gave the model no evidence) becomes 0.5.

    The intercept alone reflects the training set's class balance, not the text, so a
    text without features is not pushed to either side.
    """
    z = np.nan_to_num(np.clip(logits / temperature, -40.0, 40.0), nan=0.0)
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


class ChineseCharNgramModel:
    """Logistic regression over hashed, TF-IDF weighted character n-grams, optionally
    stacked with the scores of a Chinese lexicon (``analyzers.sentiment_zh_lexicon``).

    With a stack ``(a, b_compound, b_positive, b_negative, c)`` the probability is
    ``sigmoid(a * logit + b . lexicon + c)``, fitted on the tune split; without one it is
    ``sigmoid(logit / temperature)``."""

    def __init__(
        self,
        *,
        coef: npt.NDArray[np.float32],
        idf: npt.NDArray[np.float32],
        intercept: float,
        temperature: float,
        max_order: int,
        bits: int,
        lexicon: ChineseLexicon | None = None,
        stack: npt.NDArray[np.float64] | None = None,
    ) -> None:
        if (lexicon is None) != (stack is None):
            raise ValueError("a lexicon stack needs both the lexicon and its weights")
        self.coef = coef
        self.idf = idf
        self.intercept = intercept
        self.temperature = temperature
        self.max_order = max_order
        self.bits = bits
        self.lexicon = lexicon
        self.stack = stack

    @classmethod
    def load(cls, path: Path, lexicon: ChineseLexicon | None = None) -> ChineseCharNgramModel:
        """The model in ``path``; its lexicon stack is used when the file has one and
        ``lexicon`` is given."""
        with np.load(path, allow_pickle=False) as data:
            stack = data["lexicon_stack"].astype(np.float64) if "lexicon_stack" in data else None
            return cls(
                coef=data["coef"].astype(np.float32),
                idf=data["idf"].astype(np.float32),
                intercept=float(data["intercept"]),
                temperature=float(data["temperature"]),
                max_order=int(data["max_order"]),
                bits=int(data["bits"]),
                lexicon=lexicon if stack is not None else None,
                stack=stack if lexicon is not None else None,
            )

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Uncalibrated decision values, one per text; NaN for a text with no features."""
        out = np.empty(len(texts), dtype=np.float64)
        has_features = np.zeros(len(texts), dtype=bool)
        start = 0
        while start < len(texts):
            end, chars = start, 0
            while end < len(texts) and (end == start or chars < _CHUNK_CHARS):
                chars += len(texts[end])
                end += 1
            chunk = texts[start:end]
            rows, ids = char_ngram_ids(chunk, max_order=self.max_order, bits=self.bits)
            weighted = idf_weighted_rows(len(chunk), rows, ids, self.idf)
            contributions = self.coef[ids] * weighted.values
            out[start:end] = np.bincount(rows, weights=contributions, minlength=len(chunk))
            has_features[start:end] = np.bincount(rows, minlength=len(chunk)) > 0
            start = end
        out += self.intercept
        out[~has_features] = np.nan
        return out

    def stacked_logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Calibrated decision values (sigmoid gives P(positive)); NaN without features."""
        logits = self.logits(texts)
        if self.stack is None or self.lexicon is None:
            out: npt.NDArray[np.float64] = logits / self.temperature
            return out
        stack = self.stack
        lex = self.lexicon.matrix(texts)
        stacked: npt.NDArray[np.float64] = stack[0] * logits + lex @ stack[1:4] + stack[4]
        return stacked

    def positive_probability(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        return _probability(self.stacked_logits(texts), 1.0)


class EnglishWordLexiconModel:
    """Logistic regression over negation-marked word uni/bigrams and lexicon scores."""

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        coef: npt.NDArray[np.float32],
        idf: npt.NDArray[np.float32],
        lexicon_coef: npt.NDArray[np.float32],
        intercept: float,
        temperature: float,
        lexicon: EnglishLexicon,
    ) -> None:
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.coef = coef.astype(np.float64)
        self.idf = idf.astype(np.float64)
        self.lexicon_coef = lexicon_coef.astype(np.float64)
        self.intercept = intercept
        self.temperature = temperature
        self.lexicon = lexicon

    @classmethod
    def load(cls, path: Path, lexicon: EnglishLexicon) -> EnglishWordLexiconModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                vocabulary=[str(t) for t in data["vocabulary"]],
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

    def word_counts(self, text: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        for term in word_terms(text):
            i = self.index.get(term)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        return counts

    def logit(self, text: str) -> float:
        """Decision value; NaN when no known term and no lexicon word occurs."""
        counts = self.word_counts(text)
        lex = np.asarray(self.lexicon_features(text), dtype=np.float64)
        if not counts and not lex.any():
            return math.nan
        total = 0.0
        if counts:
            ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            values = tf * self.idf[ids]
            total = float(self.coef[ids] @ values) / float(np.sqrt(values @ values))
        return total + float(self.lexicon_coef @ lex) + self.intercept

    def positive_probability(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        logits = np.fromiter((self.logit(t) for t in texts), dtype=np.float64, count=len(texts))
        return _probability(logits, self.temperature)


def weights_version(model_dir: Path, *extra: Path) -> str:
    digest = hashlib.sha256()
    for name in _WEIGHT_FILES:
        digest.update((model_dir / name).read_bytes())
    for name in _OPTIONAL_FILES:
        if (model_dir / name).is_file():
            digest.update((model_dir / name).read_bytes())
    for path in extra:
        digest.update(path.read_bytes())
    return "linear-" + digest.hexdigest()[:8]


class SentimentAnalyzer:
    """Stage ``sentiment``: one :class:`Sentiment` per text.

    ``zh`` and ``mixed`` texts use the Chinese model, ``en`` the English one; ``other``
    uses the Chinese model when the text has Han characters, the English one when it has
    Latin letters, and is neutral (low confidence) otherwise.
    """

    name = "sentiment"

    def __init__(
        self,
        *,
        zh: ChineseCharNgramModel,
        en: EnglishWordLexiconModel | EnglishNgramModel,
        version: str,
        neutral: NeutralRule | None = None,
    ) -> None:
        self.zh = zh
        self.en = en
        self.version = version
        self.neutral = neutral or NeutralRule()

    @classmethod
    def load(cls, model_dir: Path | None = None) -> SentimentAnalyzer:
        """The committed default model (or one in ``model_dir``); reads files, no network."""
        directory = model_dir or DEFAULT_MODEL_DIR
        lexicon = EnglishLexicon.load(directory)
        en_path = directory / EN_NGRAM_FILE
        if not en_path.is_file() and model_dir is None:
            en_path = DEFAULT_EN_MODEL_DIR / EN_NGRAM_FILE
        en: EnglishWordLexiconModel | EnglishNgramModel
        if en_path.is_file():
            en = EnglishNgramModel.load(en_path, lexicon)
            version = weights_version(directory, en_path)
        else:
            en = EnglishWordLexiconModel.load(directory / EN_MODEL_FILE, lexicon)
            version = weights_version(directory)
        zh_lexicon_path = directory / ZH_LEXICON_FILE
        zh_lexicon = ChineseLexicon.load(directory) if zh_lexicon_path.is_file() else None
        return cls(
            zh=ChineseCharNgramModel.load(directory / ZH_MODEL_FILE, zh_lexicon),
            en=en,
            version=version,
        )

    @staticmethod
    def _model_for(text: str, language: str) -> str:
        if language in ("zh", "mixed"):
            return "zh"
        if language == "en":
            return "en"
        if any(_is_han(ch) for ch in text):
            return "zh"
        if any(ch.isascii() and ch.isalpha() for ch in text):
            return "en"
        return "none"

    def positive_probabilities(
        self, texts: Sequence[str], languages: Sequence[str]
    ) -> npt.NDArray[np.float64]:
        """Calibrated P(positive | polar) per text; 0.5 where no model applies."""
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        q = np.full(len(texts), 0.5, dtype=np.float64)
        groups: dict[str, list[int]] = {"zh": [], "en": [], "none": []}
        for i, (text, language) in enumerate(zip(texts, languages, strict=True)):
            groups[self._model_for(text, language)].append(i)
        if groups["zh"]:
            q[groups["zh"]] = self.zh.positive_probability([texts[i] for i in groups["zh"]])
        if groups["en"]:
            q[groups["en"]] = self.en.positive_probability([texts[i] for i in groups["en"]])
        return q

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[Sentiment]:
        return [self._sentiment(float(q)) for q in self.positive_probabilities(texts, languages)]

    def _sentiment(self, q: float) -> Sentiment:
        positive, negative, neutral = self.neutral.three_way(q)
        scores = {"positive": positive, "negative": negative, "neutral": neutral}
        label = max(scores, key=scores.__getitem__)
        if not math.isfinite(scores[label]):  # pragma: no cover - guarded by the clip
            raise ValueError("non-finite sentiment score")
        return Sentiment(
            label=label,  # type: ignore[arg-type]
            score=scores[label],
            scores=SentimentScores(positive=positive, negative=negative, neutral=neutral),
        )
