"""English named entities (PER / LOC / ORG) with a token-level linear-chain CRF.

The classic CoNLL-2003 recipe (word, shape, case, affixes, a ±2 token window, a gazetteer
built from the training data, sentence-initial and all-caps-text flags), trained by
``scripts/train_entities_en.py`` on CoNLL-2003 and exported into the same fingerprinted
hash table and constrained Viterbi that the Chinese tagger uses (``analyzers.ner_features``,
``analyzers.viterbi``). MISC is a training tag only: it keeps nationalities and events out
of the other types and is dropped from the output.

Per token only two dictionary lookups run in Python (the token's cached row of hashed
"atoms": normalised word, shapes, affixes); every feature key is then combined from those
rows by numpy over the whole batch, as for Chinese.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analyzers.ner_features import HashedWeights, _hash_key, _shift
from analyzers.viterbi import RegionViterbi

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
EnSpan = tuple[int, int, str]

KINDS = ("PER", "LOC", "ORG", "MISC")
TAGS = ["O"] + [f"{p}-{k}" for k in KINDS for p in ("B", "I")]
OUTPUT_KINDS = frozenset({"PER", "LOC", "ORG"})
# Sentinel tokens between texts: the widest window is ±2 tokens.
PAD = 2
GAZ_MAX_TOKENS = 6

# CoNLL's tokenisation: punctuation split off, clitics ('s, n't) separate, abbreviations
# (U.S., Mr.) and hyphenated or dotted numbers kept whole.
_ABBREV = (
    r"(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Corp|Co|Ltd|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Mt|No|vs)\."
)
TOKEN = re.compile(
    rf"{_ABBREV}(?![A-Za-z])"
    r"|(?:[A-Za-z]\.){2,}"
    r"|[A-Z]\.(?![A-Za-z])"  # an initial: "P. Simmons"
    r"|\.?\d+(?:[.,:/-]\d+)*"
    r"|[^\W_]+(?:[-&][^\W_]+)*(?:['’](?!(?:s|t|d|ll|re|ve|m)\b)[^\W_]+)*"
    r"|['’](?:s|t|d|ll|re|ve|m)\b"
    r"|\S"
)
_SENTENCE_END = frozenset({".", "!", "?"})
# Tokens that still belong to the sentence a full stop ended.
_CLOSING = frozenset({".", "!", "?", '"', "'", ")", "]", "”", "’"})

# Atom columns of a token's row.
A_NORM, A_EXACT, A_SHAPE, A_SHORT, A_P1, A_P2, A_P3, A_P4, A_S1, A_S2, A_S3, A_S4 = range(12)
A_FINE, A_COARSE = 12, 13  # word clusters (0 when unknown)
N_ATOMS = 14
Clusters = Mapping[str, tuple[int, int]]
_DIGIT = re.compile(r"\d")


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (unlike ``hash``)."""
    raw = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def _shape(word: str) -> str:
    out = []
    for ch in word:
        if ch.isupper():
            out.append("X")
        elif ch.isalpha():
            out.append("x")
        elif ch.isdigit():
            out.append("d")
        else:
            out.append(ch)
    return "".join(out)


def _short_shape(shape: str) -> str:
    out: list[str] = []
    for ch in shape:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


def cluster_of(word: str, clusters: Clusters) -> tuple[int, int]:
    """(fine, coarse) cluster ids + 1 of a word, trying its capitalised and lower-case
    forms for words the cluster vocabulary has only in another case (headlines)."""
    found = clusters.get(word) or clusters.get(word.capitalize()) or clusters.get(word.lower())
    return (found[0] + 1, found[1] + 1) if found else (0, 0)


def token_atoms(word: str, clusters: Clusters | None = None) -> tuple[int, ...]:
    """The hashed per-token attributes every feature template is built from."""
    norm = _DIGIT.sub("0", word.lower())
    shape = _shape(word)
    short = _short_shape(shape)
    long_shape = shape if len(shape) <= 8 else shape[:4] + "~" + shape[-4:]
    parts = [
        "n" + norm,
        "e" + word,
        "h" + long_shape,
        "s" + short,
        *(f"p{k}{norm[:k]}" for k in range(1, 5)),
        *(f"x{k}{norm[-k:]}" for k in range(1, 5)),
    ]
    fine, coarse = cluster_of(word, clusters) if clusters else (0, 0)
    return (*(stable_hash(p) for p in parts), fine, coarse)


