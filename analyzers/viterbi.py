"""Constrained Viterbi decoding of BIO / BIOES tag sequences, batched and region-restricted.

Most characters of real text are clearly outside any entity. A character whose ``O``
emission beats every other tag by ``margin`` is fixed to ``O``; only the runs between
such characters (short candidate regions) are decoded, all regions of a batch at once,
longest first. The Python loop therefore runs over the longest region's length (a few
dozen steps), never over the characters of a long document.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

NEG = np.float32(-1e9)
# Regions longer than this are cut further at characters whose O lead exceeds
# margin * _LONG_REGION_MARGIN.
_LONG_REGION = 128
_LONG_REGION_MARGIN = 0.34
# Regions decoded together from which the per-previous-tag max form is faster.
_WIDE_STEP = 48
# Regions still longer than this after the second cut (hostile text: "北京" x 50k has
# no character that prefers O) are decoded in pieces of this length, as if each piece
# were a text of its own: the step loop runs at most this many steps per decode, where
# a 16k-character region took 16k steps (1.7 s per 100k characters, 20x real text).
_MAX_REGION = 256


def tag_constraints(tags: list[str]) -> tuple[F32, F32, F32]:
    """Additive masks (0 allowed, NEG forbidden): transitions, first tag, last tag."""
    n = len(tags)
    # In BIO an entity may end after any of its tags; in BIOES only after E or S.
    bioes = any(t.startswith(("E-", "S-")) for t in tags)
    trans = np.full((n, n), NEG, dtype=np.float32)
    first = np.full(n, NEG, dtype=np.float32)
    last = np.full(n, NEG, dtype=np.float32)
    for j, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if prefix in ("O", "B", "S"):
            first[j] = 0.0
        if prefix in ("O", "E", "S") or not bioes:
            last[j] = 0.0
        for i, prev in enumerate(tags):
            p_prefix, _, p_kind = prev.partition("-")
            closes = p_prefix in ("O", "E", "S") or not bioes
            # O, B and S may follow a closed entity; I and E continue an open one.
            opens = prefix in ("O", "B", "S")
            ok = closes if opens else p_prefix in ("B", "I") and p_kind == kind
            if ok:
                trans[i, j] = 0.0
    return trans, first, last


def _cut_regions(starts: I64, lengths: I64, size: int) -> tuple[I64, I64, B, B]:
    """Regions cut into pieces of at most ``size``: starts, lengths, and whether a piece
    was cut from the one before it / from the one after it."""
    pieces = (lengths + size - 1) // size
    region = np.repeat(np.arange(starts.size), pieces)
    k = np.arange(region.size) - (np.cumsum(pieces) - pieces)[region]
    cut_starts = starts[region] + k * size
    cut_lengths = np.minimum(size, lengths[region] - k * size)
    return cut_starts, cut_lengths, k > 0, k < pieces[region] - 1


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[I64, I64]:
    """Start and end (exclusive) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


class RegionViterbi:
    def __init__(self, tags: list[str], transitions: F32, margin: float = 6.0) -> None:
        self.tags = tags
        self.transitions = transitions
        self.margin = margin
        allowed, self._first, self._last = tag_constraints(tags)
        self._trans = (transitions + allowed).astype(np.float32)
        self._o = tags.index("O")

    def decode(self, emissions: F32, boundary: npt.NDArray[np.bool_]) -> I64:
        """Best tag index per position. ``boundary`` marks sentinels between texts."""
        n = emissions.shape[0]
        o = self._o
        trans = self._trans
        out = np.full(n, o, dtype=np.int64)
        if n == 0:
            return out
        other = np.delete(emissions, o, axis=1).max(axis=1)
        o_lead = emissions[:, o] - other
        free = ~boundary & (o_lead <= self.margin)
        if not free.any():
            return out
        starts, ends = _runs(free)
        lengths = ends - starts
        if int(lengths.max()) > _LONG_REGION:
            # The step loop runs as long as the longest region: inside the rare very long
            # regions (lists of names, Latin text) characters that clearly prefer O are
            # fixed too, with a lower margin.
            region_of = np.repeat(lengths > _LONG_REGION, lengths)
            long_free = np.zeros(n, dtype=bool)
            long_free[free] = region_of
            free &= ~(long_free & (o_lead > self.margin * _LONG_REGION_MARGIN))
            starts, ends = _runs(free)
            lengths = ends - starts
            if starts.size == 0:
                # Every long region was all O at the lower margin ("好" x 500): nothing
                # left to decode (decoding no region used to raise IndexError).
                return out
        cut_before = cut_after = np.zeros(starts.size, dtype=bool)
        if int(lengths.max()) > _MAX_REGION:
            starts, lengths, cut_before, cut_after = _cut_regions(starts, lengths, _MAX_REGION)
            ends = starts + lengths
        # Entry/exit scores: from/to the fixed O neighbour, or nothing at a text edge
        # (or a cut).
        prev_boundary = boundary[np.maximum(starts - 1, 0)] | (starts == 0) | cut_before
        next_boundary = boundary[np.minimum(ends, n - 1)] | (ends >= n) | cut_after
        enter = np.where(prev_boundary[:, None], self._first, trans[o][None, :])
        leave = np.where(next_boundary[:, None], self._last, trans[:, o][None, :])
        self._decode_regions(emissions, out, starts, lengths, enter, leave)
        return out

    def _decode_regions(
        self,
        emissions: F32,
        out: I64,
        starts: I64,
        lengths: I64,
        enter: F32,
        leave: F32,
    ) -> None:
        """Viterbi over all regions at once. Regions are sorted longest first, so at step
        t the regions still running are a prefix: no padding, no masking."""
        trans = self._trans
        order = np.argsort(-lengths, kind="stable")
        starts, lengths = starts[order], lengths[order]
        enter, leave = enter[order], leave[order]
        longest = int(lengths[0])
        ascending = lengths[::-1]
        running = lengths.shape[0] - np.searchsorted(ascending, np.arange(longest), side="right")
        score = emissions[starts] + enter
        back: list[I64] = []
        for t in range(1, longest):
            k = int(running[t])
            best, best_prev = self._step(score[:k], trans)
            back.append(best_prev)
            score[:k] = best + emissions[starts[:k] + t]
        tag = (score + leave).argmax(axis=1)
        for t in range(longest - 1, 0, -1):
            k = int(running[t])
            out[starts[:k] + t] = tag[:k]
            tag[:k] = back[t - 1][np.arange(k), tag[:k]]
        out[starts] = tag

    @staticmethod
    def _step(score: F32, trans: F32) -> tuple[F32, I64]:
        """Best score of each (region, tag) over the previous tag, and that tag.

        numpy reduces a tiny axis slowly (a loop per row), so for many regions the max
        runs as one elementwise pass per previous tag instead; the first best previous
        tag wins in both forms, exactly like ``argmax``."""
        k, n_tags = score.shape
        if k < _WIDE_STEP:
            cand = score[:, :, None] + trans[None, :, :]
            return cand.max(axis=1), cand.argmax(axis=1)
        best = score[:, 0:1] + trans[0]
        best_prev = np.zeros((k, n_tags), dtype=np.int64)
        for i in range(1, n_tags):
            cand_i = score[:, i : i + 1] + trans[i]
            better = cand_i > best
            np.maximum(best, cand_i, out=best)
            best_prev[better] = i
        return best, best_prev
