"""Named entities (PER / LOC / ORG) from any Hugging Face token-classification model.

Tag schemes: BIO / IOB2 (``B-PER``), BIOES / BMES (``S-LOC``, ``E-ORG``, ``M-ORG``), BILOU
and plain IO (``PER``). Type names are mapped through common aliases (PERSON, NR, GPE, NS,
ORGANIZATION, NT, CLUENER's name/address/company/government...); any other type is dropped.
Spans are character offsets into the original text, from the fast tokenizer's offset
mapping. A word split into several word pieces takes the tag of its first piece.

Decoding is vectorised over the whole batch (numpy over tag ids and offsets, see
:func:`decode_batch`): with a fast tokenizer and a small model, a per-token Python loop
cost more than the model itself.

Long texts are not truncated: they are cut into windows of ``max_length`` tokens that
overlap by a quarter of a window, and each token keeps the prediction of the window in
which it lies farthest from an edge (where the model sees the most context). Entities
crossing a window boundary therefore come out whole.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForTokenClassification

from analyzers.config import TransformersConfig
from analyzers.transformers_runtime import (
    BatchedForward,
    ChunkPrefetch,
    load_model,
    prefetch_chunk,
)
from schemas.results import Entity

_TYPE_ALIASES: dict[str, str] = {
    "PER": "PER",
    "PERSON": "PER",
    "PERS": "PER",
    "PRS": "PER",
    "NR": "PER",
    "NAME": "PER",
    "LOC": "LOC",
    "LOCATION": "LOC",
    "GPE": "LOC",
    "NS": "LOC",
    "ADDRESS": "LOC",
    "SCENE": "LOC",
    "CONT": "LOC",
    "ORG": "ORG",
    "ORGANIZATION": "ORG",
    "ORGANISATION": "ORG",
    "NT": "ORG",
    "COMPANY": "ORG",
    "GOVERNMENT": "ORG",
    "EDU": "ORG",
}
# Tag prefixes: B(egin)/I(nside)/M(iddle)/E(nd)/L(ast)/S(ingle)/U(nit).
_PREFIX_ROLES = {"B": "B", "I": "I", "M": "I", "E": "E", "L": "E", "S": "S", "U": "S"}


@dataclass(frozen=True, slots=True)
class TagRole:
    """What one model label means: a role (B/I/E/S, or O) and an entity type."""

    role: str
    type: str | None


OUTSIDE = TagRole("O", None)


def parse_tag(label: str) -> TagRole:
    """``B-PER`` -> (B, PER); ``S-NR`` -> (S, PER); ``PER`` -> (I, PER); others -> O."""
    text = label.strip()
    role = "I"
    if len(text) > 2 and text[1] in "-_" and text[0].upper() in _PREFIX_ROLES:
        role = _PREFIX_ROLES[text[0].upper()]
        text = text[2:]
    elif text.upper() in {"O", ""}:
        return OUTSIDE
    base, _, kind = text.upper().partition(".")
    # Weibo NER marks nominal mentions ("PER.NOM": "the teacher"): not named entities.
    if kind == "NOM":
        return OUTSIDE
    mapped = _TYPE_ALIASES.get(base)
    return TagRole(role, mapped) if mapped is not None else OUTSIDE


# Role codes of the vectorised decoder (index = TagRole.role).
_ROLE_CODES = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4}


@dataclass(frozen=True, slots=True)
class LabelTable:
    """Per model label: its role code and entity-type code (-1: no entity), as arrays."""

    roles: npt.NDArray[np.int8]
    types: npt.NDArray[np.int16]
    type_names: tuple[str, ...]

    @classmethod
    def of(cls, roles: Sequence[TagRole]) -> LabelTable:
        names = tuple(sorted({r.type for r in roles if r.type is not None}))
        return cls(
            roles=np.array([_ROLE_CODES[r.role] for r in roles], dtype=np.int8),
            types=np.array(
                [-1 if r.type is None else names.index(r.type) for r in roles], dtype=np.int16
            ),
            type_names=names,
        )


@dataclass(frozen=True, slots=True)
class TaggedWindows:
    """Every window of a batch, token by token, flattened: which text and window each
    token is in, its character span, its word index (-1: special token) and its label."""

    texts: Sequence[str]
    window_text: npt.NDArray[np.int64]  # per window: its text's index
    window_length: npt.NDArray[np.int64]  # per window: its tokens
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    words: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]


def decode_batch(tagged: TaggedWindows, table: LabelTable) -> list[list[Entity]]:
    """Entity spans of every text, from its windows' tagged tokens, with numpy over the
    whole batch (no Python per token).

    The rules: special tokens and empty spans are dropped; a text cut into overlapping
    windows keeps, for each token (by character span), the window in which it lies
    farthest from an edge, ties to the earlier window; a word takes the tag of its first
    piece and spans its pieces; a typed word starts an entity unless it continues the
    previous word's: same type, role I or E, and the previous word not an E or S."""
    found: list[list[Entity]] = [[] for _ in tagged.texts]
    windows = len(tagged.window_length)
    if windows == 0 or len(tagged.starts) == 0:
        return found
    window_of = np.repeat(np.arange(windows), tagged.window_length)
    keep = (tagged.words >= 0) & (tagged.ends > tagged.starts)
    kept = np.flatnonzero(keep)
    window = window_of[kept]
    text = tagged.window_text[window]
    starts, ends = tagged.starts[kept], tagged.ends[kept]
    # Position of each kept token among its window's kept tokens, and their count.
    kept_per_window = np.bincount(window, minlength=windows)
    first_kept = np.cumsum(kept_per_window) - kept_per_window
    position = np.arange(len(kept)) - first_kept[window]
    centrality = np.minimum(position, kept_per_window[window] - 1 - position)

    windows_per_text = np.bincount(tagged.window_text, minlength=len(tagged.texts))
    multi = windows_per_text[text] > 1
    order = np.flatnonzero(~multi)
    merged = np.flatnonzero(multi)
    if len(merged):
        # Best window per (text, span): most central first, then the earlier window.
        by = np.lexsort(
            (window[merged], -centrality[merged], ends[merged], starts[merged], text[merged])
        )
        merged = merged[by]
        first = np.ones(len(merged), dtype=bool)
        first[1:] = (
            (text[merged[1:]] != text[merged[:-1]])
            | (starts[merged[1:]] != starts[merged[:-1]])
            | (ends[merged[1:]] != ends[merged[:-1]])
        )
        merged = merged[first]
        # Single-window texts keep their token order, merged ones their (start, end)
        # order; a stable sort by text interleaves the two by text.
        order = np.concatenate([order, merged])
        order = order[np.argsort(text[order], kind="stable")]
    if len(order) == 0:
        return found

    text = text[order]
    starts, ends = starts[order], ends[order]
    words = tagged.words[kept][order]
    labels = tagged.labels[kept][order]
    count = len(order)
    new_text = np.ones(count, dtype=bool)
    new_text[1:] = text[1:] != text[:-1]
    new_word = new_text.copy()
    new_word[1:] |= words[1:] != words[:-1]

    heads = np.flatnonzero(new_word)  # each word's first piece
    word_text = text[heads]
    word_start = starts[heads]
    word_end = ends[np.append(heads[1:], count) - 1]  # its last piece's end
    role = table.roles[labels[heads]]
    kind = table.types[labels[heads]]
    typed = kind >= 0
    first_of_text = new_text[heads]
    prev_typed = np.zeros_like(typed)
    prev_typed[1:] = typed[:-1]
    prev_kind = np.full_like(kind, -1)
    prev_kind[1:] = kind[:-1]
    prev_role = np.zeros_like(role)
    prev_role[1:] = role[:-1]
    continues = (
        ~first_of_text
        & prev_typed
        & (prev_kind == kind)
        & ((role == _ROLE_CODES["I"]) | (role == _ROLE_CODES["E"]))
        & (prev_role != _ROLE_CODES["E"])
        & (prev_role != _ROLE_CODES["S"])
    )
    begins = np.flatnonzero(typed & ~continues)
    if len(begins) == 0:
        return found
    # An entity runs from its first word to the last of the continuing words after it.
    next_continues = np.zeros_like(continues)
    next_continues[:-1] = continues[1:]
    lasts = np.flatnonzero(typed & ~next_continues)
    names = table.type_names
    source = tagged.texts
    construct = Entity.model_construct
    with _collector_paused():
        for t, s, e, k in zip(
            word_text[begins].tolist(),
            word_start[begins].tolist(),
            word_end[lasts].tolist(),
            kind[begins].tolist(),
            strict=True,
        ):
            # Built without validation: offsets are non-negative ints by construction,
            # and validating every entity cost more than finding them.
            found[t].append(construct(text=source[t][s:e], type=names[k], start=s, end=e))
    return found


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Entities hold no reference cycles (reference counting frees them), but each one is
    three tracked allocations, and the collections they trigger walk every live object,
    the tokenizer's output included: measured, that was more than half of decoding a
    batch of a random-weight model (an entity every other token)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=-1)


