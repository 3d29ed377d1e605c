"""Extractive summaries bounded in length.

The text is cut into units: sentences for English, clauses (sentence pieces between
，；：。！？, and a "." before Chinese text, as abstracts often write it) for Chinese,
because Chinese headlines and titles are about 20 characters and a whole sentence of a
news post or an abstract is two or three times that.

Chinese (and any non-English) clauses are scored by a small learned linear ranker
(``models/summary/clause_ranker.json``, trained by ``scripts/train_summary_ranker.py``
on headline/title data; see the model card there) over twelve features
(:data:`FEATURES`): position, length, centrality relative to the most central clause (how
many of its character bigrams recur in the rest of the text: the TextRank idea at a
fraction of the cost), the share of digits, first/last clause, sentence end, a purpose
or method cue at its start, overlap with the first clause and topic words. English
sentences keep the extractive-1 score: centrality plus a position prior (leads carry the
news). The best ``max_units`` units that fit the length budget are returned in text order.

Each chosen clause is then trimmed to its core (:class:`ClauseTrim`,
``models/summary/clause_trim.json``): leading jieba words that a title or headline
leaves out (本文, 为了, 研究, 提出了一种 ...) and trailing particles (之, 了, 等) are
dropped one at a time while the next word is in the learned set, keeping at least a few
characters and never leaving a clause that opens or ends on a word it cannot (an adverb,
a particle ...). CSL titles are noun phrases inside the abstract's purpose sentence
("为了研究X问题" -> "X研究"), so this lifts ROUGE-L there by 0.015-0.025.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from analyzers.segmentation import segment_with_offsets, tag
from analyzers.sentences import sentence_spans

MODEL_FILE = Path(__file__).resolve().parent / "models" / "summary" / "clause_ranker.json"
TRIM_FILE = MODEL_FILE.parent / "clause_trim.json"

# A half-width full stop ends a clause when a Chinese character, a space or the end comes
# next (abstracts often end sentences with "."), not inside numbers or after a capital (1.13, U.S.).
_ZH_CLAUSE = re.compile(
    r"(?:[^，,。；;！？!?：:\n.]|(?<=[A-Z])\.|\.(?![\u4e00-\u9fff\s]|$))+[，,。；;！？!?：:\n.”’」』）)】》\"]*"
)
_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = "，,；;：: \n"
_UNIT_END = "，,。；;：: \n."
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
_REPORTING_FRAME = re.compile(
    r".{0,8}(?:指出|表示|说|说道|认为|称|强调|透露|介绍|宣布|坦言|写道|获悉|了解到|据悉|据了解)[，,：:]"
)
# Punctuation that cannot open a trimmed clause (separators and closing brackets).
_NO_OPEN = "、，,。.；;：:！!？?）)】》」』]"


def _bigrams(text: str) -> Iterator[str]:
    # map(add, s, s[1:]) runs in C: ~10x faster than slicing in a comprehension.
    return map(operator.add, text, text[1:])


def _units(text: str, language: str) -> list[str]:
    if language == "en":
        return [text[s:e] for s, e in sentence_spans(text)]
    units = [m.group() for m in _ZH_CLAUSE.finditer(text) if m.group().strip()]
    # A clause that only says who is speaking ("报告指出，", "他说：") is one unit with what
    # follows: alone it was chosen as the whole summary of a news text ("报告指出").
    merged: list[str] = []
    for unit in units:
        if merged and _REPORTING_FRAME.fullmatch(merged[-1].strip()):
            merged[-1] += unit
        else:
            merged.append(unit)
    return merged


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


@dataclass(frozen=True)
class ClauseTrim:
    """Drops leading words in ``lead`` and trailing words in ``tail`` from a clause.

    At most ``max_lead`` / ``max_tail`` words, one at a time from the outside in, and
    never below ``min_chars`` characters: the greedy walk the word sets were learned
    for (``scripts/train_summary_ranker.py``: a word is in a set when, at that place, the
    best trim of a training clause against its title dropped it often enough). The leading
    walk steps back while the first word kept is tagged (jieba's dictionary tag, first
    letter) as one a clause cannot start with: an adverb, conjunction, particle, idiom or
    number ("设计无处不在" keeps 设计, "第二届" keeps 第; "提出了一种X" loses 提出, 了
    and 一种), and the trailing walk steps forward while the last word kept is an adverb,
    conjunction, preposition, pronoun or particle (no clause ends at 较 or 的)."""

    lead: frozenset[str]
    tail: frozenset[str]
    max_lead: int = 4
    max_tail: int = 3
    min_chars: int = 4
    no_start: frozenset[str] = frozenset("cdilmu")
    no_end: frozenset[str] = frozenset("cdpru")

    @classmethod
    def from_rates(
        cls,
        lead_rates: Mapping[str, float],
        tail_rates: Mapping[str, float],
        lead_threshold: float,
        tail_threshold: float,
        *,
        max_lead: int,
        max_tail: int,
        min_chars: int,
    ) -> ClauseTrim:
        """The words whose drop rate is above the threshold."""
        return cls(
            frozenset(w for w, rate in lead_rates.items() if rate > lead_threshold),
            frozenset(w for w, rate in tail_rates.items() if rate > tail_threshold),
            max_lead=max_lead,
            max_tail=max_tail,
            min_chars=min_chars,
        )

    def span(self, words: Sequence[str], tags: Sequence[str]) -> tuple[int, int]:
        """``(start, end)``: the words kept are ``words[start:end]`` (``tags``: theirs)."""
        start, end = 0, len(words)
        lead, tail = self.lead, self.tail
        size = sum(map(len, words))
        while start < self.max_lead and end - start > 1 and words[start] in lead:
            if size - len(words[start]) < self.min_chars:
                break
            size -= len(words[start])
            start += 1
        while start and tags[start][:1] in self.no_start:
            start -= 1  # back to a word a clause can start with
            size += len(words[start])
        stop = max(end - self.max_tail, start + 1)
        while end > stop and words[end - 1] in tail:
            if size - len(words[end - 1]) < self.min_chars:
                break
            if words[end - 1] == "了" and "太" in words[start : end - 1]:
                break  # 太…了 is one frame: "太震撼" is clipped
            size -= len(words[end - 1])
            end -= 1
        while end < len(words) and tags[end - 1][:1] in self.no_end:
            end += 1  # forward to a word a clause can end with
        return start, end

    @cached_property
    def _lead_firsts(self) -> frozenset[str]:
        return frozenset(word[0] for word in self.lead if word)

    @cached_property
    def _tail_lasts(self) -> frozenset[str]:
        return frozenset(word[-1] for word in self.tail if word)

    def apply(self, clause: str) -> str:
        """The clause without its droppable leading and trailing words."""
        if not clause or (
            clause[0] not in self._lead_firsts and clause[-1] not in self._tail_lasts
        ):
            return clause  # most clauses: no word of either set can be at an end; no tagging
        tagged = tag(clause)
        if not tagged or (tagged[0][0] not in self.lead and tagged[-1][0] not in self.tail):
            return clause
        return self.kept([word for word, _ in tagged], [t for _, t in tagged])

    def kept(self, words: Sequence[str], tags: Sequence[str]) -> str:
        """The text of the words :meth:`span` keeps; when leading words went, without
        the punctuation they left at the front ("1、陌陌..." -> "陌陌...", not "、陌陌...")."""
        start, end = self.span(words, tags)
        text = "".join(words[start:end]).strip()
        return text.lstrip(_NO_OPEN).lstrip() if start else text


@lru_cache(maxsize=1)
def load_trim(path: Path = TRIM_FILE) -> dict[str, Any]:
    """The shipped clause trim (word sets and limits); ``{}`` if absent."""
    if not path.is_file():
        return {}
    data = path.read_bytes()
    model: dict[str, Any] = json.loads(data)
    model["sha"] = hashlib.sha256(data).hexdigest()[:12]
    return model


def shipped_trim() -> ClauseTrim | None:
    model = load_trim()
    if not model:
        return None
    return ClauseTrim(
        frozenset(model["lead"]),
        frozenset(model["tail"]),
        max_lead=int(model["max_lead"]),
        max_tail=int(model["max_tail"]),
        min_chars=int(model["min_chars"]),
        no_start=frozenset(model["no_start"]),
        no_end=frozenset(model["no_end"]),
    )


# The heuristic of extractive-1 (extractive-2: with a leading bullet or unclosed quote
# trimmed; extractive-6-heuristic: Chinese clauses also end at a "." before Chinese text).
HEURISTIC_VERSION = "extractive-6-heuristic"
# Part of extractive-6's version with the model files' hashes: raise it whenever the
# trim's code changes what it returns (2: no punctuation left at a trimmed clause's front;
# 3: 太…了 keeps its 了).
_TRIM_RULES = 3


def _version(trimmed: bool = True) -> str:
    sha = load_ranker().get("sha")
    if not sha:
        return HEURISTIC_VERSION
    trim_sha = load_trim().get("sha") if trimmed else None
    if trim_sha:
        # extractive-6: extractive-5's clauses trimmed to their core by the word sets.
        both = hashlib.sha256(f"{sha}{trim_sha}{_TRIM_RULES}".encode()).hexdigest()[:12]
        return f"extractive-6-{both}"
    # extractive-5: the 12-feature ranker (the sha tells the clause rules apart too).
    return f"extractive-5-{sha}"


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
    per :data:`FEATURES`) replace the shipped ones (for training and tests). ``trim``:
    the shipped :class:`ClauseTrim` (``True``; only with the shipped weights), none
    (``False``) or the one given; it applies where the ranker does (non-English text)."""

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
        trim: bool | ClauseTrim = True,
    ) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        model = load_ranker() if ranker else {}
        shipped = weights is None
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
        if trim is True:
            # The shipped trim was learned on the shipped ranker's choices.
            self._trim = shipped_trim() if shipped and self._weights is not None else None
        else:
            self._trim = trim or None
        self.version = (
            _version(trimmed=self._trim is not None)
            if self._weights is not None
            else HEURISTIC_VERSION
        )

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
        if self._trim is not None and language != "en" and self._weights is not None:
            pieces = [self._trimmed(piece, self._trim) for piece in pieces]
        separator = " " if language == "en" else ""
        summary = separator.join(pieces).rstrip(_TRAILING_PUNCT)
        summary = _trim_lead(summary) or summary
        return _clean_cut(summary, self.max_chars, language)

    @staticmethod
    def _trimmed(piece: str, trim: ClauseTrim) -> str:
        core = piece.rstrip(_UNIT_END)
        return (trim.apply(core) or core) + piece[len(core) :]

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