class AtomTable:
    """Token -> row of atoms, computed once per distinct token and cached.

    The cache is bounded: when it is full it starts over, so hostile input with endless
    distinct tokens costs memory only up to the bound."""

    def __init__(self, capacity: int = 200_000, clusters: Clusters | None = None) -> None:
        self.capacity = capacity
        self.clusters = clusters
        self._index: dict[str, int] = {}
        # Row 0 is the sentinel token between texts (all atoms zero).
        self._rows = np.zeros((1024, N_ATOMS), dtype=np.uint64)
        self._size = 1

    def rows(self, tokens: Sequence[str]) -> I64:
        if len(self._index) + len(tokens) > self.capacity:
            self._index.clear()
            self._size = 1
        index = self._index
        out = np.fromiter(
            (index[t] if t in index else self._add(t) for t in tokens),
            dtype=np.int64,
            count=len(tokens),
        )
        return out

    def _add(self, token: str) -> int:
        if self._size == self._rows.shape[0]:
            grown = np.zeros((self._rows.shape[0] * 2, N_ATOMS), dtype=np.uint64)
            grown[: self._size] = self._rows[: self._size]
            self._rows = grown
        row = self._size
        self._rows[row] = token_atoms(token, self.clusters)
        self._index[token] = row
        self._size += 1
        return row

    def atoms(self, ids: I64) -> U64:
        out: U64 = self._rows[ids]
        return out


@dataclass(frozen=True, slots=True)
class TokenGazetteer:
    """Known entity names as sorted 64-bit keys of their normalised token sequences."""

    keys: U64
    kinds: npt.NDArray[np.uint8]  # bit k: seen as KINDS[k]

    @classmethod
    def build(cls, names: dict[tuple[str, ...], int]) -> TokenGazetteer:
        """From (normalised tokens) -> kind bit mask."""
        if not names:
            return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint8))
        keys: dict[int, int] = {}
        for tokens, bits in names.items():
            if not 1 <= len(tokens) <= GAZ_MAX_TOKENS:
                continue
            norms = np.array([token_atoms(t)[A_NORM] for t in tokens], dtype=np.uint64)
            key = int(_ngram_key(norms[:, None], len(tokens))[0, 0]) if len(tokens) else 0
            keys[key] = keys.get(key, 0) | bits
        ordered = sorted(keys)
        return cls(
            np.array(ordered, dtype=np.uint64),
            np.array([keys[k] for k in ordered], dtype=np.uint8),
        )

    def match_codes(self, norm: U64, capital: npt.NDArray[np.bool_]) -> I64:
        """Per token and kind: 0 none, 1 begin, 2 inside, 3 last, 4 single-token name.

        Only names whose first token is capitalised (or a digit) match, so that "us"
        does not light up as "US". Longer matches overwrite shorter ones."""
        n = norm.shape[0]
        codes = np.zeros((n, len(KINDS)), dtype=np.int64)
        if self.keys.size == 0:
            return codes
        for size in range(1, GAZ_MAX_TOKENS + 1):
            if size > n:
                break
            keys = _ngram_key(norm[:, None], size)[:, 0]
            pos = np.searchsorted(self.keys, keys)
            pos = np.minimum(pos, self.keys.size - 1)
            hit = (self.keys[pos] == keys) & capital[: keys.shape[0]]
            starts = np.flatnonzero(hit)
            if starts.size == 0:
                continue
            bits = self.kinds[pos[starts]]
            for k in range(len(KINDS)):
                s = starts[(bits & (1 << k)) != 0]
                if s.size == 0:
                    continue
                if size == 1:
                    codes[s, k] = 4
                    continue
                codes[s, k] = 1
                for j in range(1, size - 1):
                    codes[s + j, k] = 2
                codes[s + size - 1, k] = 3
        return codes


_M1 = np.uint64(0x9E3779B97F4A7C15)


def _ngram_key(norm: U64, size: int) -> U64:
    """Key of the ``size`` tokens starting at each index (first len - size + 1 rows)."""
    m = norm.shape[0] - size + 1
    acc = np.full(norm[:m].shape, np.uint64(size * 0x2545F491), dtype=np.uint64)
    for j in range(size):
        acc ^= norm[j : j + m]
        acc *= _M1
    out: U64 = acc ^ (acc >> np.uint64(31))
    return out


