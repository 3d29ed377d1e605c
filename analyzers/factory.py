"""Builds the pipeline a worker process runs from a PipelineConfig."""

from __future__ import annotations

from typing import Any

from analyzers.base import Analyzer
from analyzers.config import PipelineConfig
from analyzers.keywords import KeywordExtractor
from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from analyzers.summary import Summarizer
from schemas.errors import ConfigurationError
from schemas.events import AnalysisName


def _sentiment(config: PipelineConfig) -> Analyzer[Any] | None:
    if config.sentiment_backend == "transformers":
        if config.sentiment_transformers is None:
            raise ConfigurationError(
                "sentiment backend 'transformers' needs CONTENTSTREAM_SENTIMENT_MODEL"
            )
        from analyzers.transformers_sentiment import TransformersSentimentAnalyzer

        return TransformersSentimentAnalyzer(config.sentiment_transformers)
    try:
        from analyzers.sentiment import SentimentAnalyzer
    except ImportError:
        return None
    return SentimentAnalyzer.load()


def _entities(config: PipelineConfig) -> Analyzer[Any] | None:
    if config.entities_backend == "transformers":
        if config.entities_transformers is None:
            raise ConfigurationError(
                "entities backend 'transformers' needs CONTENTSTREAM_ENTITIES_MODEL"
            )
        from analyzers.transformers_entities import TransformersEntityRecognizer

        return TransformersEntityRecognizer(config.entities_transformers)
    from analyzers.entities import EntityRecognizer

    try:
        return EntityRecognizer.load()
    except (FileNotFoundError, ConfigurationError):
        return None


def build_pipeline(config: PipelineConfig) -> AnalysisPipeline:
    """Every enabled stage, each built once (models load here, not per event)."""
    stages: dict[AnalysisName, Analyzer[Any]] = {}
    enabled = set(config.enabled)
    if "keywords" in enabled:
        stages[AnalysisName.KEYWORDS] = KeywordExtractor(
            top_k=config.keywords_top_k, max_chars=config.keywords_max_chars
        )
    if "summary" in enabled:
        stages[AnalysisName.SUMMARY] = Summarizer(max_chars=config.summary_max_chars)
    if "sentiment" in enabled:
        sentiment = _sentiment(config)
        if sentiment is not None:
            stages[AnalysisName.SENTIMENT] = sentiment
    if "entities" in enabled:
        entities = _entities(config)
        if entities is not None:
            stages[AnalysisName.ENTITIES] = entities
    return AnalysisPipeline(
        language=LanguageDetector(),
        stages=stages,
        max_entities=config.entities_max_per_event,
        max_entity_chars=config.entities_max_chars,
    )
