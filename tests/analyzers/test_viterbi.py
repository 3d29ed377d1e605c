"""RegionViterbi edge cases that the entity tests' real texts do not reach."""

from __future__ import annotations

import numpy as np

from analyzers.viterbi import _LONG_REGION, _LONG_REGION_MARGIN, _MAX_REGION, RegionViterbi

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _decoder(margin: float = 6.0) -> RegionViterbi:
    return RegionViterbi(TAGS, np.zeros((len(TAGS), len(TAGS)), dtype=np.float32), margin)


def test_long_region_entirely_fixed_to_o_decodes_to_o() -> None:
    # A region longer than _LONG_REGION whose every O lead lies between the lower and the
    # full margin: the second cut fixes all of it, leaving no region ("好" x 500 raised
    # IndexError here).
    margin = 6.0
    n = _LONG_REGION * 4
    emissions = np.zeros((n, len(TAGS)), dtype=np.float32)
    emissions[:, 0] = margin * (_LONG_REGION_MARGIN + 1.0) / 2
    boundary = np.zeros(n, dtype=bool)
    tags = _decoder(margin).decode(emissions, boundary)
    assert tags.tolist() == [0] * n


def test_long_region_partly_fixed_still_decodes_the_rest() -> None:
    margin = 6.0
    n = _LONG_REGION * 2
    emissions = np.zeros((n, len(TAGS)), dtype=np.float32)
    emissions[:, 0] = margin * (_LONG_REGION_MARGIN + 1.0) / 2
    # Two characters that clearly are a person, inside the long region.
    emissions[10, 1] = emissions[11, 2] = 20.0
    tags = _decoder(margin).decode(emissions, np.zeros(n, dtype=bool))
    assert tags[10] == 1 and tags[11] == 2
    assert set(tags.tolist()) - {1, 2} == {0}


def test_a_region_longer_than_the_step_bound_is_decoded_in_valid_pieces() -> None:
    # No character prefers O ("北京" x 50k): the region is cut into pieces of
    # _MAX_REGION, each decoded like a text of its own, so each starts a new entity.
    n = _MAX_REGION * 3 + 5
    emissions = np.full((n, len(TAGS)), -5.0, dtype=np.float32)
    emissions[:, 2] = 1.0  # I-PER everywhere
    emissions[0, 1] = 2.0  # B-PER at the start
    tags = _decoder().decode(emissions, np.zeros(n, dtype=bool)).tolist()
    piece_starts = set(range(0, n, _MAX_REGION))
    assert [i for i, t in enumerate(tags) if t == 1] == sorted(piece_starts)
    assert all(t == 2 for i, t in enumerate(tags) if i not in piece_starts)
