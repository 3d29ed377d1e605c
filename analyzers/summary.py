"""Extractive summaries bounded in length.

The text is cut into units: sentences for English, clauses (sentence pieces between
，；：。！？) for Chinese, because Chinese headlines and titles are about 20 characters
and a whole sentence of a news post or an abstract is two or three times that.

Chinese (and any non-English) clauses are scored by a small learned linear ranker
(``models/summary/clause_ranker.json``, trained by ``scripts/train_summary_ranker.py``
on headline/title data; see the model card there) over twelve features
(:data:`FEATURES`): position, length, centrality relative to the most central clause (how
many of its character bigrams recur in the rest of the text: the TextRank idea at a
fraction of the cost), the share of digits, first/last clause, sentence end, a purpose
or method cue at its start, overlap with the first clause and topic words. English
sentences keep the extractive-1 score: centrality plus a position prior (leads carry the
news). The best ``max_units`` units that fit the length budget are returned in text order.

The budget is ``target_chars``: a tenth of the text, at least ``min_target_chars``
(30; on headline/title data floors of 18-30 characters score within noise) and at most
``max_chars``. A unit is never cut unless the best one alone is longer than
``max_chars``; then it is cut at a clause or word boundary. A text no longer than the
budget is its own summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from analyzers.segmentation import segment_with_offsets
from analyzers.sentences import sentence_spans

MODEL_FILE = Path(__file__).resolve().parent / "models" / "summary" / "clause_ranker.json"

_ZH_CLAUSE = re.compile(r"[^，,。；;！？!?：:\n]+[，,。；;！？!?：:\n”’」』）)】》\"]*")
_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = "，,；;：: \n"
_UNIT_END = "，,。；;：: \n"
_CUT_AT = "，,；;：:、 "
# List bullets, and quote marks whose partner is not in the summary, are left over from
# the clause the summary starts with, not part of what it says.
_LEADING_BULLETS = "•·●○■□◆◇▪►▶★☆※ \u3000\t"
_QUOTE_PAIRS = {'"': '"', "“": "”", "'": "'", "‘": "’", "「": "」", "『": "』"}
_HEAD = 1.0  # weight of the position prior
_CENTRALITY = 1.0
_MAX_UNITS = 3
# Long texts: only the leading units compete (the position prior makes later ones lose
# anyway) and centrality counts over the leading characters; this bounds the cost.
_SCORED_UNITS = 40
_CENTRALITY_CHARS = 3000
_DIGITS = frozenset("0123456789０１２３４５６７８９")
_DIGIT = re.compile("[0-9０-９]")
# Features of a Chinese clause for the learned ranker, in the order of the weights. The
# first five are extractive-3's (a backward ablation of 22 features kept them on the dev
# files alone); the others earn their place with csl_title_train's 10,918 abstracts, on
# whose validation part they lift ROUGE-L 0.35 -> 0.40: first / last clause, relative
# position, ends a sentence, opens with a purpose or method cue (本文, 针对, 基于 ...),
# bigram overlap with the first clause and a research-topic word. (A quote-mark feature
# got weight 0.002 and was dropped.)
FEATURES = (
    "head", "chars", "off_18_chars", "centrality_vs_best", "digit_share",
    "is_first", "is_last", "relative_position", "sentence_end", "cue_start",
    "first_overlap", "topic_word",
)  # fmt: skip
_CUE_START = re.compile(r"(?:本文|针对|为了|为|通过|采用|基于|提出|研究|探讨|分析|以)")
_TOPIC_WORD = re.compile(r"研究|方法|分析|模型|系统|设计")
_SENTENCE_END = ("。", "！", "？", ".", "!", "?")


def _bigrams(text: str) -> Iterator[str]:
    # map(add, s, s[1:]) runs in C: ~10x faster than slicing in a comprehension.
    return map(operator.add, text, text[1:])


def _units(text: str, language: str) -> list[str]:
    if language == "en":
        return [text[s:e] for s, e in sentence_spans(text)]
    return [m.group() for m in _ZH_CLAUSE.finditer(text) if m.group().strip()]


def _centralities(text: str, units: Sequence[str]) -> list[float]:
    """log(1 + mean count elsewhere in the text of each unit's character bigrams)."""
    counts = Counter(_bigrams(_SPACE.sub("", text[:_CENTRALITY_CHARS])))
    lookup = counts.__getitem__
    out = []
    for unit in units:
        compact = _SPACE.sub("", unit)
        n_grams = len(compact) - 1
        # Bigrams repeated elsewhere in the text: the unit talks about the main topic.
        recurring = (
            (sum(map(lookup, _bigrams(compact))) - n_grams) / (n_grams + 1) if n_grams > 0 else 0.0
        )
        out.append(math.log1p(recurring))
    return out


def unit_features(text: str, units: Sequence[str]) -> list[list[float]]:
    """One row of :data:`FEATURES` per unit (clauses of ``text``, in text order)."""
    centrality = _centralities(text, units)
    best = max(centrality, default=0.0) or 1.0
    last = len(units) - 1
    first_bigrams = set(_bigrams(clause_target(units[0]))) if units else set()
    rows = []
    for index, unit in enumerate(units):
        clause = clause_target(unit)
        size = len(clause)
        rows.append(
            [
                1.0 / (1 + index),
                size / 20,
                abs(size - 18) / 20,
                centrality[index] / best,
                sum(map(_DIGITS.__contains__, clause)) / max(size, 1),
                1.0 if index == 0 else 0.0,
                1.0 if index == last else 0.0,
                index / max(last, 1),
                1.0 if unit.rstrip().endswith(_SENTENCE_END) else 0.0,
                1.0 if _CUE_START.match(clause) else 0.0,
                # share of its bigrams (with repeats) that occur in the first clause
                sum(map(first_bigrams.__contains__, _bigrams(clause))) / max(size - 1, 1)
                if index
                else 1.0,
                1.0 if _TOPIC_WORD.search(clause) else 0.0,
            ]
        )
    return rows


def clause_target(unit: str) -> str:
    """The text of a unit a ranker is trained to score: without its end punctuation."""
    return unit.strip().rstrip(_UNIT_END)


@lru_cache(maxsize=1)
def load_ranker(path: Path = MODEL_FILE) -> dict[str, Any]:
    """The shipped clause ranker (``scripts/train_summary_ranker.py``); ``{}`` if absent."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    model: dict[str, Any] = json.loads(data)
    if model.get("features") != list(FEATURES):
        return {}  # weights for another feature set: fall back to the heuristic
    model["sha"] = hashlib.sha256(data).hexdigest()[:12]
    return model


HEURISTIC_VERSION = "extractive-2"


def _version() -> str:
    sha = load_ranker().get("sha")
    # extractive-5: the 12-feature ranker; extractive-2: the heuristic of extractive-1;
    # both with a leading bullet or unclosed quote trimmed from the summary.
    return f"extractive-5-{sha}" if sha else HEURISTIC_VERSION


VERSION = _version()


def _clean_cut(text: str, limit: int, language: str) -> str:
    """The longest prefix of ``text`` up to ``limit`` chars ending at a clause or word."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(ch) for ch in _CUT_AT)
    if cut >= limit // 2:
        return head[:cut].rstrip(_TRAILING_PUNCT)
    if language == "en":
        space = head.rfind(" ")
        return head[:space] if space > 0 else head
    end = 0
    for _, _, token_end in segment_with_offsets(text[: limit + 8]):
        if token_end > limit:
            break
        end = token_end
    return head[:end] if end > 0 else head


def _trim_lead(summary: str) -> str:
    """Without leading bullets and a leading quote mark that the summary never closes.

    One pass with precomputed closer positions and counts: stripping one quote at a
    time and searching the rest for its partner was quadratic on a run of quotes."""
    size = len(summary)
    last = {closing: summary.rfind(closing) for closing in set(_QUOTE_PAIRS.values())}
    # Same-character quotes (" '): how many remain from position ``i`` on.
    remaining = {
        quote: summary.count(quote) for quote, closing in _QUOTE_PAIRS.items() if quote == closing
    }
    i = 0
    while i < size:
        ch = summary[i]
        if ch not in _LEADING_BULLETS:
            closing = _QUOTE_PAIRS.get(ch)
            if closing is None:
                break
            if closing == ch:
                remaining[ch] -= 1
                # An even number of the same quote after it: none of them closes it.
                if remaining[ch] % 2:
                    break
            elif last[closing] > i:
                break
        i += 1
    return summary[i:]


class Summarizer:
    """``max_units`` defaults to the value the shipped ranker was tuned with (see its
    model card), else to 3; ``ranker=False`` forces the
    extractive-1 heuristic (centrality + position) for every language; ``weights`` (one
    per :data:`FEATURES`) replace the shipped ones (for training and tests)."""

    name = "summary"
    version = VERSION

    def __init__(
        self,
        max_chars: int = 120,
        *,
        min_target_chars: int = 30,
        max_units: int | None = None,
        ranker: bool = True,
        weights: Sequence[float] | None = None,
    ) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        model = load_ranker() if ranker else {}
        if weights is None:
            weights = model.get("weights")
        if weights is not None and len(weights) != len(FEATURES):
            raise ValueError(f"expected {len(FEATURES)} weights, got {len(weights)}")
        self._weights = [float(w) for w in weights] if weights is not None else None
        if max_units is None:
            max_units = int(model.get("max_units", _MAX_UNITS))
        self.max_chars = max_chars
        self.min_target_chars = min(min_target_chars, max_chars)
        self.max_units = max(1, max_units)
        self.version = _version() if self._weights is not None else HEURISTIC_VERSION

    def target_chars(self, text: str) -> int:
        return max(self.min_target_chars, min(self.max_chars, len(text) // 10))

    def summarize(self, text: str, language: str = "zh") -> str:
        text = text.strip()
        target = self.target_chars(text)
        if len(text) <= target:
            return text
        units = _units(text, language)[:_SCORED_UNITS]
        if not units:
            return _clean_cut(text, self.max_chars, language)
        if self._weights is not None and language != "en":
            scores = self._ranked(text, units, self._weights)
        else:
            scores = self._scores(text, units)
        order = sorted(range(len(units)), key=lambda i: scores[i], reverse=True)
        chosen: list[int] = []
        used = 0
        for i in order[: self.max_units]:
            size = len(units[i].strip())
            if not chosen or used + size <= target:
                chosen.append(i)
                used += size
        chosen.sort()
        pieces = [units[i].strip() for i in chosen]
        separator = " " if language == "en" else ""
        summary = separator.join(pieces).rstrip(_TRAILING_PUNCT)
        summary = _trim_lead(summary) or summary
        return _clean_cut(summary, self.max_chars, language)

    @staticmethod
    def _ranked(text: str, units: Sequence[str], weights: Sequence[float]) -> list[float]:
        # unit_features(text, units) @ weights, inlined: this runs for every text.
        (
            w_head, w_chars, w_off, w_central, w_digits, w_first, w_last, w_position,
            w_end, w_cue, w_overlap, w_topic,
        ) = weights  # fmt: skip
        centrality = _centralities(text, units)
        w_central /= max(centrality, default=0.0) or 1.0
        is_digit = _DIGITS.__contains__
        digits = w_digits if _DIGIT.search(text) else 0.0  # most texts have none
        last = len(units) - 1
        w_position /= max(last, 1)
        in_first = set(_bigrams(units[0].strip().rstrip(_UNIT_END))).__contains__
        cue, topic = _CUE_START.match, _TOPIC_WORD.search
        scores = []
        for index, unit in enumerate(units):
            clause = unit.strip().rstrip(_UNIT_END)
            size = len(clause)
            score = w_head / (1 + index) + w_central * centrality[index] + w_position * index
            score += (w_chars * size + w_off * abs(size - 18)) / 20
            if digits and size:
                score += digits * sum(map(is_digit, clause)) / size
            if index == 0:
                score += w_first + w_overlap
            elif size > 1:
                score += w_overlap * sum(map(in_first, _bigrams(clause))) / (size - 1)
            if index == last:
                score += w_last
            if unit.rstrip().endswith(_SENTENCE_END):
                score += w_end
            if cue(clause):
                score += w_cue
            if topic(clause):
                score += w_topic
            scores.append(score)
        return scores

    @staticmethod
    def _scores(text: str, units: Sequence[str]) -> list[float]:
        return [
            _CENTRALITY * centrality + _HEAD / (1 + index)
            for index, centrality in enumerate(_centralities(text, units))
        ]

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return [self.summarize(t, lang) for t, lang in zip(texts, languages, strict=True)]
