"""Typed configuration of the analysis pipeline (plain data, picklable for worker pools)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["builtin", "transformers"]
# auto: bf16 where the device runs it natively, fp32 elsewhere.
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True, slots=True)
class TransformersConfig:
    """A Hugging Face model for a stage: a local directory or a hub id already cached."""

    model: str
    device: str = "cpu"
    batch_size: int = 32
    max_length: int = 256
    num_threads: int | None = None
    precision: Precision = "auto"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    sentiment_backend: Backend = "builtin"
    entities_backend: Backend = "builtin"
    sentiment_transformers: TransformersConfig | None = None
    entities_transformers: TransformersConfig | None = None
    keywords_top_k: int = 10
    summary_max_chars: int = 120
    enabled: tuple[str, ...] = field(
        default=("language", "sentiment", "keywords", "summary", "entities")
    )
