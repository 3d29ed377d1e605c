"""Constrained Viterbi decoding of BIO / BIOES tag sequences, batched and region-restricted.

Most characters of real text are clearly outside any entity. A character whose ``O``
emission beats every other tag by ``margin`` is fixed to ``O``; only the runs between
such characters (short candidate regions) are decoded, all regions of a batch at once,
grouped by padded length. The Python loop therefore runs over region lengths (a few
dozen steps), never over the characters of a long document.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

NEG = np.float32(-1e9)


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
            if prefix in ("O", "B", "S"):
                ok = closes
            else:  # I or E continue an open entity of the same kind
                ok = p_prefix in ("B", "I") and p_kind == kind
            if ok:
                trans[i, j] = 0.0
    return trans, first, last


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
        free = ~boundary & (emissions[:, o] - other <= self.margin)
        if not free.any():
            return out
        edges = np.diff(np.concatenate(([0], free.view(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        lengths = ends - starts
        # Entry/exit scores: from/to the fixed O neighbour, or nothing at a text edge.
        prev_boundary = boundary[np.maximum(starts - 1, 0)] | (starts == 0)
        next_boundary = boundary[np.minimum(ends, n - 1)] | (ends >= n)
        enter = np.where(prev_boundary[:, None], self._first, trans[o][None, :])
        leave = np.where(next_boundary[:, None], self._last, trans[:, o][None, :])
        padded = 1 << np.ceil(np.log2(lengths)).astype(np.int64)
        for size in np.unique(padded):
            group = np.flatnonzero(padded == size)
            self._decode_group(
                emissions, out, starts[group], lengths[group], int(size), enter[group], leave[group]
            )
        return out

    def _decode_group(
        self,
        emissions: F32,
        out: I64,
        starts: I64,
        lengths: I64,
        size: int,
        enter: F32,
        leave: F32,
    ) -> None:
        trans = self._trans
        n_tags = trans.shape[0]
        n_regions = starts.shape[0]
        steps = np.arange(size)
        pos = np.minimum(starts[:, None] + steps[None, :], emissions.shape[0] - 1)
        em = emissions[pos]  # (R, size, T)
        rows = np.arange(n_regions)
        identity = np.broadcast_to(np.arange(n_tags), (n_regions, n_tags))
        back = np.empty((n_regions, size, n_tags), dtype=np.int64)
        score = em[:, 0, :] + enter
        for t in range(1, size):
            cand = score[:, :, None] + trans[None, :, :]
            best = cand.argmax(axis=1)
            new = cand.max(axis=1) + em[:, t, :]
            live = (t < lengths)[:, None]
            score = np.where(live, new, score)
            back[:, t, :] = np.where(live, best, identity)
        tag = (score + leave).argmax(axis=1)
        path = np.empty((n_regions, size), dtype=np.int64)
        for t in range(size - 1, 0, -1):
            path[:, t] = tag
            tag = back[rows, t, tag]
        path[:, 0] = tag
        valid = steps[None, :] < lengths[:, None]
        out[pos[valid]] = path[valid]
