"""Builds the pipeline a worker process runs from a PipelineConfig."""

from __future__ import annotations

from typing import Any

from analyzers.base import Analyzer
from analyzers.config import PipelineConfig
from analyzers.keywords import KeywordExtractor
from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from schemas.events import AnalysisName


def build_pipeline(config: PipelineConfig) -> AnalysisPipeline:
    stages: dict[AnalysisName, Analyzer[Any]] = {}
    enabled = set(config.enabled)
    if "keywords" in enabled:
        stages[AnalysisName.KEYWORDS] = KeywordExtractor(top_k=config.keywords_top_k)
    return AnalysisPipeline(language=LanguageDetector(), stages=stages)
