"""Builds the pipeline a worker process runs from a PipelineConfig.

Registers the built-in stages' analyzers (declared in ``schemas.stages``); a stage
added elsewhere registers its own (``analyzers.stages.stage``) and is built here the
same way.
"""

from __future__ import annotations

from typing import Any

from analyzers.base import Analyzer
from analyzers.config import PipelineConfig
from analyzers.keywords import KeywordExtractor
from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from analyzers.stages import StageFactory, load_plugins, register_stage, stage_factories
from analyzers.summary import Summarizer
from schemas.errors import ConfigurationError
from schemas.stages import BUILTIN_STAGES, AnalysisName


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


def _language(config: PipelineConfig) -> Analyzer[Any]:
    return LanguageDetector()


def _keywords(config: PipelineConfig) -> Analyzer[Any]:
    return KeywordExtractor(top_k=config.keywords_top_k, max_chars=config.keywords_max_chars)


def _summary(config: PipelineConfig) -> Analyzer[Any]:
    return Summarizer(max_chars=config.summary_max_chars)


_BUILTIN_FACTORIES: dict[str, StageFactory] = {
    "language": _language,
    "sentiment": _sentiment,
    "keywords": _keywords,
    "summary": _summary,
    "entities": _entities,
}
for _spec in BUILTIN_STAGES:
    register_stage(_spec, _BUILTIN_FACTORIES[_spec.name])


def build_pipeline(config: PipelineConfig) -> AnalysisPipeline:
    """Every enabled stage, each built once (models load here, not per event), in
    declaration order. Language detection always runs: the other stages read it."""
    load_plugins()
    stages: dict[AnalysisName, Analyzer[Any]] = {}
    enabled = set(config.enabled)
    for spec, factory in stage_factories():
        if spec.name == "language" or spec.name not in enabled:
            continue
        analyzer = factory(config)
        if analyzer is not None:
            stages[AnalysisName(spec.name)] = analyzer
    return AnalysisPipeline(
        language=LanguageDetector(),
        stages=stages,
        max_entities=config.entities_max_per_event,
        max_entity_chars=config.entities_max_chars,
    )
