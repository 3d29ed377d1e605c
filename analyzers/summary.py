"""Extractive summaries bounded in length.

The text is cut into units: sentences for English, clauses (sentence pieces between
，；：。！？) for Chinese, because Chinese headlines and titles are about 20 characters
and a whole sentence of a news post or an abstract is two or three times that. Each
unit scores by its centrality (how many of its character bigrams recur in the rest of
the text: the TextRank idea at a fraction of the cost) and by its position (leads
carry the news). The best units that fit the length budget are returned in text order.

The budget is ``target_chars``: a tenth of the text, at least ``min_target_chars``
(tuned on headline/title data, where ~30 characters scores best) and at most
``max_chars``. A unit is never cut unless the best one alone is longer than
``max_chars``; then it is cut at a clause or word boundary. A text no longer than the
budget is its own summary.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Iterator, Sequence

from analyzers.segmentation import segment_with_offsets
from analyzers.sentences import sentence_spans

VERSION = "extractive-1"

_ZH_CLAUSE = re.compile(r"[^，,。；;！？!?：:\n]+[，,。；;！？!?：:\n”’」』）)】》\"]*")
_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = "，,；;：: \n"
_CUT_AT = "，,；;：:、 "
_HEAD = 1.0  # weight of the position prior
_CENTRALITY = 1.0
_MAX_UNITS = 3
# Long texts: only the leading units compete (the position prior makes later ones lose
# anyway) and centrality counts over the leading characters; this bounds the cost.
_SCORED_UNITS = 40
_CENTRALITY_CHARS = 3000


def _bigrams(text: str) -> Iterator[str]:
    # map(add, s, s[1:]) runs in C: ~10x faster than slicing in a comprehension.
    return map(operator.add, text, text[1:])


def _units(text: str, language: str) -> list[str]:
    if language == "en":
        return [text[s:e] for s, e in sentence_spans(text)]
    return [m.group() for m in _ZH_CLAUSE.finditer(text) if m.group().strip()]


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


class Summarizer:
    name = "summary"
    version = VERSION

    def __init__(self, max_chars: int = 120, *, min_target_chars: int = 30) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.max_chars = max_chars
        self.min_target_chars = min(min_target_chars, max_chars)

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
        scores = self._scores(text, units)
        order = sorted(range(len(units)), key=lambda i: scores[i], reverse=True)
        chosen: list[int] = []
        used = 0
        for i in order[:_MAX_UNITS]:
            size = len(units[i].strip())
            if not chosen or used + size <= target:
                chosen.append(i)
                used += size
        chosen.sort()
        pieces = [units[i].strip() for i in chosen]
        separator = " " if language == "en" else ""
        summary = separator.join(pieces).rstrip(_TRAILING_PUNCT)
        return _clean_cut(summary, self.max_chars, language)

    @staticmethod
    def _scores(text: str, units: Sequence[str]) -> list[float]:
        counts = Counter(_bigrams(_SPACE.sub("", text[:_CENTRALITY_CHARS])))
        lookup = counts.__getitem__
        scores = []
        for index, unit in enumerate(units):
            compact = _SPACE.sub("", unit)
            n_grams = len(compact) - 1
            # Bigrams repeated elsewhere in the text: the unit talks about the main topic.
            recurring = (
                (sum(map(lookup, _bigrams(compact))) - n_grams) / (n_grams + 1)
                if n_grams > 0
                else 0.0
            )
            scores.append(_CENTRALITY * math.log1p(recurring) + _HEAD / (1 + index))
        return scores

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return [self.summarize(t, lang) for t, lang in zip(texts, languages, strict=True)]
