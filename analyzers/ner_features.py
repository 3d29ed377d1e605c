"""Vectorised character features for the Chinese entity tagger.

Every feature of a character is one 64-bit key made arithmetically from normalised code
points (no vocabulary, no Python ``hash()``), so the same text gives the same keys in
every process and a whole batch of texts is featurised by a few numpy operations. The
keys are looked up in a hashed weight table (:class:`HashedWeights`) whose slots carry a
16-bit fingerprint, so a key never seen in training scores zero instead of borrowing a
colliding feature's weights.

A batch is one code-point array: each text is preceded and followed by ``PAD`` sentinel
positions, so a window of +-2 characters never sees a neighbouring text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import TypeVar

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

# Sentinel positions around every text; the feature window is +-2 characters wide.
PAD = 2
SENTINEL = 0

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)

# Character classes (also used as feature payloads).
CLS_SENTINEL, CLS_HAN, CLS_DIGIT, CLS_UPPER, CLS_LOWER, CLS_SPACE, CLS_PUNCT, CLS_OTHER = range(8)

# Gazetteer entity kinds, in the bit order of the gazetteer table.
GAZ_KINDS = ("PER", "LOC", "ORG")
GAZ_MIN_LEN = 2
GAZ_MAX_LEN = 7


def codepoints(text: str) -> I64:
    """Code points of ``text``; index i is ``text[i]`` (lone surrogates pass through)."""
    raw = text.encode("utf-32-le", errors="surrogatepass")
    return np.frombuffer(raw, dtype=np.uint32).astype(np.int64)


def batch_codepoints(texts: Sequence[str]) -> tuple[I64, I64]:
    """One padded code-point array for all texts, and each text's first index in it."""
    sep = "\x00" * PAD
    joined = sep + sep.join(t.replace("\x00", " ") for t in texts) + sep
    codes = codepoints(joined)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    starts = PAD + np.concatenate(([0], np.cumsum(lengths + PAD)[:-1])) if len(texts) else lengths
    return codes, starts.astype(np.int64)


def batch_word_codes(tagged_texts: Iterable[Iterable[tuple[str, str]]]) -> I64:
    """``word_codes`` of each text laid out like ``batch_codepoints`` (0 at sentinels).

    One numpy pass for the whole batch: per text only C-level ``map`` calls run, which
    matters for batches of many short texts."""
    lengths: list[int] = [PAD]
    classes: list[int] = [-1]  # -1: sentinel pseudo-word
    get = _POS_CLASS.get
    for tagged in tagged_texts:
        pairs = tagged if isinstance(tagged, tuple | list) else tuple(tagged)
        if pairs:
            words, tags = zip(*pairs, strict=True)
            lengths.extend(map(len, words))
            classes.extend(map(get, tags, repeat(0)))
        lengths.append(PAD)
        classes.append(-1)
    return _codes_of_words(np.asarray(lengths, dtype=np.int64), classes)


def _codes_of_words(word_len: I64, classes: list[int]) -> I64:
    n_words = word_len.shape[0]
    word_of = np.repeat(np.arange(n_words), word_len)
    word_start = np.cumsum(word_len) - word_len
    offset = np.arange(word_of.shape[0]) - word_start[word_of]
    size = word_len[word_of]
    bmes = np.where(size == 1, 3, np.where(offset == 0, 0, np.where(offset == size - 1, 2, 1)))
    cls = np.asarray(classes, dtype=np.int64)[word_of]
    out: I64 = np.where(cls < 0, 0, cls * 4 + bmes)
    return out


def normalise(codes: I64) -> I64:
    """Fold full-width ASCII to half-width, digits to '0' and Latin letters to lower case."""
    c = np.where((codes >= 0xFF01) & (codes <= 0xFF5E), codes - 0xFEE0, codes)
    c = np.where(c == 0x3000, 0x20, c)
    c = np.where((c >= 0x30) & (c <= 0x39), 0x30, c)
    return np.where((c >= 0x41) & (c <= 0x5A), c + 0x20, c)


