"""Settings -> the analyzers' PipelineConfig (shared by the worker and the batch CLI)."""

from __future__ import annotations

from collections.abc import Iterable

from analyzers.config import PipelineConfig, TransformersConfig
from schemas.events import AnalysisName
from streams.settings import Settings


def pipeline_config(
    settings: Settings, analyses: Iterable[AnalysisName] | None = None
) -> PipelineConfig:
    def transformers(model: str | None) -> TransformersConfig | None:
        if model is None:
            return None
        return TransformersConfig(
            model=model,
            device=settings.model_device,
            batch_size=settings.model_batch_size,
            batch_tokens=settings.model_batch_tokens,
            max_length=settings.model_max_length,
            # Each pool process runs its own model: one intra-op thread each unless
            # told otherwise, or N processes x N threads oversubscribe the cores.
            num_threads=settings.torch_threads or 1,
            precision=settings.model_precision,
        )

    return PipelineConfig(
        sentiment_backend=settings.sentiment_backend,
        entities_backend=settings.entities_backend,
        sentiment_transformers=transformers(settings.sentiment_model),
        entities_transformers=transformers(settings.entities_model),
        keywords_top_k=settings.keywords_top_k,
        keywords_max_chars=settings.keywords_max_chars,
        summary_max_chars=settings.summary_max_chars,
        entities_max_per_event=settings.entities_max_per_event,
        entities_max_chars=settings.entities_max_chars,
        # None: every declared stage (events may ask for any), those plugins declared too.
        enabled=tuple(a.value for a in (AnalysisName if analyses is None else analyses)),
    )
