"""Typed configuration of the analysis pipeline (plain data, picklable for worker pools)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.stages import stage_specs

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
    # Largest micro-batch in padded tokens (rows x the longest row): long texts go in
    # smaller batches, so a batch's memory and time stay bounded whatever the lengths.
    batch_tokens: int = 8192
    num_threads: int | None = None
    precision: Precision = "auto"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    sentiment_backend: Backend = "builtin"
    entities_backend: Backend = "builtin"
    sentiment_transformers: TransformersConfig | None = None
    entities_transformers: TransformersConfig | None = None
    keywords_top_k: int = 10
    # Result size bounds: whatever the text, a result stays far below Kafka's 1 MB.
    keywords_max_chars: int = 64
    summary_max_chars: int = 120
    entities_max_per_event: int = 1000
    entities_max_chars: int = 100
    # The stages to build: by default every declared one (built-in and added).
    enabled: tuple[str, ...] = field(default_factory=lambda: tuple(s.name for s in stage_specs()))
