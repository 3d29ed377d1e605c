"""Keyword extraction for Chinese and English text.

Chinese (and mixed) text is segmented and tagged with rjieba (dictionary tags, no HMM
tagger: ~3.5M chars/s against ~30k for ``jieba.posseg``). Candidates are runs of one to
three adjacent words inside "chunks" (stretches between punctuation, function words,
boundary words and everyday predicate words such as 发布, 签署, 强烈推荐), which merges
terms that the segmenter splits (卷积+神经网络, 平方和+优化). A run is a candidate only
where its context lets it be a term, not a piece of a clause: no aspect particle after it
(发布了), no number inside it or after its verb, no name followed by a verb (杭州发布,
西湖步行十分钟); see ``zh_candidates``. Three rankers share these candidates:

- ``ranker`` (default): a linear model over TF-IDF style features (frequency, jieba IDF
  of the parts, position, title/first-sentence membership, length, part-of-speech of the
  first and last word, how often a clean boundary (punctuation, 的, 和) sits on either
  side of it), trained by ``scripts/build_keyword_resources.py`` on the CSL
  scientific-keyword data; its weights are ``resources/keyword_ranker.json``.
- ``tfidf``: frequency times mean IDF of the parts, with a small bonus for longer terms.
- ``textrank``: PageRank over the co-occurrence graph of the chunk words; a phrase
  scores the mean of its words.

English keyphrases are noun-phrase chunks (``en_noun_phrases``: adjectives and nouns
ending in a noun, from a small word-class lexicon plus suffix and context rules, never a
verb, number or time word), ranked RAKE-style with plural folding as the lemmatiser.

Speed (one core, ~70-char texts: ~20 candidates each): what the candidate loop needs of a
word is looked up once per distinct (word, tag) pair; the n-gram loop is unrolled; the
ranker is inlined with its one-hot features folded into tables; keywords are validated
in one pydantic-core call per batch. Long texts are tagged through
``segmentation.tag_head``, whose cached pieces the entity tagger reuses.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import orjson
from pydantic import TypeAdapter

from analyzers.segmentation import tag_head
from analyzers.sentences import sentence_spans
from schemas.results import Keyword

Method = Literal["ranker", "tfidf", "textrank"]
METHODS: tuple[Method, ...] = ("ranker", "tfidf", "textrank")
VERSION = "kw-4"

# Tags that always end a chunk: punctuation/space (x), particles (u*), prepositions (p),
# conjunctions (c), pronouns (r), modal/interjections (y e o) and bound morphemes (zg).
BREAK_TAGS = frozenset(
    {"x", "uj", "ul", "uz", "ug", "uv", "ud", "u", "p", "c", "r", "y", "e", "o", "zg"}
)
# A keyword does not start with a direction word, measure word, adverb or number ...
BAD_FIRST_TAGS = frozenset({"f", "q", "d", "ad", "m", "k", "ud", "vd", "t"})
# ... nor end with an adverb, preposition, adjective, number or time word.
BAD_LAST_TAGS = frozenset({"d", "ad", "p", "a", "h", "vd", "m", "t"})
MAX_NGRAM = 3
# Candidates are taken from this many leading characters (CSL abstracts are ~230).
CANDIDATE_WINDOW_CHARS = 800
_END_CHARS = 400
# Long texts: only this many candidates (best by tf x idf) get the full feature set.
MAX_SCORED_CANDIDATES = 100
# Longer candidates are no keywords (a 100k-character "word" of hostile text was one);
# CONTENTSTREAM_KEYWORDS_MAX_CHARS sets it for the worker.
DEFAULT_MAX_CHARS = 64

# Part-of-speech groups of a candidate's first and last word (one-hot features).
TAG_GROUPS: dict[str, int] = {
    "n": 0, "nr": 1, "ns": 1, "nt": 1, "nz": 1, "nrt": 1, "nrfg": 1,
    "vn": 2, "v": 3, "a": 4, "an": 4, "eng": 5, "l": 6, "j": 6, "i": 6, "b": 7, "m": 8,
}  # fmt: skip
OTHER_TAG_GROUP = 9
N_TAG_GROUPS = 10

NUMERIC_FEATURES: tuple[str, ...] = (
    "log_tf", "repeated", "first_position", "in_first_sentence", "in_last_sentence",
    "min_idf", "max_idf", "mean_idf", "dictionary_word", "chars", "chars_2", "chars_3",
    "chars_4", "chars_5_6", "chars_7_plus", "words_1", "words_2", "words_3", "words_4",
    "has_digit", "ascii_only", "log_substring_count", "clean_left", "clean_right",
)  # fmt: skip
# Counts and length also get a piecewise-constant correction: one of N_BINS bins between
# quantile edges fixed at training time (a GAM-style shape the linear weight misses),
# folded into the lookup tables, so free at run time. CSL 5-fold CV F1@5 0.2647 -> 0.2681;
# binning position, IDF and boundary shares as well reached 0.2698 (noise) for six
# bisections per candidate.
BINNED_FEATURES: tuple[str, ...] = ("log_tf", "chars", "log_substring_count")
N_BINS = 8
BASE_FEATURES: tuple[str, ...] = (
    NUMERIC_FEATURES
    + tuple(f"first_tag_{i}" for i in range(N_TAG_GROUPS))
    + tuple(f"last_tag_{i}" for i in range(N_TAG_GROUPS))
)
FEATURE_NAMES: tuple[str, ...] = BASE_FEATURES + tuple(
    f"{name}_bin_{k}" for name in BINNED_FEATURES for k in range(N_BINS)
)
_BINNED_INDEX = tuple(NUMERIC_FEATURES.index(name) for name in BINNED_FEATURES)
# The ranker also weighs products of pairs of NUMERIC_FEATURES, named "a*b" after
# FEATURE_NAMES in its weights file; the build script picks the pairs (by weight in a
# model over all pairs) and their number. The additive model misses how the features
# combine (a clean right boundary counts for more on a rare word, a late first
# occurrence matters less for a repeated one): depth-2 boosted trees over the same
# features scored CSL 5-fold CV F1@5 0.279 against 0.268, and 24 products 0.282.
INTERACTION_SEPARATOR = "*"

_IDF_SCALE = 10.0
_ENG_IDF = 11.0
_EN_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9'+\-]*|\d+(?:\.\d+)?|[^\sA-Za-z0-9]")
_RESOURCES = "analyzers.resources"
# Texts without any of these are one sentence: no need to split them.
_ANY_TERMINATOR = re.compile(r"[。！？!?；.…\n]")


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True, slots=True)
class RankerWeights:
    weights: tuple[float, ...]
    bias: float
    # Per BINNED_FEATURES entry, N_BINS - 1 ascending edges: bin = bisect_right(edges, x).
    edges: tuple[tuple[float, ...], ...] = ()
    # Pairs of NUMERIC_FEATURES indices whose products follow FEATURE_NAMES in ``weights``.
    interactions: tuple[tuple[int, int], ...] = ()

    def score(self, features: Sequence[float]) -> float:
        return self.bias + math.fsum(w * f for w, f in zip(self.weights, features, strict=True))


@dataclass(frozen=True, slots=True)
class KeywordResources:
    idf: dict[str, float]
    unknown_idf: float
    stop_words: frozenset[str]
    en_stop_words: frozenset[str]
    ranker: RankerWeights | None = None
    # (word, tag) -> TokenInfo, filled as texts are seen (see ``_token_infos``).
    token_info: dict[tuple[str, str], TokenInfo] = field(
        default_factory=dict, compare=False, repr=False
    )


def _read_words(name: str) -> frozenset[str]:
    text = resources.files(_RESOURCES).joinpath(name).read_text(encoding="utf-8")
    return frozenset(
        word
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
        for word in line.split()
    )


def jieba_idf_path() -> Path:
    """jieba's IDF table (MIT licence), shipped inside the jieba package."""
    import jieba.analyse

    return Path(jieba.analyse.__file__).with_name("idf.txt")