@dataclass(frozen=True, slots=True)
class Tokens:
    """A batch of tokenised texts laid out in one array with PAD sentinels around each."""

    ids: I64  # atom-table row per position (0 at sentinels)
    owner: I64  # text index per position (-1 at sentinels)
    starts: I64  # character offset of each token in its text
    ends: I64
    initial: npt.NDArray[np.bool_]  # first token of a sentence
    caps_text: npt.NDArray[np.bool_]  # the token's text is written in capitals
    capital: npt.NDArray[np.bool_]  # token starts with an upper-case letter or a digit


def tokenize(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(text)]


class EnglishFeatures:
    """Feature keys of every token position: templates combined from atom rows."""

    def __init__(self, gazetteer: TokenGazetteer, table: AtomTable | None = None) -> None:
        self.gazetteer = gazetteer
        self.table = table or AtomTable()

    def layout(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None = None
    ) -> Tokens:
        spans = spans if spans is not None else [tokenize(t) for t in texts]
        words: list[str] = []
        owner: list[int] = [-1] * PAD
        starts: list[int] = [0] * PAD
        ends: list[int] = [0] * PAD
        initial: list[bool] = [False] * PAD
        caps: list[bool] = [False] * PAD
        words.extend([""] * PAD)
        for i, (text, toks) in enumerate(zip(texts, spans, strict=True)):
            letters = [c for c in text if c.isalpha()]
            upper = sum(1 for c in letters if c.isupper())
            is_caps = len(letters) >= 8 and upper > 0.7 * len(letters)
            previous = "."
            last = ""
            for s, e in toks:
                word = text[s:e]
                if last in _SENTENCE_END and word not in _CLOSING:
                    # A sentence boundary inside a text: decoded and featurised apart, as
                    # the one-sentence training rows were (else "Lisbon. The" is a name).
                    words.extend([""] * PAD)
                    owner.extend([-1] * PAD)
                    starts.extend([0] * PAD)
                    ends.extend([0] * PAD)
                    initial.extend([False] * PAD)
                    caps.extend([False] * PAD)
                last = word
                words.append(word)
                owner.append(i)
                starts.append(s)
                ends.append(e)
                initial.append(previous in _SENTENCE_END)
                caps.append(is_caps)
                if word not in ('"', "'", "(", "``"):
                    previous = word
            words.extend([""] * PAD)
            owner.extend([-1] * PAD)
            starts.extend([0] * PAD)
            ends.extend([0] * PAD)
            initial.extend([False] * PAD)
            caps.extend([False] * PAD)
        ids = self.table.rows(words)
        ids[np.asarray(owner) < 0] = 0
        first = np.fromiter((w[:1] for w in words), dtype="<U1", count=len(words))
        capital = np.char.isupper(first) | np.char.isdigit(first)
        return Tokens(
            ids=ids,
            owner=np.asarray(owner, dtype=np.int64),
            starts=np.asarray(starts, dtype=np.int64),
            ends=np.asarray(ends, dtype=np.int64),
            initial=np.asarray(initial, dtype=bool),
            caps_text=np.asarray(caps, dtype=bool),
            capital=capital,
        )

    def key_columns(self, tokens: Tokens) -> list[U64]:
        a = self.table.atoms(tokens.ids)
        norm = a[:, A_NORM]
        short = a[:, A_SHORT]
        n = {k: _shift(norm, k) for k in (-2, -1, 1, 2)}
        n[0] = norm
        sh = {k: _shift(short, k) for k in (-1, 1)}
        sh[0] = short
        gaz = self.gazetteer.match_codes(norm, tokens.capital)
        gaz_all = (gaz[:, 0] * 125 + gaz[:, 1] * 25 + gaz[:, 2] * 5 + gaz[:, 3]).astype(np.uint64)
        flags = tokens.initial.astype(np.uint64) + 2 * tokens.caps_text.astype(np.uint64)
        zeros = np.zeros(norm.shape[0], dtype=np.uint64)
        cols = [
            _hash_key(100, zeros),
            _hash_key(101, n[0]),
            _hash_key(102, n[-1]),
            _hash_key(103, n[1]),
            _hash_key(104, n[-2]),
            _hash_key(105, n[2]),
            _hash_key(106, n[-1], n[0]),
            _hash_key(107, n[0], n[1]),
            _hash_key(108, a[:, A_EXACT]),
            _hash_key(109, a[:, A_SHAPE]),
            _hash_key(110, sh[0]),
            _hash_key(111, sh[-1], sh[0]),
            _hash_key(112, sh[0], sh[1]),
            _hash_key(113, sh[-1], sh[0], sh[1]),
            *(_hash_key(114 + j, a[:, A_P1 + j]) for j in range(4)),
            *(_hash_key(118 + j, a[:, A_S1 + j]) for j in range(4)),
            _hash_key(122, flags, sh[0]),
            _hash_key(123, flags, n[0]),
            _hash_key(124, gaz_all),
            _hash_key(125, gaz_all, sh[0]),
            _hash_key(126, _shift(gaz_all, -1), gaz_all, _shift(gaz_all, 1)),
            _hash_key(127, n[-1], sh[0]),
            _hash_key(128, sh[0], n[1]),
        ]
        if self.table.clusters:
            fine, coarse = a[:, A_FINE], a[:, A_COARSE]
            cols += [
                _hash_key(129, fine),
                _hash_key(130, _shift(fine, -1)),
                _hash_key(131, _shift(fine, 1)),
                _hash_key(132, coarse, sh[0]),
                _hash_key(133, _shift(coarse, -1), coarse, _shift(coarse, 1)),
                _hash_key(134, coarse, n[-1]),
            ]
        return cols


