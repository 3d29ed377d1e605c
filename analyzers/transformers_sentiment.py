"""Sentiment from any Hugging Face sequence-classification model.

The model's ``id2label`` is mapped onto positive / negative / neutral; several model labels
may feed one class (a 5-star model: 1-2 stars negative, 3 neutral, 4-5 positive) and their
probabilities are summed. A 2-label model gives neutral probability 0. Texts longer than
``max_length`` tokens are truncated (the head of the text is kept).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForSequenceClassification

from analyzers.config import TransformersConfig
from analyzers.transformers_runtime import (
    BatchedForward,
    ChunkPrefetch,
    load_model,
    prefetch_chunk,
)
from schemas.errors import ConfigurationError
from schemas.results import Sentiment, SentimentLabel, SentimentScores

# Column order of the aggregated probability matrix.
CLASSES: tuple[SentimentLabel, ...] = ("positive", "negative", "neutral")

_NAMED: dict[str, SentimentLabel] = {
    "positive": "positive",
    "pos": "positive",
    "正面": "positive",
    "积极": "positive",
    "正向": "positive",
    "好评": "positive",
    "negative": "negative",
    "neg": "negative",
    "负面": "negative",
    "消极": "negative",
    "负向": "negative",
    "差评": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "中性": "neutral",
    "中立": "neutral",
}
_STARS = re.compile(r"^([1-5])\s*stars?$")
_GENERIC = re.compile(r"^(?:label_)?(\d+)$")
# Generic LABEL_i names follow the common conventions: binary (SST-2 style) and
# negative / neutral / positive (e.g. cardiffnlp twitter sentiment).
_GENERIC_BY_COUNT: dict[int, tuple[SentimentLabel, ...]] = {
    2: ("negative", "positive"),
    3: ("negative", "neutral", "positive"),
}


def _named_class(label: str) -> SentimentLabel | None:
    key = label.strip().lower()
    if key in _NAMED:
        return _NAMED[key]
    stars = _STARS.match(key)
    if stars:
        count = int(stars.group(1))
        return "negative" if count <= 2 else "neutral" if count == 3 else "positive"
    return None


def sentiment_classes(id2label: Mapping[int, str]) -> list[SentimentLabel]:
    """The sentiment class of each model label, by label index."""
    count = len(id2label)
    labels = [id2label[i] for i in range(count)]
    mapped = [_named_class(label) for label in labels]
    if any(m is None for m in mapped):
        generic = [_GENERIC.match(label.strip().lower()) for label in labels]
        if count in _GENERIC_BY_COUNT and all(
            g is not None and int(g.group(1)) == i for i, g in enumerate(generic)
        ):
            return list(_GENERIC_BY_COUNT[count])
        unknown = [label for label, m in zip(labels, mapped, strict=True) if m is None]
        raise ConfigurationError(
            f"cannot map model labels {unknown} to positive/negative/neutral "
            "(rename them in the model's config.json id2label)"
        )
    found = [m for m in mapped if m is not None]
    if "positive" not in found or "negative" not in found:
        raise ConfigurationError(
            f"a sentiment model needs positive and negative labels, got {labels}"
        )
    return found


def class_matrix(classes: Sequence[SentimentLabel]) -> npt.NDArray[np.float32]:
    """(num_labels, 3) 0/1 matrix: model probabilities @ matrix = class probabilities."""
    matrix = np.zeros((len(classes), len(CLASSES)), dtype=np.float32)
    for index, cls in enumerate(classes):
        matrix[index, CLASSES.index(cls)] = 1.0
    return matrix


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def sentiments_from_probabilities(probabilities: npt.NDArray[np.float32]) -> list[Sentiment]:
    """One Sentiment per row of (n, 3) class probabilities ordered as CLASSES."""
    probs = np.clip(probabilities.astype(np.float64), 0.0, None)
    totals = probs.sum(axis=1, keepdims=True)
    probs = np.clip(probs / np.where(totals > 0, totals, 1.0), 0.0, 1.0)
    best = probs.argmax(axis=1)
    out: list[Sentiment] = []
    for row, winner in zip(probs.tolist(), best.tolist(), strict=True):
        out.append(
            Sentiment(
                label=CLASSES[winner],
                score=row[winner],
                scores=SentimentScores(positive=row[0], negative=row[1], neutral=row[2]),
            )
        )
    return out


class TransformersSentimentAnalyzer:
    """The ``sentiment`` stage backed by a sequence-classification model."""

    name = "sentiment"

    def __init__(self, config: TransformersConfig) -> None:
        self.config = config
        self.loaded = load_model(config, AutoModelForSequenceClassification)
        self.version = f"transformers:{self.loaded.version}"
        self.classes = sentiment_classes(self.loaded.id2label)
        self._to_classes = class_matrix(self.classes)
        self._forward = BatchedForward(self.loaded, config.batch_size, config.batch_tokens)
        self.prefetch = ChunkPrefetch(prefetch_chunk(config.batch_size))

    def warm_up(self) -> None:
        """Dummy batches of every length bucket, before the first real one."""
        self._forward.warm_up(_softmax)

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[Sentiment]:
        if not texts:
            return []
        return self.prefetch.map(texts, self._encode, self._classify)

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.loaded.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.loaded.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = encoded["input_ids"]
        return ids

    def _classify(self, texts: Sequence[str], ids: list[list[int]]) -> list[Sentiment]:
        rows = self._forward.run(ids, _softmax)
        probabilities = np.stack(rows).astype(np.float32) @ self._to_classes
        return sentiments_from_probabilities(probabilities)