def load_idf(path: Path | None = None) -> tuple[dict[str, float], float]:
    idf: dict[str, float] = {}
    with (path or jieba_idf_path()).open(encoding="utf-8") as handle:
        for line in handle:
            word, _, value = line.rstrip("\n").partition(" ")
            if value:
                idf[word] = float(value)
    values = sorted(idf.values())
    median = values[len(values) // 2] if values else 10.0
    # Words jieba never saw are mostly domain terms: rarer than the median word.
    return idf, median * 1.3


def load_ranker() -> RankerWeights | None:
    path = resources.files(_RESOURCES).joinpath("keyword_ranker.json")
    if not path.is_file():
        return None
    return ranker_weights(orjson.loads(path.read_bytes()))


def ranker_weights(data: dict[str, Any]) -> RankerWeights | None:
    """The weights of a ``keyword_ranker.json`` payload; None when they belong to another
    feature set (a stale file)."""
    names = tuple(data["features"])
    if names[: len(FEATURE_NAMES)] != FEATURE_NAMES:
        return None  # stale weights for another feature set: fall back to tfidf
    pairs = [name.split(INTERACTION_SEPARATOR) for name in names[len(FEATURE_NAMES) :]]
    if len(data["weights"]) != len(names) or any(
        len(pair) != 2 or not set(pair) <= set(NUMERIC_FEATURES) for pair in pairs
    ):
        return None
    return RankerWeights(
        tuple(float(w) for w in data["weights"]),
        float(data["bias"]),
        tuple(tuple(float(e) for e in edges) for edges in data["edges"]),
        tuple((NUMERIC_FEATURES.index(a), NUMERIC_FEATURES.index(b)) for a, b in pairs),
    )


def interaction_features(
    base: Sequence[float], interactions: Sequence[tuple[int, int]]
) -> list[float]:
    """The products of the ``interactions`` pairs of a ``base_features`` vector."""
    return [base[i] * base[j] for i, j in interactions]


@cache
def load_resources() -> KeywordResources:
    """Loaded once per process (~0.3 s, ~30 MB for the IDF table)."""
    idf, unknown_idf = load_idf()
    boundary_file = resources.files(_RESOURCES).joinpath("zh_boundary_words.txt")
    boundary = _read_words("zh_boundary_words.txt") if boundary_file.is_file() else frozenset()
    return KeywordResources(
        idf=idf,
        unknown_idf=unknown_idf,
        stop_words=_read_words("zh_stopwords.txt")
        | _read_words("zh_predicate_words.txt")
        | boundary,
        en_stop_words=_read_words("en_stopwords.txt"),
        ranker=load_ranker(),
    )


# --------------------------------------------------------------------------- zh candidates


# A candidate is a plain list (cheaper than an object in this hot loop): the ints count,
# first token, words, first and last tag group, then the floats min, max and sum of IDF,
# then how many occurrences have a clean boundary on the left and on the right.
COUNT, FIRST_TOKEN, WORDS, FIRST_TAG, LAST_TAG, MIN_IDF, MAX_IDF, SUM_IDF = range(8)
CLEAN_LEFT, CLEAN_RIGHT = 8, 9
Candidate = list[Any]

# What the candidate loop needs of one tagged word, looked up once per distinct
# (word, tag) instead of re-derived per occurrence: the word, its IDF, its tag group as a
# first word (None: may not start a keyword) and as a last word (None: may not end one),
# whether it is a keyword on its own (two or more characters, not all digits), whether
# it is all digits, and its role for the context rules (``ROLE_*``).
TokenInfo = tuple[str, float, int | None, int | None, bool, bool, int]
INFO_WORD: Final = 0
INFO_IDF: Final = 1
INFO_FIRST: Final = 2
INFO_LAST: Final = 3
INFO_ALONE: Final = 4
INFO_DIGITS: Final = 5
INFO_ROLE: Final = 6
# Roles. A phrase is a term only in a context that lets it be one: what follows its
# last word and what its first word is decide "杭州发布了" or "西湖步行十分钟" are
# predicates (place + verb), not terms.
ROLE_WORD: Final = 0  # any other word
ROLE_NAME: Final = 1  # person, place, organisation name (nr ns nt nrt nrfg)
ROLE_VERB: Final = 2  # one-character verb (开 跑 去): "name + verb" is a predicate
ROLE_LONG_VERB: Final = 3  # other verbs: "verb + number" is a predicate (增长5%)
ROLE_NUMBER: Final = 4  # number, measure, time word: never inside a phrase
# Roles from here on are breaks: no phrase crosses them.
ROLE_CLEAN: Final = 5  # break that bounds a term cleanly: punctuation, 的, 和/与/及
ROLE_ASPECT: Final = 6  # 了 着 过 得: the word before them is a verb or adjective
ROLE_BREAK: Final = 7  # any other break (preposition, pronoun, adverb list, stop word)
# The info of a word that ends a chunk (punctuation, function word, boundary word).
BREAK: TokenInfo = ("", 0.0, None, None, False, False, ROLE_BREAK)
CLEAN_BREAK: TokenInfo = ("", 0.0, None, None, False, False, ROLE_CLEAN)
ASPECT_BREAK: TokenInfo = ("", 0.0, None, None, False, False, ROLE_ASPECT)
_NAME_TAGS = frozenset({"nr", "ns", "nt", "nrfg"})
_VERB_TAGS = frozenset({"v", "vd", "vi", "vq"})
_NUMBER_TAGS = frozenset({"m", "mq", "q", "t", "tg"})
_ASPECT_TAGS = frozenset({"ul", "uz", "ug", "ud", "uv"})
_CLEAN_TAGS = frozenset({"x", "uj", "c"})
_CLEAN_WORDS = frozenset({"的", "和", "与", "及", "以及", "或", "、"})
_PREDICATE_TAGS = frozenset({"v", "vd", "vi", "a", "ad", "d"})
_NUMBER_OR_NEGATION = frozenset("一两几不没别")
# Distinct (word, tag) pairs remembered; the table is emptied when it grows past this.
_TOKEN_INFO_LIMIT = 200_000


def token_info(word: str, pos: str, res: KeywordResources) -> TokenInfo:
    if (
        pos in BREAK_TAGS
        or pos in _ASPECT_TAGS
        or word in res.stop_words
        # 一去, 不理, 没想到: a verb or an adjective led by a number or a negation;
        # 睡不着, 受不了, 看得懂: a verb with a potential complement; 看着, 吃过: with an aspect
        or (
            pos in _PREDICATE_TAGS
            and (
                word[0] in _NUMBER_OR_NEGATION
                or "不" in word[1:-1]
                or "得" in word[1:-1]
                or (len(word) > 1 and word[-1] in "着过了")
            )
        )
    ):
        if pos in _ASPECT_TAGS:
            return ASPECT_BREAK
        if pos in _CLEAN_TAGS or word in _CLEAN_WORDS:
            return CLEAN_BREAK
        return BREAK
    group = TAG_GROUPS.get(pos, OTHER_TAG_GROUP)
    last = None if pos in BAD_LAST_TAGS else group
    digits = word.isdigit()
    # Longer verbs are often nouns in a term (伦理追问, 湖泊演化: jieba tags many common
    # nouns as names); the everyday verbs of news are break words (zh_predicate_words.txt).
    role = (
        ROLE_NAME
        if pos in _NAME_TAGS
        else ROLE_VERB
        if pos in _VERB_TAGS and len(word) == 1
        else ROLE_LONG_VERB
        if pos in _VERB_TAGS
        else ROLE_NUMBER
        # 总 (b) ends no term; 新一任, 第一届 (b) count, like a number
        if pos in _NUMBER_TAGS or (pos == "b" and (len(word) == 1 or "一" in word))
        else ROLE_WORD
    )
    return (
        word,
        _ENG_IDF if pos == "eng" else res.idf.get(word, res.unknown_idf),
        None if pos in BAD_FIRST_TAGS else group,
        last,
        last is not None and len(word) >= 2 and not digits,
        digits,
        role,
    )


@dataclass(slots=True)
class ZhCandidates:
    text: str
    n_tokens: int
    candidates: dict[str, Candidate]
    infos: list[TokenInfo]

    def chunk_words(self) -> list[list[str]]:
        """The runs of words between chunk breaks, in order."""
        chunks: list[list[str]] = []
        chunk: list[str] = []
        for info in self.infos:
            if info[INFO_ROLE] >= ROLE_CLEAN:
                if chunk:
                    chunks.append(chunk)
                    chunk = []
            else:
                chunk.append(info[INFO_WORD])
        if chunk:
            chunks.append(chunk)
        return chunks


def _token_infos(tokens: Sequence[tuple[str, str]], res: KeywordResources) -> list[TokenInfo]:
    table = res.token_info
    infos = [table.get(token) for token in tokens]
    if None in infos:
        if len(table) > _TOKEN_INFO_LIMIT:
            table.clear()
        for i, info in enumerate(infos):
            if info is None:
                word, pos = tokens[i]
                infos[i] = table[tokens[i]] = token_info(word, pos, res)
    return infos  # type: ignore[return-value]  # every None was replaced


# Capitalised Latin words separated by one space inside Chinese text are one name
# ("Face ID", "MacBook Pro"), not two keywords.
_ENGLISH_RUN = re.compile(r"[A-Za-z0-9] [A-Z]")
_MAX_ENGLISH_WORDS = 4


def _join_english(tokens: Sequence[tuple[str, str]]) -> Sequence[tuple[str, str]]:
    """``tokens`` with each run of capitalised Latin words joined by single spaces made
    one eng word."""
    out: list[tuple[str, str]] = []
    i, size = 0, len(tokens)
    while i < size:
        word, pos = tokens[i]
        if pos == "eng" and word[0].isupper():
            words = [word]
            while (
                i + 2 < size
                and len(words) < _MAX_ENGLISH_WORDS
                and tokens[i + 1][0] == " "
                and tokens[i + 2][1] == "eng"
                and tokens[i + 2][0][0].isupper()
            ):
                words.append(tokens[i + 2][0])
                i += 2
            out.append((" ".join(words), "eng"))
        else:
            out.append((word, pos))
        i += 1
    return out


def zh_candidates(text: str, res: KeywordResources) -> ZhCandidates:
    """Every run of one to MAX_NGRAM adjacent words inside a chunk that may start and end
    a keyword in its context, with its count and the features of its first occurrence.

    A run is not a candidate where it reads as a predicate rather than a term: its last
    word is followed by an aspect particle or 得 (发布了, 开心得), a verb is followed by a
    number (达到1179万), a name is followed by a verb or by a word and a number (杭州发布,
    西湖步行十分钟), or a number, measure or time word sits inside it (广州多条地铁).

    Long texts: candidates come from the head (title, lead, first paragraphs: at most
    CANDIDATE_WINDOW_CHARS, cut at a clause end), which keeps the cost bounded; frequency
    features still count over the whole text. The head's tags are cached pieces of the
    tags of the whole text, which the entity tagger reuses."""
    tokens: Sequence[tuple[str, str]] = tag_head(text, CANDIDATE_WINDOW_CHARS)
    if _ENGLISH_RUN.search(text) is not None:
        tokens = _join_english(tokens)
    infos = _token_infos(tokens, res)
    found: dict[str, Candidate] = {}
    size = len(infos)
    roles = [info[INFO_ROLE] for info in infos]
    roles.append(ROLE_CLEAN)  # the end of the text bounds a term cleanly
    # May a phrase end at token j, given what follows it?
    end_ok = [
        info[INFO_LAST] is not None
        and roles[j] != ROLE_NUMBER
        and roles[j + 1] != ROLE_ASPECT
        and not (ROLE_VERB <= roles[j] <= ROLE_LONG_VERB and roles[j + 1] == ROLE_NUMBER)
        for j, info in enumerate(infos)
    ]
    # Unrolled for MAX_NGRAM == 3, in the order (start, length) that decides ties later.
    get = found.get
    clean = ROLE_CLEAN
    prev = clean
    for i, a in enumerate(infos):
        role_a = roles[i]
        left = prev == clean  # a clean boundary before this occurrence
        prev = role_a
        first = a[INFO_FIRST]
        if first is None:
            continue  # also every break
        word, low = a[INFO_WORD], a[INFO_IDF]
        after = roles[i + 1]
        if end_ok[i] and a[INFO_ALONE]:
            cand = get(word)
            if cand is None:
                found[word] = [1, i, 1, first, a[INFO_LAST], low, low, low, left, after == clean]
            else:
                cand[COUNT] += 1
                cand[CLEAN_LEFT] += left
                cand[CLEAN_RIGHT] += after == clean
        if after >= clean:
            continue  # also the end of the text
        b = infos[i + 1]
        name = role_a == ROLE_NAME
        high = total = low
        phrase = word + b[INFO_WORD]
        idf = b[INFO_IDF]
        total += idf
        if idf < low:
            low = idf
        elif idf > high:
            high = idf
        role_b, after = after, roles[i + 2]
        if (
            end_ok[i + 1]
            and not (a[INFO_DIGITS] and b[INFO_DIGITS])
            and not (name and (role_b == ROLE_VERB or after == ROLE_NUMBER))
        ):
            cand = get(phrase)
            if cand is None:
                found[phrase] = [
                    1,
                    i,
                    2,
                    first,
                    b[INFO_LAST],
                    low,
                    high,
                    total,
                    left,
                    after == clean,
                ]
            else:
                cand[COUNT] += 1
                cand[CLEAN_LEFT] += left
                cand[CLEAN_RIGHT] += after == clean
        if after >= clean or role_b == ROLE_NUMBER or (name and role_b == ROLE_VERB):
            continue
        c = infos[i + 2]
        phrase += c[INFO_WORD]
        idf = c[INFO_IDF]
        total += idf
        if idf < low:
            low = idf
        elif idf > high:
            high = idf
        role_c, after = after, roles[i + 3]
        if (
            end_ok[i + 2]
            and not (a[INFO_DIGITS] and b[INFO_DIGITS] and c[INFO_DIGITS])
            and not (name and (role_c == ROLE_VERB or after == ROLE_NUMBER))
        ):
            cand = get(phrase)
            if cand is None:
                found[phrase] = [
                    1,
                    i,
                    3,
                    first,
                    c[INFO_LAST],
                    low,
                    high,
                    total,
                    left,
                    after == clean,
                ]
            else:
                cand[COUNT] += 1
                cand[CLEAN_LEFT] += left
                cand[CLEAN_RIGHT] += after == clean
    return ZhCandidates(text=text, n_tokens=size, candidates=found, infos=infos)


def _first_and_last_sentence(text: str) -> tuple[str, str]:
    """The first and (when there are several) the last sentence: a title or a headline
    often sits at one end. Only the ends of long texts are split."""
    if _ANY_TERMINATOR.search(text) is None:
        return text, ""
    head = sentence_spans(text[:_END_CHARS])
    first = text[head[0][0] : head[0][1]] if head else ""
    if len(text) <= _END_CHARS:
        return first, (text[head[-1][0] : head[-1][1]] if len(head) > 1 else "")
    tail_text = text[-_END_CHARS:]
    tail = sentence_spans(tail_text)
    return first, (tail_text[tail[-1][0] : tail[-1][1]] if tail else "")


def bin_features(base: Sequence[float], edges: Sequence[Sequence[float]]) -> list[float]:
    """The one-hot bins of the BINNED_FEATURES of a ``base_features`` vector."""
    out = [0.0] * (len(BINNED_FEATURES) * N_BINS)
    for j, (index, cuts) in enumerate(zip(_BINNED_INDEX, edges, strict=True)):
        out[j * N_BINS + bisect_right(cuts, base[index])] = 1.0
    return out


def feature_vector(
    phrase: str,
    cand: Candidate,
    found: ZhCandidates,
    first: str,
    last: str,
    res: KeywordResources,
) -> list[float]:
    """All features of one candidate in the shipped ranker's order (for tests): FEATURE_NAMES,
    binned with its edges, then its interaction products."""
    base = base_features(phrase, cand, found, first, last, res)
    assert res.ranker is not None
    return (
        base
        + bin_features(base, res.ranker.edges)
        + interaction_features(base, res.ranker.interactions)
    )


def base_features(
    phrase: str,
    cand: Candidate,
    found: ZhCandidates,
    first: str,
    last: str,
    res: KeywordResources,
) -> list[float]:
    """The BASE_FEATURES of one candidate (training computes the bins' edges from them)."""
    numeric = numeric_features(
        phrase,
        cand,
        found.text.count(phrase),
        1.0 / max(found.n_tokens, 1),
        first,
        last,
        res.idf,
    )
    one_hot = [0.0] * (2 * N_TAG_GROUPS)
    one_hot[int(cand[FIRST_TAG])] = 1.0
    one_hot[N_TAG_GROUPS + int(cand[LAST_TAG])] = 1.0
    return numeric + one_hot


def numeric_features(
    phrase: str,
    cand: Candidate,
    in_text: int,
    inv_tokens: float,
    first: str,
    last: str,
    idf: dict[str, float],
) -> list[float]:
    """The NUMERIC_FEATURES of one candidate; ``in_text`` counts the phrase in the text."""
    length = len(phrase)
    words = int(cand[WORDS])
    return [
        math.log1p(cand[COUNT]),
        1.0 if cand[COUNT] > 1 else 0.0,
        cand[FIRST_TOKEN] * inv_tokens,
        1.0 if phrase in first else 0.0,
        1.0 if last and phrase in last else 0.0,
        cand[MIN_IDF] / _IDF_SCALE,
        cand[MAX_IDF] / _IDF_SCALE,
        cand[SUM_IDF] / words / _IDF_SCALE,
        1.0 if words == 1 and phrase in idf else 0.0,
        length / 10.0,
        1.0 if length == 2 else 0.0,
        1.0 if length == 3 else 0.0,
        1.0 if length == 4 else 0.0,
        1.0 if 5 <= length <= 6 else 0.0,
        1.0 if length >= 7 else 0.0,
        1.0 if words == 1 else 0.0,
        1.0 if words == 2 else 0.0,
        1.0 if words == 3 else 0.0,
        1.0 if words == 4 else 0.0,
        1.0 if any(ch.isdigit() for ch in phrase) else 0.0,
        1.0 if phrase.isascii() else 0.0,
        math.log1p(in_text),
        cand[CLEAN_LEFT] / cand[COUNT],
        cand[CLEAN_RIGHT] / cand[COUNT],
    ]


# Numeric features fixed by a candidate's length, word count and dictionary membership
# (its "shape"): the inlined scorer folds their interaction terms into a table per shape.
_SHAPE_FEATURES: Final = (
    "dictionary_word", "chars", "chars_2", "chars_3", "chars_4", "chars_5_6", "chars_7_plus",
    "words_1", "words_2", "words_3", "words_4",
)  # fmt: skip
# The others, in NUMERIC_FEATURES order: the order of the values the inlined scorer builds.
_DYNAMIC_FEATURES: Final = tuple(n for n in NUMERIC_FEATURES if n not in _SHAPE_FEATURES)


def _shape_values(length: int, words: int, dictionary_word: bool) -> dict[str, float]:
    """The _SHAPE_FEATURES values, as ``numeric_features`` computes them."""
    return {
        "dictionary_word": 1.0 if dictionary_word else 0.0,
        "chars": length / 10.0,
        "chars_2": 1.0 if length == 2 else 0.0,
        "chars_3": 1.0 if length == 3 else 0.0,
        "chars_4": 1.0 if length == 4 else 0.0,
        "chars_5_6": 1.0 if 5 <= length <= 6 else 0.0,
        "chars_7_plus": 1.0 if length >= 7 else 0.0,
        "words_1": 1.0 if words == 1 else 0.0,
        "words_2": 1.0 if words == 2 else 0.0,
        "words_3": 1.0 if words == 3 else 0.0,
        "words_4": 1.0 if words == 4 else 0.0,
    }


_MAX_TABLE_LENGTH = 64
# Counts below this are looked up in tables rather than computed (same values).
_SMALL = 32


class FastRanker:
    """The linear ranker with its one-hot and bucket features folded into lookup tables:
    equal to ``bias + weights . feature_vector(...)`` at a fraction of the cost."""

    def __init__(self, ranker: RankerWeights) -> None:
        n = len(FEATURE_NAMES)
        w = dict(zip(FEATURE_NAMES, ranker.weights[:n], strict=True))
        self.w = w
        # (i, j, weight) of each product of numeric features.
        self.pairs = tuple(
            (i, j, weight)
            for (i, j), weight in zip(ranker.interactions, ranker.weights[n:], strict=True)
        )
        # The same split by kind for the inlined scorer: shape x shape products are a
        # constant per shape, shape x dynamic ones a coefficient of the dynamic value per
        # shape (both in ``shapes``); dynamic x dynamic ones are computed.
        dynamic = {name: k for k, name in enumerate(_DYNAMIC_FEATURES)}
        self._shape_pairs: list[tuple[str, str, float]] = []
        self._mixed_pairs: list[tuple[str, int, float]] = []
        dynamic_pairs: list[tuple[int, int, float]] = []
        for i, j, weight in self.pairs:
            a, b = NUMERIC_FEATURES[i], NUMERIC_FEATURES[j]
            if a in dynamic and b in dynamic:
                dynamic_pairs.append((dynamic[a], dynamic[b], weight))
            elif a in dynamic or b in dynamic:
                shape, other = (b, a) if a in dynamic else (a, b)
                self._mixed_pairs.append((shape, dynamic[other], weight))
            else:
                self._shape_pairs.append((a, b, weight))
        self.dynamic_pairs = tuple(dynamic_pairs)
        self.shapes: dict[tuple[int, int, bool], tuple[float, tuple[tuple[int, float], ...]]] = {}
        self.bias = ranker.bias
        self.first_tag = [w[f"first_tag_{i}"] for i in range(N_TAG_GROUPS)]
        self.last_tag = [w[f"last_tag_{i}"] for i in range(N_TAG_GROUPS)]
        self.by_words = [0.0] + [w[f"words_{n}"] for n in range(1, MAX_NGRAM + 1)]
        self.mean_idf = w["mean_idf"] / _IDF_SCALE
        self.min_idf = w["min_idf"] / _IDF_SCALE
        self.max_idf = w["max_idf"] / _IDF_SCALE
        self.log_tf = w["log_tf"]
        self.position = w["first_position"]
        self.substring_count = w["log_substring_count"]
        self.repeated = w["repeated"]
        self.in_first = w["in_first_sentence"]
        self.in_last = w["in_last_sentence"]
        self.dictionary_word = w["dictionary_word"]
        self.ascii_only = w["ascii_only"]
        self.has_digit = w["has_digit"]
        self.clean_left = w["clean_left"]
        self.clean_right = w["clean_right"]
        # Bins: per binned feature, its edges and the weight of each bin. Those of length,
        # count and substring count are folded into tables below.
        bins = {
            name: (edges, [w[f"{name}_bin_{k}"] for k in range(N_BINS)])
            for name, edges in zip(BINNED_FEATURES, ranker.edges, strict=True)
        }
        self.bins = bins
        self.by_length = [self._length_weight(n) for n in range(_MAX_TABLE_LENGTH)]
        self.by_count = [self._count_weight(n) for n in range(_SMALL)]
        self.by_in_text = [self._in_text_weight(n) for n in range(_SMALL)]

    def shape_terms(
        self, length: int, words: int, dictionary_word: bool
    ) -> tuple[float, tuple[tuple[int, float], ...]]:
        """The interaction terms of a candidate shape: a constant, and (index into
        _DYNAMIC_FEATURES, coefficient) pairs. Remembered in ``shapes``."""
        values = _shape_values(length, words, dictionary_word)
        constant = sum(weight * values[a] * values[b] for a, b, weight in self._shape_pairs)
        linear: dict[int, float] = {}
        for shape, k, weight in self._mixed_pairs:
            if values[shape]:
                linear[k] = linear.get(k, 0.0) + weight * values[shape]
        terms = (constant, tuple(linear.items()))
        if len(self.shapes) < 4096:
            self.shapes[(length, words, dictionary_word)] = terms
        return terms

    def _binned(self, name: str, value: float) -> float:
        edges, weights = self.bins[name]
        return weights[bisect_right(edges, value)]

    def _count_weight(self, count: int) -> float:
        value = math.log1p(count)
        return self.log_tf * value + self._binned("log_tf", value)

    def _in_text_weight(self, in_text: int) -> float:
        value = math.log1p(in_text)
        return self.substring_count * value + self._binned("log_substring_count", value)

    def _continuous(
        self, position: float, low: float, high: float, mean: float, left: float, right: float
    ) -> float:
        """Linear terms of position, IDF and clean-boundary shares (raw values: IDF not yet
        divided by _IDF_SCALE)."""
        return (
            self.position * position
            + self.min_idf * low
            + self.max_idf * high
            + self.mean_idf * mean
            + self.clean_left * left
            + self.clean_right * right
        )

    def _length_weight(self, length: int) -> float:
        w = self.w
        return (
            self._binned("chars", length / 10.0)
            + w["chars"] * length / 10.0
            + (w["chars_2"] if length == 2 else 0.0)
            + (w["chars_3"] if length == 3 else 0.0)
            + (w["chars_4"] if length == 4 else 0.0)
            + (w["chars_5_6"] if 5 <= length <= 6 else 0.0)
            + (w["chars_7_plus"] if length >= 7 else 0.0)
        )

    def score(
        self,
        phrase: str,
        cand: Candidate,
        text: str,
        inv_tokens: float,
        first: str,
        last: str,
        idf: dict[str, float],
    ) -> float:
        length = len(phrase)
        words = int(cand[WORDS])
        count = cand[COUNT]
        score = (
            self.bias
            + self.first_tag[int(cand[FIRST_TAG])]
            + self.last_tag[int(cand[LAST_TAG])]
            + self.by_words[words]
            + (
                self.by_length[length]
                if length < _MAX_TABLE_LENGTH
                else self._length_weight(length)
            )
            + self._count_weight(count)
            + self._in_text_weight(text.count(phrase))
            + self._continuous(
                cand[FIRST_TOKEN] * inv_tokens,
                cand[MIN_IDF],
                cand[MAX_IDF],
                cand[SUM_IDF] / words,
                cand[CLEAN_LEFT] / count,
                cand[CLEAN_RIGHT] / count,
            )
        )
        if count > 1:
            score += self.repeated
        if phrase in first:
            score += self.in_first
        if last and phrase in last:
            score += self.in_last
        if words == 1 and phrase in idf:
            score += self.dictionary_word
        if phrase.isascii():
            score += self.ascii_only
        if not phrase.isalpha() and any(ch.isdigit() for ch in phrase):
            score += self.has_digit
        if self.pairs:
            v = numeric_features(phrase, cand, text.count(phrase), inv_tokens, first, last, idf)
            for i, j, weight in self.pairs:
                score += weight * v[i] * v[j]
        return float(score)

    def score_candidates(
        self,
        items: Iterable[tuple[str, Candidate]],
        text: str,
        n_tokens: int,
        first: str,
        last: str,
        idf: dict[str, float],
    ) -> list[tuple[str, float]]:
        """``score`` of every candidate, inlined: this loop is most of the extractor's time."""
        bias = self.bias
        first_tag, last_tag, by_words, by_length = (
            self.first_tag,
            self.last_tag,
            self.by_words,
            self.by_length,
        )
        position, min_w, max_w, mean_w = (self.position, self.min_idf, self.max_idf, self.mean_idf)
        by_count, by_in_text, repeated, in_first, in_last = (
            self.by_count,
            self.by_in_text,
            self.repeated,
            self.in_first,
            self.in_last,
        )
        dictionary_word, ascii_only, has_digit, clean_left, clean_right = (
            self.dictionary_word,
            self.ascii_only,
            self.has_digit,
            self.clean_left,
            self.clean_right,
        )
        inv_tokens = 1.0 / max(n_tokens, 1)
        count_in_text = text.count
        pairs, shapes, dynamic_pairs = self.pairs, self.shapes, self.dynamic_pairs
        log1p = math.log1p
        scored: list[tuple[str, float]] = []
        for phrase, cand in items:
            count, token, words, first_group, last_group, low, high, total, left, right = cand
            length = len(phrase)
            in_text = count_in_text(phrase)
            score = (
                bias
                + first_tag[first_group]
                + last_tag[last_group]
                + by_words[words]
                + (by_length[length] if length < _MAX_TABLE_LENGTH else self._length_weight(length))
                + (by_count[count] if count < _SMALL else self._count_weight(count))
                + (by_in_text[in_text] if in_text < _SMALL else self._in_text_weight(in_text))
                + position * token * inv_tokens
                + min_w * low
                + max_w * high
                + mean_w * total / words
                + (clean_left * left + clean_right * right) / count
            )
            if count > 1:
                score += repeated
            is_first = phrase in first
            if is_first:
                score += in_first
            is_last = phrase in last if last else False
            if is_last:
                score += in_last
            is_word = words == 1 and phrase in idf
            if is_word:
                score += dictionary_word
            is_ascii = phrase.isascii()
            if is_ascii:
                score += ascii_only
            digit = not phrase.isalpha() and any(ch.isdigit() for ch in phrase)
            if digit:
                score += has_digit
            if pairs:
                terms = shapes.get((length, words, is_word))
                if terms is None:
                    terms = self.shape_terms(length, words, is_word)
                # The _DYNAMIC_FEATURES values, as numeric_features computes them.
                v = (
                    log1p(count),
                    1.0 if count > 1 else 0.0,
                    token * inv_tokens,
                    1.0 if is_first else 0.0,
                    1.0 if is_last else 0.0,
                    low / _IDF_SCALE,
                    high / _IDF_SCALE,
                    total / words / _IDF_SCALE,
                    1.0 if digit else 0.0,
                    1.0 if is_ascii else 0.0,
                    log1p(in_text),
                    left / count,
                    right / count,
                )
                score += terms[0]
                for k, coefficient in terms[1]:
                    score += coefficient * v[k]
                for i, j, weight in dynamic_pairs:
                    score += weight * v[i] * v[j]
            scored.append((phrase, score))
        return scored


def _tfidf_score(cand: Candidate) -> float:
    return float(cand[COUNT] * cand[SUM_IDF] / cand[WORDS] * (1.0 + 0.15 * (cand[WORDS] - 1)))


def _prune(cands: dict[str, Candidate], limit: int) -> Iterable[tuple[str, Candidate]]:
    """The ``limit`` best candidates by ``_tfidf_score`` (ties: first found first)."""
    if len(cands) <= limit:
        return cands.items()
    items = list(cands.items())
    keys = [
        count * total / words * (1.0 + 0.15 * (words - 1))
        for count, _, words, _, _, _, _, total, _, _ in cands.values()
    ]
    best = sorted(range(len(items)), key=keys.__getitem__, reverse=True)[:limit]
    return [items[i] for i in best]


def _textrank(chunks: list[list[str]], window: int = 5, iterations: int = 20) -> dict[str, float]:
    """PageRank over co-occurrence (within ``window`` content words, as jieba does)."""
    neighbours: dict[str, Counter[str]] = {}
    words = [w for chunk in chunks for w in chunk if len(w) > 1]
    for i, word in enumerate(words):
        links = neighbours.setdefault(word, Counter())
        for other in words[i + 1 : i + window]:
            if other != word:
                links[other] += 1
                neighbours.setdefault(other, Counter())[word] += 1
    if not neighbours:
        return {}
    rank = dict.fromkeys(neighbours, 1.0)
    out_weight = {w: sum(links.values()) or 1 for w, links in neighbours.items()}
    for _ in range(iterations):
        rank = {
            w: 0.15 + 0.85 * sum(rank[o] * c / out_weight[o] for o, c in links.items())
            for w, links in neighbours.items()
        }
    return rank


# --------------------------------------------------------------------------- en


def _fold(word: str) -> str:
    """Cheap lemmatiser: plural folding only (studies->study, models->model)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class EnLexicon:
    """Word classes of ``resources/en_chunk_words.txt`` for the noun-phrase chunker."""

    breaks: frozenset[str]  # function, number and time words: never in a keyphrase
    verbs: frozenset[str]  # every form of the listed verbs
    adjectives: frozenset[str]
    opinion: frozenset[str]  # evaluative adjectives dropped from a phrase's start


def _verb_forms(base: str) -> set[str]:
    stem = base[:-1] if base.endswith("e") else base
    forms = {base, base + "s", base + "es", stem + "ed", stem + "ing", base + "ed"}
    if base.endswith("y"):
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    return forms


@cache
def load_en_lexicon() -> EnLexicon:
    text = resources.files(_RESOURCES).joinpath("en_chunk_words.txt").read_text("utf-8")
    classes: dict[str, set[str]] = {}
    for line in text.splitlines():
        name, sep, words = line.partition(":")
        if sep and not line.startswith("#"):
            classes.setdefault(name.strip(), set()).update(words.split())
    verbs = {form for base in classes.get("VERB", ()) for form in _verb_forms(base)}
    return EnLexicon(
        breaks=frozenset(classes["FUNCTION"] | classes["NUMBER"] | classes["TIME"]),
        verbs=frozenset(verbs | classes.get("VERB_FORM", set())),
        adjectives=frozenset(classes["ADJ"]),
        opinion=frozenset(classes["OPINION"]),
    )


_BREAK, _NOUN, _PROPER, _ADJ = range(4)
_DETERMINERS = frozenset("a an the this that these those my your his her its our their".split())
_ADJ_SUFFIXES = ("ous", "ful", "ive", "able", "ible", "less", "ish")
_SENTENCE_END = frozenset(".!?;:")
_MAX_EN_WORDS = 4


def _en_tag(
    token: str, lower: str, previous: int, after_determiner: bool, starts: bool, lex: EnLexicon
) -> int:
    """The chunker's class of one word token, from the lexicon, its suffix and context."""
    if lower in lex.breaks or (lower.endswith("'s") and lower[:-2] in lex.breaks):
        return _BREAK  # also someone's, it's
    if token[0].isupper() and (not starts or (len(token) > 1 and token.isupper())):
        return _PROPER  # a capitalised word inside a sentence, or an acronym (NEW YORK)
    if lower in lex.verbs:
        return _BREAK
    if lower in lex.adjectives or (len(lower) > 5 and lower.endswith(_ADJ_SUFFIXES)):
        return _ADJ
    if len(lower) > 4:
        if lower.endswith("ly"):
            return _BREAK  # adverb
        if lower.endswith("ed"):
            return _ADJ if after_determiner else _BREAK  # "the used car" / "Apple reported"
        if lower.endswith("ing"):
            # A noun inside a phrase ("the ending", "climate modelling"), else a verb.
            return _NOUN if after_determiner or previous in (_NOUN, _PROPER, _ADJ) else _BREAK
    if len(lower) < 2 or not any(ch.isalpha() for ch in lower):
        return _BREAK
    return _NOUN


def en_noun_phrases(
    text: str, lex: EnLexicon | None = None, max_chars: int = DEFAULT_MAX_CHARS
) -> list[list[tuple[str, int]]]:
    """Noun-phrase chunks of English text: runs of adjectives and nouns that end in a
    noun (at most four words, the last ones kept), as (token, class) pairs. Verbs,
    function words, number and time words end a chunk; evaluative adjectives are dropped
    from its start ("excellent customer service" -> "customer service")."""
    lex = lex or load_en_lexicon()
    chunks: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    previous = _BREAK
    after_determiner = False
    starts = True

    def flush() -> None:
        while current and current[-1][1] == _ADJ:
            current.pop()
        while current and current[0][1] == _ADJ and current[0][0].lower() in lex.opinion:
            current.pop(0)
        if current:
            chunks.append(current[-_MAX_EN_WORDS:])

    for token in _EN_TOKEN.findall(text):
        if not token[0].isalpha():
            if current:
                flush()
                current = []
            previous, after_determiner = _BREAK, False
            starts = starts or token in _SENTENCE_END
            continue
        lower = token.lower()
        tag = (
            _en_tag(token, lower, previous, after_determiner, starts, lex)
            if len(token) <= max_chars
            else _BREAK
        )
        if tag == _BREAK:
            if current:
                flush()
                current = []
        else:
            current.append((token, tag))
        previous, after_determiner, starts = tag, lower in _DETERMINERS, False
    if current:
        flush()
    return chunks


def _en_keywords(
    text: str, top_k: int, stop: frozenset[str], max_chars: int = DEFAULT_MAX_CHARS
) -> list[tuple[str, float]]:
    """Noun-phrase chunks ranked RAKE-style: a word scores its degree over its frequency
    (words of longer phrases score higher), a phrase the sum of its words, and repeats
    add with diminishing returns. Proper nouns keep their case."""
    phrases = [
        [(token, _fold(token.lower()), tag) for token, tag in chunk]
        for chunk in en_noun_phrases(text, max_chars=max_chars)
        if not all(token.lower() in stop for token, _ in chunk)
    ]
    if not phrases:
        return []
    frequency: Counter[str] = Counter()
    degree: Counter[str] = Counter()
    for phrase in phrases:
        for _, lemma, _ in phrase:
            frequency[lemma] += 1
            degree[lemma] += len(phrase)
    word_score = {w: degree[w] / frequency[w] for w in frequency}
    scores: dict[str, float] = {}
    surface: dict[str, str] = {}
    # Phrases seen capitalised inside a sentence are names wherever they occur.
    capitalised = {
        " ".join(lemma for _, lemma, _ in phrase)
        for phrase in phrases
        if all(tag == _PROPER for _, _, tag in phrase)
    }
    for phrase in phrases:
        key = " ".join(lemma for _, lemma, _ in phrase)
        phrase_score = sum(word_score[lemma] for _, lemma, _ in phrase)
        scores[key] = scores.get(key, 0.0) + phrase_score / (1.0 + 0.5 * (key in scores))
        if key not in surface:
            # A name keeps its case, also its sentence-initial first word ("Satya Nadella").
            proper = any(tag == _PROPER for _, _, tag in phrase) or key in capitalised
            surface[key] = " ".join(
                token if token.isupper() or (proper and token[0].isupper()) else token.lower()
                for token, _, _ in phrase
            )
    ranked = sorted(
        (kv for kv in scores.items() if len(surface[kv[0]]) <= max_chars),
        key=lambda kv: kv[1],
        reverse=True,
    )
    kept: list[tuple[str, float]] = []
    for key, score in ranked:
        if len(kept) == top_k:
            break
        # A lone head word of a higher-ranked phrase adds nothing ("lab" after "research
        # lab"); a longer phrase inside one still can ("image classification").
        if " " in key or not any(other.endswith(f" {key}") for other, _ in kept):
            kept.append((key, score))
    return [(surface[k], s) for k, s in kept]


# --------------------------------------------------------------------------- extractor


def _sigmoid(x: float) -> float:
    if x < -30.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


def _select(
    scored: list[tuple[str, float]], top_k: int, max_chars: int = DEFAULT_MAX_CHARS
) -> list[tuple[str, float]]:
    """The ``top_k`` best of ``scored`` no longer than ``max_chars``, best first."""
    if any(len(phrase) > max_chars for phrase, _ in scored):
        scored = [kv for kv in scored if len(kv[0]) <= max_chars]
    scored.sort(key=lambda kv: kv[1], reverse=True)
    return scored[:top_k]


class KeywordExtractor:
    """``analyze_batch`` returns, per text, up to ``top_k`` keywords, highest weight first,
    none longer than ``max_chars`` characters.

    Weights: for ``ranker`` the model's probability that the phrase is a keyword; for
    ``tfidf``/``textrank`` the score relative to the best phrase (best = 1).
    """

    name = "keywords"
    version = VERSION

    def __init__(
        self, top_k: int = 10, method: Method = "ranker", *, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown keyword method {method!r}; expected one of {METHODS}")
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.top_k = top_k
        self.max_chars = max_chars
        self.res = load_resources()
        if method == "ranker" and self.res.ranker is None:
            method = "tfidf"
        self.method: Method = method
        self.version = f"{VERSION}-{method}"
        self._fast = FastRanker(self.res.ranker) if self.res.ranker is not None else None

    def extract(self, text: str, language: str = "zh") -> list[Keyword]:
        return self.analyze_batch([text], [language])[0]

    def _extract_one(self, found: ZhCandidates) -> list[Keyword]:
        """tfidf and textrank."""
        if not found.candidates:
            return []
        if self.method == "textrank":
            return _as_keywords(self._textrank(found), normalise=True)
        scored = [(p, _tfidf_score(c)) for p, c in found.candidates.items()]
        return _as_keywords(_select(scored, self.top_k, self.max_chars), normalise=True)

    def _ranked(self, text: str) -> list[dict[str, object]]:
        """The ranker's ``top_k`` as Keyword fields (validated by the caller, per batch)."""
        ranker = self._fast
        assert ranker is not None
        found = zh_candidates(text, self.res)
        if not found.candidates:
            return []
        first, last = _first_and_last_sentence(text)
        scored = ranker.score_candidates(
            _prune(found.candidates, MAX_SCORED_CANDIDATES),
            text,
            found.n_tokens,
            first,
            last,
            self.res.idf,
        )
        exp = math.exp
        return [
            {"text": phrase, "weight": 0.0 if s < -30.0 else round(1.0 / (1.0 + exp(-s)), 6)}
            for phrase, s in _select(scored, self.top_k, self.max_chars)
        ]

    def _textrank(self, found: ZhCandidates) -> list[tuple[str, float]]:
        chunks = found.chunk_words()
        rank = _textrank(chunks)
        scored = []
        for phrase, cand in found.candidates.items():
            parts = [rank.get(w, 0.0) for w in _split_words(phrase, int(cand[WORDS]), chunks)]
            if parts:
                scored.append((phrase, sum(parts) / len(parts) * (1.0 + 0.1 * cand[WORDS])))
        return _select(scored, self.top_k, self.max_chars)

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[Keyword]]:
        if self.method != "ranker":
            return [
                _as_keywords(
                    _en_keywords(t, self.top_k, self.res.en_stop_words, self.max_chars),
                    normalise=True,
                )
                if lang == "en"
                else self._extract_one(zh_candidates(t, self.res))
                for t, lang in zip(texts, languages, strict=True)
            ]
        fields: list[list[dict[str, object]]] = []
        for text, language in zip(texts, languages, strict=True):
            if language == "en":
                pairs = _en_keywords(text, self.top_k, self.res.en_stop_words, self.max_chars)
                top = pairs[0][1] if pairs and pairs[0][1] > 0 else 1.0
                fields.append([{"text": t, "weight": round(s / top, 6)} for t, s in pairs])
            else:
                fields.append(self._ranked(text))
        # One pydantic-core call for the whole batch.
        return _KEYWORD_LISTS.validate_python(fields)


def _split_words(phrase: str, words: int, chunks: list[list[str]]) -> list[str]:
    if words == 1:
        return [phrase]
    for chunk in chunks:
        for i in range(len(chunk) - words + 1):
            if "".join(chunk[i : i + words]) == phrase:
                return chunk[i : i + words]
    return [phrase]


# One pydantic-core call validates the whole list: about half the cost of building the
# models one by one (``model_construct`` is slower still: it runs in Python).
_KEYWORD_LIST = TypeAdapter(list[Keyword])
_KEYWORD_LISTS = TypeAdapter(list[list[Keyword]])


def _as_keywords(pairs: list[tuple[str, float]], *, normalise: bool) -> list[Keyword]:
    if not pairs:
        return []
    top = pairs[0][1] if normalise and pairs[0][1] > 0 else 1.0
    return _KEYWORD_LIST.validate_python(
        [{"text": text, "weight": round(score / top, 6)} for text, score in pairs]
    )