def char_classes(codes: I64) -> I64:
    """Class of each raw code point (see the ``CLS_*`` constants)."""
    c = np.where((codes >= 0xFF01) & (codes <= 0xFF5E), codes - 0xFEE0, codes)
    cls = np.full(c.shape, CLS_OTHER, dtype=np.int64)
    han = (
        ((c >= 0x4E00) & (c <= 0x9FFF))
        | ((c >= 0x3400) & (c <= 0x4DBF))
        | ((c >= 0xF900) & (c <= 0xFAFF))
        | ((c >= 0x20000) & (c <= 0x3FFFF))
    )
    cls[han] = CLS_HAN
    cls[(c >= 0x30) & (c <= 0x39)] = CLS_DIGIT
    cls[(c >= 0x41) & (c <= 0x5A)] = CLS_UPPER
    cls[(c >= 0x61) & (c <= 0x7A)] = CLS_LOWER
    cls[(c == 0x20) | (c == 0x09) | (c == 0x0A) | (c == 0x0D) | (c == 0x3000) | (c == 0xA0)] = (
        CLS_SPACE
    )
    punct = ((c >= 0x21) & (c <= 0x2F)) | ((c >= 0x3A) & (c <= 0x40)) | ((c >= 0x5B) & (c <= 0x60))
    punct |= ((c >= 0x7B) & (c <= 0x7E)) | ((c >= 0x3001) & (c <= 0x303F))
    punct |= (c >= 0x2010) & (c <= 0x206F)
    cls[punct] = CLS_PUNCT
    cls[codes == SENTINEL] = CLS_SENTINEL
    return cls


_A = TypeVar("_A", I64, U64)


def _shift(a: _A, k: int) -> _A:
    """``a`` moved so that index i holds a[i + k] (edges filled with the sentinel)."""
    if k == 0:
        return a
    out = np.zeros_like(a)
    if k > 0:
        out[:-k] = a[k:]
    else:
        out[-k:] = a[:k]
    return out


def _hash_key(template: int, *parts: I64 | U64) -> U64:
    seed = np.uint64(((template + 1) * 0xC2B2AE3D27D4EB4F) & 0xFFFFFFFFFFFFFFFF)
    acc = np.full(parts[0].shape, seed, dtype=np.uint64)
    for p in parts:
        acc ^= p.astype(np.uint64, copy=False)
        acc *= _M1
    return acc ^ (acc >> np.uint64(29))


