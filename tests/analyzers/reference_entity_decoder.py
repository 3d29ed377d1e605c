"""The per-token entity decoder the transformers backend used before it was vectorised.

Kept here, not in the product, as the reference the vectorised decoder
(analyzers/transformers_entities.py: ``decode_batch``) must match offset for offset
(tests/analyzers/test_transformers_backend.py) and as the "before" of the decoding
micro-benchmark (bench/model_stage.py --decode-bench).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzers.transformers_entities import TagRole
from schemas.results import Entity


@dataclass(slots=True)
class TaggedToken:
    """One word piece: its character span, the word it belongs to, its label index."""

    start: int
    end: int
    word: int
    label: int


@dataclass(slots=True)
class _OpenSpan:
    type: str
    start: int
    end: int
    closed_after_word: bool


def decode_entities(
    text: str, tokens: Sequence[TaggedToken], roles: Sequence[TagRole]
) -> list[Entity]:
    """Entity spans from tagged tokens sorted by position."""
    found: list[Entity] = []
    span: _OpenSpan | None = None
    previous_word = -1
    previous_in_span = False

    def close() -> None:
        nonlocal span
        if span is not None:
            found.append(
                Entity(
                    text=text[span.start : span.end], type=span.type, start=span.start, end=span.end
                )
            )
            span = None

    for token in tokens:
        if token.word == previous_word:
            # Later pieces of a word follow its first piece.
            if previous_in_span and span is not None:
                span.end = token.end
            continue
        previous_word = token.word
        if span is not None and span.closed_after_word:
            close()
        tag = roles[token.label]
        if tag.type is None:
            close()
            previous_in_span = False
            continue
        continues = span is not None and span.type == tag.type and tag.role in {"I", "E"}
        if continues and span is not None:
            span.end = token.end
        else:
            close()
            span = _OpenSpan(tag.type, token.start, token.end, closed_after_word=False)
        if tag.role in {"E", "S"} and span is not None:
            span.closed_after_word = True
        previous_in_span = True
    close()
    return found


def window_tokens(
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    labels: npt.NDArray[np.int64],
) -> list[TaggedToken]:
    """The window's text tokens (special tokens dropped), in order."""
    return [
        TaggedToken(start, end, word, label)
        for (start, end), word, label in zip(offsets, word_ids, labels.tolist(), strict=True)
        if word is not None and end > start
    ]


def merge_windows(windows: Sequence[Sequence[TaggedToken]]) -> list[TaggedToken]:
    """One token sequence from overlapping windows, each token predicted by the window in
    which it lies farthest from an edge (where the model saw the most context)."""
    kept: dict[tuple[int, int], tuple[int, TaggedToken]] = {}
    for window in windows:
        size = len(window)
        for position, token in enumerate(window):
            centrality = min(position, size - 1 - position)
            key = (token.start, token.end)
            current = kept.get(key)
            if current is None or centrality > current[0]:
                kept[key] = (centrality, token)
    return sorted((token for _, token in kept.values()), key=_position)


def _position(token: TaggedToken) -> tuple[int, int]:
    return token.start, token.end


def decode(
    texts: Sequence[str],
    encoded: Any,
    labels: Sequence[npt.NDArray[np.int64]],
    roles: Sequence[TagRole],
) -> list[list[Entity]]:
    """The old decoding of a batch: a fast tokenizer's output (with overflowing windows)
    and each window's predicted labels -> entities per text."""
    samples: list[int] = encoded["overflow_to_sample_mapping"]
    offsets: list[list[tuple[int, int]]] = encoded["offset_mapping"]
    windows_of: list[list[list[TaggedToken]]] = [[] for _ in texts]
    for window_index, sample in enumerate(samples):
        windows_of[sample].append(
            window_tokens(
                offsets[window_index], encoded.word_ids(window_index), labels[window_index]
            )
        )
    return [
        decode_entities(text, tokens[0] if len(tokens) == 1 else merge_windows(tokens), roles)
        for text, tokens in zip(texts, windows_of, strict=True)
    ]


def padding_share_micro_batches(
    order: Sequence[int], lengths: Sequence[int], size: int, token_budget: int
) -> Iterator[list[int]]:
    """The micro-batching the decoder above ran with: runs of ``order`` (longest first) of
    at most ``size`` sequences, cut before padding exceeds half of a run's cells (no token
    budget, no length buckets). The "before" of bench/model_stage.py --compare-old."""
    batch: list[int] = []
    longest = real = 0
    for index in order:
        length = lengths[index]
        if batch and (len(batch) >= size or (len(batch) + 1) * longest * 0.5 > real + length):
            yield batch
            batch = []
        if not batch:
            longest, real = length, 0
        batch.append(index)
        real += length
    if batch:
        yield batch
