"""Named entities (PER / LOC / ORG) from any Hugging Face token-classification model.

Tag schemes: BIO / IOB2 (``B-PER``), BIOES / BMES (``S-LOC``, ``E-ORG``, ``M-ORG``), BILOU
and plain IO (``PER``). Type names are mapped through common aliases (PERSON, NR, GPE, NS,
ORGANIZATION, NT, CLUENER's name/address/company/government...); any other type is dropped.
Spans are character offsets into the original text, from the fast tokenizer's offset
mapping. A word split into several word pieces takes the tag of its first piece.

Long texts are not truncated: they are cut into windows of ``max_length`` tokens that
overlap by a quarter of a window, and each token keeps the prediction of the window in
which it lies farthest from an edge (where the model sees the most context). Entities
crossing a window boundary therefore come out whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForTokenClassification

from analyzers.config import TransformersConfig
from analyzers.transformers_runtime import BatchedForward, load_model
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
        self._forward = BatchedForward(self.loaded, config.batch_size)
        tokenizer = self.loaded.tokenizer
        content = self.loaded.max_length - tokenizer.num_special_tokens_to_add(pair=False)
        self._stride = max(0, content // 4)

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[Entity]]:
        if not texts:
            return []
        encoded = self.loaded.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.loaded.max_length,
            stride=self._stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        windows: list[list[int]] = encoded["input_ids"]
        labels = self._forward.run(windows, _argmax)
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
            decode_entities(
                text, tokens[0] if len(tokens) == 1 else merge_windows(tokens), self.roles
            )
            for text, tokens in zip(texts, windows_of, strict=True)
        ]


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


def label_roles(id2label: Mapping[int, str]) -> list[TagRole]:
    return [parse_tag(id2label[i]) for i in range(len(id2label))]