@dataclass(frozen=True, slots=True)
class Gazetteer:
    """Known names by kind, as a fingerprinted hash table of n-gram keys (n = 2..7)."""

    kinds: npt.NDArray[np.uint8]  # bit k set: an entry of GAZ_KINDS[k] hashes to the slot
    fingerprints: npt.NDArray[np.uint16]

    @property
    def bits(self) -> int:
        return int(self.kinds.shape[0]).bit_length() - 1

    @classmethod
    def build(cls, entries: Iterable[tuple[str, int]], bits: int = 19) -> Gazetteer:
        """From (name, kind index) pairs; names outside 2..7 characters are ignored."""
        kinds = np.zeros(1 << bits, dtype=np.uint8)
        fps = np.zeros(1 << bits, dtype=np.uint16)
        for name, kind in entries:
            if not GAZ_MIN_LEN <= len(name) <= GAZ_MAX_LEN:
                continue
            key = _ngram_keys(normalise(codepoints(name)), len(name))[:1]
            slot, fp = _slot_and_fingerprint(key, bits)
            s = int(slot[0])
            if kinds[s] and fps[s] != fp[0]:
                continue  # occupied by another name: first come keeps it
            kinds[s] |= np.uint8(1 << kind)
            fps[s] = fp[0]
        return cls(kinds=kinds, fingerprints=fps)

    def with_names(self, entries: Iterable[tuple[str, int]]) -> Gazetteer:
        """A copy in which each (name, kind index) is listed as that kind only.

        For curated names (``extra_names.tsv``): unlike ``build`` a listed name takes its
        slot even from another name and replaces the kinds the dictionary gave it."""
        kinds = self.kinds.copy()
        fps = self.fingerprints.copy()
        for name, kind in entries:
            if not GAZ_MIN_LEN <= len(name) <= GAZ_MAX_LEN:
                continue
            key = _ngram_keys(normalise(codepoints(name)), len(name))[:1]
            slot, fp = _slot_and_fingerprint(key, self.bits)
            kinds[int(slot[0])] = np.uint8(1 << kind)
            fps[int(slot[0])] = fp[0]
        return Gazetteer(kinds=kinds, fingerprints=fps)

    def match_codes(self, norm: I64) -> I64:
        """Per character and kind, the position in the longest covering name.

        Shape (len, 3); 0 none, 1 begin, 2 middle, 3 end. Longer matches win.
        """
        n_chars = norm.shape[0]
        codes = np.zeros((n_chars, len(GAZ_KINDS)), dtype=np.int64)
        for n in range(GAZ_MIN_LEN, GAZ_MAX_LEN + 1):
            if n > n_chars:
                break
            keys = _ngram_keys(norm, n)
            slot, fp = _slot_and_fingerprint(keys, self.bits)
            hit = (self.fingerprints[slot] == fp) & (self.kinds[slot] != 0)
            starts = np.flatnonzero(hit)
            if starts.size == 0:
                continue
            kind_bits = self.kinds[slot[starts]]
            for k in range(len(GAZ_KINDS)):
                s = starts[(kind_bits & (1 << k)) != 0]
                if s.size == 0:
                    continue
                codes[s, k] = 1
                for j in range(1, n - 1):
                    codes[s + j, k] = 2
                codes[s + n - 1, k] = 3
        return codes


