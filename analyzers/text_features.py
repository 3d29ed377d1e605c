"""Hashed character n-gram features, vectorised over a whole batch with numpy.

Training (scikit-learn) and inference (numpy only) both call :func:`char_ngram_features`,
so the model sees exactly the features it was trained on. Hashing is a fixed integer mix
(splitmix64) of the code points, never Python's ``hash()``, which is randomised per
process: the same text gets the same features in every process and on every machine.

The work per text is a handful of numpy operations over its code points, so a
2,000-character document costs about as much as a few short ones; there is no
per-character Python loop.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_SEPARATOR = 0  # code point placed between texts; removed from the texts themselves
_BITS_PER_CHAR = 21  # Unicode code points fit in 21 bits, so up to 3 chars pack into a uint64
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def normalize(text: str) -> str:
    """NFKC (full-width to half-width, compatibility forms), lower case, no NULs."""
    return unicodedata.normalize("NFKC", text).lower().replace("\x00", " ")


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


@dataclass(frozen=True, slots=True)
class SparseRows:
    """A sparse document-by-bucket matrix as coordinate triples (rows sorted)."""

    n_rows: int
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def char_ngram_ids(
    texts: Sequence[str], *, max_order: int, bits: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row, bucket) of every character n-gram occurrence, orders 1..max_order (≤ 5).

    Texts must already be normalised. An n-gram never spans two texts.
    """
    if not 1 <= max_order <= 5:
        raise ValueError("max_order must be between 1 and 5")
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    if lengths.sum() == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    joined = "\x00".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    row_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths + 1)[: cps.size]
    is_sep = cps == _SEPARATOR
    n = cps.size
    shift = np.uint64(64 - bits)
    all_rows: list[npt.NDArray[np.int64]] = []
    all_ids: list[npt.NDArray[np.int64]] = []
    key = np.zeros(n, dtype=np.uint64)
    bad = np.zeros(n, dtype=bool)
    for order in range(1, max_order + 1):
        # Extend each window starting at i by one character: key packs the code points, so
        # n-grams of different orders (or different chars) can never share a key.
        span = n - order + 1
        if span <= 0:
            break
        nxt = cps[order - 1 : order - 1 + span]
        if order <= 3:
            key = (key[:span] << np.uint64(_BITS_PER_CHAR)) | nxt
        else:
            # Past 3 chars the packed key would overflow 64 bits: chain the hash instead.
            key = _splitmix64(key[:span] + np.uint64(order)) ^ nxt
        bad = bad[:span] | is_sep[order - 1 : order - 1 + span]
        good = ~bad
        all_rows.append(row_of[:span][good])
        all_ids.append((_splitmix64(key[good]) >> shift).astype(np.int64))
    return np.concatenate(all_rows), np.concatenate(all_ids)


def tfidf_rows(
    n_rows: int,
    rows: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
    *,
    bits: int,
    idf: npt.NDArray[np.floating] | None,
) -> SparseRows:
    """Sublinear TF (1 + log count) times IDF, each row scaled to unit L2 norm."""
    if rows.size == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        return SparseRows(n_rows, empty_i, empty_i, np.zeros(0, dtype=np.float64))
    keys, counts = np.unique((rows << np.int64(bits)) | ids, return_counts=True)
    u_rows = keys >> np.int64(bits)
    u_cols = keys & np.int64((1 << bits) - 1)
    values = 1.0 + np.log(counts.astype(np.float64))
    if idf is not None:
        values *= idf[u_cols]
    norms = np.sqrt(np.bincount(u_rows, weights=values * values, minlength=n_rows))
    values /= np.maximum(norms[u_rows], 1e-12)
    return SparseRows(n_rows, u_rows, u_cols, values)


def char_ngram_features(
    texts: Sequence[str],
    *,
    max_order: int,
    bits: int,
    idf: npt.NDArray[np.floating] | None,
) -> SparseRows:
    """Normalised TF-IDF rows of hashed character 1..max_order-grams of raw texts."""
    normalized = [normalize(t) for t in texts]
    rows, ids = char_ngram_ids(normalized, max_order=max_order, bits=bits)
    return tfidf_rows(len(texts), rows, ids, bits=bits, idf=idf)