class EnglishEntityTagger:
    """Texts -> (start, end, type) spans, batched."""

    def __init__(
        self, features: EnglishFeatures, weights: HashedWeights, decoder: RegionViterbi
    ) -> None:
        self.features = features
        self.weights = weights
        self.decoder = decoder
        tags = decoder.tags
        self._begins = np.array([t.startswith("B-") for t in tags])
        self._inside = np.array([t != "O" for t in tags])
        self._continues = np.array([t.startswith("I-") for t in tags])
        self._kinds = [t.partition("-")[2] for t in tags]

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, npt.NDArray[np.generic]], margin: float = 6.0
    ) -> EnglishEntityTagger:
        gazetteer = TokenGazetteer(
            keys=arrays["gaz_keys"].astype(np.uint64), kinds=arrays["gaz_kinds"].astype(np.uint8)
        )
        weights = HashedWeights(
            slot_rows=arrays["slot_rows"].astype(np.int32),
            slot_fingerprints=arrays["slot_fingerprints"].astype(np.uint16),
            rows=arrays["rows"].astype(np.float32),
        )
        decoder = RegionViterbi(
            tags=[str(t) for t in arrays["tags"]],
            transitions=arrays["transitions"].astype(np.float32),
            margin=margin,
        )
        clusters = None
        if "cluster_words" in arrays:
            names = arrays["cluster_words"].astype(np.uint8).tobytes().decode("utf-8").split("\n")
            ids = arrays["cluster_ids"].astype(np.int64).tolist()
            clusters = {w: (f, c) for w, (f, c) in zip(names, ids, strict=True)}
        return cls(EnglishFeatures(gazetteer, AtomTable(clusters=clusters)), weights, decoder)

    def tag_indices(self, tokens: Tokens) -> I64:
        emissions = self.weights.emissions(self.features.key_columns(tokens))
        return self.decoder.decode(emissions, tokens.owner < 0)

    def spans_batch(self, texts: Sequence[str], *, all_kinds: bool = False) -> list[list[EnSpan]]:
        out: list[list[EnSpan]] = [[] for _ in texts]
        if not texts:
            return out
        tokens = self.features.layout(texts)
        tags = self.tag_indices(tokens)
        begin = np.flatnonzero(self._begins[tags])
        if begin.size == 0:
            return out
        continued = np.zeros(tags.shape[0], dtype=bool)
        continued[:-1] = self._continues[tags[1:]]
        last = np.flatnonzero(self._inside[tags] & ~continued)
        kinds = self._kinds
        owners = tokens.owner
        for b, e in zip(begin.tolist(), last.tolist(), strict=True):
            kind = kinds[int(tags[b])]
            if not all_kinds and kind not in OUTPUT_KINDS:
                continue
            out[int(owners[b])].append((int(tokens.starts[b]), int(tokens.ends[e]), kind))
        return out