class TransformersEntityRecognizer:
    """The ``entities`` stage backed by a token-classification model."""

    name = "entities"

    def __init__(self, config: TransformersConfig) -> None:
        self.config = config
        self.loaded = load_model(
            config, AutoModelForTokenClassification, require_fast_tokenizer=True
        )
        self.version = f"transformers:{self.loaded.version}"
        self.roles = label_roles(self.loaded.id2label)
        self.table = LabelTable.of(self.roles)
        self._forward = BatchedForward(self.loaded, config.batch_size, config.batch_tokens)
        self.prefetch = ChunkPrefetch(prefetch_chunk(config.batch_size))
        tokenizer = self.loaded.tokenizer
        content = self.loaded.max_length - tokenizer.num_special_tokens_to_add(pair=False)
        self._stride = max(0, content // 4)

    def warm_up(self) -> None:
        """Dummy batches of every length bucket, before the first real one."""
        self._forward.warm_up(_argmax)

    def encode(self, texts: Sequence[str]) -> Any:
        """One fast batch call; long texts cut into overlapping windows."""
        return self.loaded.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.loaded.max_length,
            stride=self._stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )

    def tag(self, texts: Sequence[str], encoded: Any) -> TaggedWindows:
        """Run the model over ``encoded`` (of ``texts``): every window's tokens with
        their predicted labels."""
        labels = self._forward.run(encoded["input_ids"], _argmax)
        return tagged_windows(texts, encoded, labels)

    def _entities(self, texts: Sequence[str], encoded: Any) -> list[list[Entity]]:
        return decode_batch(self.tag(texts, encoded), self.table)

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[Entity]]:
        if not texts:
            return []
        return self.prefetch.map(texts, self.encode, self._entities)


def tagged_windows(
    texts: Sequence[str], encoded: Any, labels: Sequence[npt.NDArray[Any]]
) -> TaggedWindows:
    """Flatten a fast tokenizer's batch output (with overflowing windows) and the labels
    predicted for each window into arrays."""
    windows: list[list[int]] = encoded["input_ids"]
    offsets = np.array(
        list(chain.from_iterable(encoded["offset_mapping"])), dtype=np.int64
    ).reshape(-1, 2)
    # Special tokens have no word (None): float conversion turns them into NaN in C.
    words = np.array(
        list(chain.from_iterable(e.word_ids for e in encoded.encodings)), dtype=np.float64
    )
    return TaggedWindows(
        texts=texts,
        window_text=np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64),
        window_length=np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows)),
        starts=offsets[:, 0],
        ends=offsets[:, 1],
        words=np.where(np.isnan(words), -1, words).astype(np.int64),
        labels=(np.concatenate(labels).astype(np.int64) if labels else np.empty(0, dtype=np.int64)),
    )


def label_roles(id2label: Mapping[int, str]) -> list[TagRole]:
    return [parse_tag(id2label[i]) for i in range(len(id2label))]