def _ngram_keys(norm: I64, n: int) -> U64:
    """Key of the n-gram starting at each index (valid for the first len - n + 1)."""
    m = norm.shape[0] - n + 1
    acc = np.full(m, np.uint64((n * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for j in range(n):
        acc ^= norm[j : j + m].astype(np.uint64)
        acc *= _M1
    out: U64 = acc ^ (acc >> np.uint64(31))
    return out


def _slot_and_fingerprint(keys: U64, bits: int) -> tuple[I64, npt.NDArray[np.uint16]]:
    mixed = keys * _M2
    slot = (mixed >> np.uint64(64 - bits)).astype(np.int64)
    fp = ((mixed >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.uint16)
    return slot, fp


# jieba part-of-speech tags folded into a few classes that matter for names.
_POS_CLASS = {"nr": 1, "nrfg": 1, "nrt": 1, "ns": 2, "nt": 3, "nz": 4, "n": 5, "j": 6}
_POS_CLASS.update({"v": 7, "vn": 7, "m": 8, "x": 9, "eng": 10, "s": 11, "f": 11})
# Function-word-like tags share one class (a, ad, an, d, df, dg, r, rr, rz, u*, p, c ...).
_FUNCTION_TAGS = "a ad ag an d df dg r rg rr rz u ud ug uj ul uv uz p c".split()
_POS_CLASS.update(dict.fromkeys(_FUNCTION_TAGS, 12))


def word_codes(tagged: Iterable[tuple[str, str]]) -> I64:
    """Per character: (jieba POS class of its word) * 4 + position in the word (BMES).

    ``tagged`` is rjieba's ``tag`` output for the text (``analyzers.segmentation.tag``,
    cached and shared with the other analyzers of the pipeline)."""
    pairs = tagged if isinstance(tagged, tuple | list) else tuple(tagged)
    if not pairs:
        return np.zeros(0, dtype=np.int64)
    word_len = np.fromiter((len(word) for word, _ in pairs), dtype=np.int64, count=len(pairs))
    return _codes_of_words(word_len, [_POS_CLASS.get(pos, 0) for _, pos in pairs])


# Name-final cue words: how far to the right (1..CUE_REACH) the nearest cue starts tells
# the tagger that the characters before it may be the body of a place or organisation
# name ("...省", "...有限公司"), beyond the reach of the +-2 character window.
LOC_CUES = tuple("省 市 县 区 镇 乡 村 国 州 江 河 山 湖 岛 洲 港 湾 峡 路 街".split())
ORG_CUES = tuple(
    "公司 集团 银行 大学 学院 学校 中学 小学 医院 委员会 政府 部 局 厅 院 会 党 队 社 报 台 所 "
    "处 署 中心 协会 联合会 组织 军 厂 委".split()
)
CUE_REACH = 8


@dataclass(frozen=True, slots=True)
class CueTable:
    """Cue words as a code-point lookup (single characters) plus a short list of longer
    words checked only where a flagged first character occurs."""

    single: npt.NDArray[np.bool_]  # indexed by BMP code point
    first: npt.NDArray[np.bool_]  # first characters of the longer words
    longer: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, cues: Sequence[str]) -> CueTable:
        single = np.zeros(0x10000, dtype=bool)
        first = np.zeros(0x10000, dtype=bool)
        longer: list[tuple[int, ...]] = []
        for cue in cues:
            cps = tuple(int(c) for c in normalise(codepoints(cue)))
            if len(cps) == 1:
                single[cps[0]] = True
            else:
                first[cps[0]] = True
                longer.append(cps)
        return cls(single, first, tuple(longer))


_LOC_CUE_KEYS = CueTable.of(LOC_CUES)
_ORG_CUE_KEYS = CueTable.of(ORG_CUES)


def cue_distance(norm: I64, table: CueTable) -> I64:
    """Per character: distance (1..CUE_REACH) to the nearest cue starting to its right,
    else 0. Longer cue words count too, so "委员会" is found from its first character."""
    n_chars = norm.shape[0]
    bmp = np.minimum(norm, 0xFFFF)
    in_bmp = norm <= 0xFFFF
    is_start = table.single[bmp] & in_bmp
    maybe = np.flatnonzero(table.first[bmp] & in_bmp)
    for word in table.longer:
        at = maybe[maybe + len(word) <= n_chars]
        for j, cp in enumerate(word):
            at = at[norm[at + j] == cp]
        is_start[at] = True
    starts = np.flatnonzero(is_start)
    if starts.size == 0:
        return np.zeros(n_chars, dtype=np.int64)
    pos = np.arange(n_chars)
    nxt = np.searchsorted(starts, pos + 1)
    found = nxt < starts.size
    dist = np.where(found, starts[np.minimum(nxt, starts.size - 1)] - pos, 0)
    return np.where(found & (dist <= CUE_REACH), dist, 0).astype(np.int64)


@dataclass(frozen=True, slots=True)
class FeatureExtractor:
    """Feature keys of every character: shape (len(codes), n_templates)."""

    gazetteer: Gazetteer
    use_words: bool = False
    # Wider n-gram windows and name-final cue distances (templates 21..26).
    extended: bool = False

    def keys(self, codes: I64, words: I64 | None = None) -> U64:
        return np.stack(list(self.key_columns(codes, words)), axis=1)

    def key_columns(self, codes: I64, words: I64 | None = None) -> Iterator[U64]:
        """The feature keys template by template (column j of ``keys``)."""
        norm = normalise(codes).astype(np.uint64)
        cls = char_classes(codes)
        u = {k: _shift(norm, k) for k in (-2, -1, 0, 1, 2)}
        cl = {k: _shift(cls, k) for k in (-2, -1, 0, 1, 2)}
        gaz = self.gazetteer.match_codes(norm.astype(np.int64))
        # One small-integer payload per character for the gazetteer codes of all kinds.
        gaz_all = gaz[:, 0] * 16 + gaz[:, 1] * 4 + gaz[:, 2]
        yield _hash_key(0, np.zeros(norm.shape[0], dtype=np.uint64))  # bias
        yield _hash_key(1, u[-2])
        yield _hash_key(2, u[-1])
        yield _hash_key(3, u[0])
        yield _hash_key(4, u[1])
        yield _hash_key(5, u[2])
        yield _hash_key(6, u[-2], u[-1])
        yield _hash_key(7, u[-1], u[0])
        yield _hash_key(8, u[0], u[1])
        yield _hash_key(9, u[1], u[2])
        yield _hash_key(10, u[-1], u[1])
        yield _hash_key(11, u[-1], u[0], u[1])
        yield _hash_key(12, cl[-2] * 64 + cl[-1] * 8 + cl[0], cl[1] * 8 + cl[2])
        yield _hash_key(13, gaz_all)
        yield _hash_key(14, gaz[:, 0], u[0])
        yield _hash_key(15, gaz[:, 1], u[0])
        yield _hash_key(16, gaz[:, 2], u[0])
        yield _hash_key(17, _shift(gaz_all, -1), gaz_all, _shift(gaz_all, 1))
        if self.use_words:
            if words is None:
                raise ValueError("this model needs word codes")
            yield _hash_key(18, words)
            yield _hash_key(19, words, u[0])
            yield _hash_key(20, _shift(words, -1), words, _shift(words, 1))
        if self.extended:
            yield _hash_key(21, u[-2], u[-1], u[0], u[1])
            yield _hash_key(22, u[-1], u[0], u[1], u[2])
            raw = norm.astype(np.int64)
            loc = cue_distance(raw, _LOC_CUE_KEYS)
            org = cue_distance(raw, _ORG_CUE_KEYS)
            yield _hash_key(23, loc * 16 + org)
            yield _hash_key(24, loc, u[0])
            yield _hash_key(25, org, u[0])
            yield _hash_key(26, org, gaz_all)


class HashedWeights:
    """Feature key -> per-tag weights, through a fingerprinted hash table.

    At run time each slot is one packed uint32 (row << 12 | 12-bit fingerprint), so a
    lookup is a single random read; a fingerprint mismatch selects row 0 (all zeros).
    """

    def __init__(
        self,
        slot_rows: npt.NDArray[np.int32],
        slot_fingerprints: npt.NDArray[np.uint16],
        rows: npt.NDArray[np.float32],
    ) -> None:
        if rows.shape[0] >= 1 << 20:
            raise ValueError("too many weight rows for the packed slot table")
        self.slot_rows = slot_rows
        self.slot_fingerprints = slot_fingerprints
        self.rows = np.ascontiguousarray(rows, dtype=np.float32)
        self.bits = int(slot_rows.shape[0]).bit_length() - 1
        self._packed = (slot_rows.astype(np.uint32) << np.uint32(12)) | (
            slot_fingerprints.astype(np.uint32) & np.uint32(0xFFF)
        )

    @classmethod
    def build(
        cls, features: dict[int, npt.NDArray[np.float32]], n_tags: int, bits: int
    ) -> HashedWeights:
        """From exact feature keys; on a slot collision the larger weight vector stays."""
        keys = np.fromiter(features.keys(), dtype=np.uint64, count=len(features))
        vecs = np.stack(list(features.values())) if features else np.zeros((0, n_tags), np.float32)
        slot, fp = _slot_and_fingerprint(keys, bits)
        order = np.argsort(-np.abs(vecs).sum(axis=1), kind="stable")
        slot_rows = np.zeros(1 << bits, dtype=np.int32)
        slot_fps = np.zeros(1 << bits, dtype=np.uint16)
        rows = [np.zeros(n_tags, dtype=np.float32)]
        for i in order:
            s = int(slot[i])
            if slot_rows[s]:
                continue
            slot_rows[s] = len(rows)
            slot_fps[s] = fp[i]
            rows.append(vecs[i].astype(np.float32))
        return cls(slot_rows, slot_fps, np.stack(rows))

    def emissions(self, columns: Iterable[U64]) -> npt.NDArray[np.float32]:
        """Summed weights over the key columns: shape (n, n_tags)."""
        total: npt.NDArray[np.float32] | None = None
        for keys in columns:
            mixed = keys * _M2
            slot = (mixed >> np.uint64(64 - self.bits)).astype(np.intp)
            fp = ((mixed >> np.uint64(16)) & np.uint64(0xFFF)).astype(np.uint32)
            packed = self._packed[slot]
            row = np.where((packed & np.uint32(0xFFF)) == fp, packed >> np.uint32(12), 0)
            part = np.take(self.rows, row, axis=0)
            if total is None:
                total = part
            else:
                total += part
        if total is None:
            raise ValueError("no feature columns")
        return total


# A predicted LOC / ORG span that is a jieba place word followed by ordinary words is a
# place glued to what comes after it (离西湖步行十分钟 -> 西湖步行): the model's
# character window sees 行 as in 银行. A real longer name either ends in a name-final cue
# (西湖区, 杭州市政府, 广州松日队) or continues with another name-like word (上海浦东新区),
# and is left alone.
_PLACE_TAGS = frozenset({"ns"})
_NAME_PART_TAGS = frozenset({"ns", "nr", "nrt", "nrfg", "nt", "nz", "j", "eng", "m", "x"})
_SINGLE_CUES = frozenset(
    [c for c in LOC_CUES + ORG_CUES if len(c) == 1]
    + "园 城 团 宫 联 馆 站 寺 庙 塔 桥 楼 店 厦 场 门 坛 陵 苑 府 堂 营".split()
    + "堡 关 口 峰 岭 谷 滩 庄 方 金 构 校 科 组 办".split()
)
_LONG_CUES = tuple(c for c in ORG_CUES if len(c) > 1)


# Characters that end a 3+ character PER span only when the tagger glued the next word
# to a name (张三在北京, 李华去了): 10 of the ~17,900 such names in the training corpora
# end in one of them, most of those annotation slips (何平等).
NOT_NAME_FINAL = frozenset("在说是的了去到将也就对向从被把给等还又再已与")

# Area words People's Daily and MSRA never count as part of a place (中东地区 is 中东 +
# 地区, 汉水流域 is 汉水 + 流域): none of their train-split LOC spans ends in one, 74 stand
# right before one. CLUENER's addresses keep them, and the tagger learnt that too.
AREA_WORDS = (
    "地区", "流域", "一带", "南郊", "北郊", "东郊", "西郊", "境内", "沿岸", "边境", "山区",
    "海域", "上空", "东部", "西部", "南部", "北部", "中部", "全境", "各地", "城区", "郊区",
    "农村",
)  # fmt: skip


def place_end(text: str, start: int, end: int) -> int:
    """End of the place ``text[start:end]`` without a final area word, if two or more
    characters remain."""
    name = text[start:end]
    for word in AREA_WORDS:
        if name.endswith(word) and len(name) - len(word) >= 2:
            return end - len(word)
    return end


class WordOffsets:
    """Start offsets of the jieba words of one text, for the ungluing rule."""

    __slots__ = ("starts", "tagged")

    def __init__(self, tagged: Sequence[tuple[str, str]]) -> None:
        self.tagged = tagged
        self.starts = [0, *accumulate(len(w) for w, _ in tagged)]

    def unglued_end(self, text: str, start: int, end: int) -> int | None:
        """Where the place name that ``text[start:end]`` starts with ends, when the span
        is that place glued to ordinary words; ``None`` when the span should stay."""
        if (
            end - start < 3
            or text[end - 1] in _SINGLE_CUES
            or text.endswith(_LONG_CUES, start, end)
        ):
            return None
        i = bisect_left(self.starts, start)
        if i >= len(self.tagged) or self.starts[i] != start or self.tagged[i][1] not in _PLACE_TAGS:
            return None
        place_end = self.starts[i + 1]
        if place_end >= end:
            return None
        j = i + 1
        while j < len(self.tagged) and self.starts[j] < end:
            if self.tagged[j][1] in _NAME_PART_TAGS:
                return None
            j += 1
        return place_end
