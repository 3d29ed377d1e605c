"""Pure, synchronous, batch-first text analyzers for Chinese and English.

No I/O after construction and no Kafka: ``streams`` runs these inside worker processes.
"""

from analyzers.base import Analyzer
from analyzers.config import PipelineConfig, TransformersConfig
from analyzers.factory import build_pipeline
from analyzers.pipeline import AnalysisOutput, AnalysisPipeline, AnalysisRequest

__all__ = [
    "AnalysisOutput",
    "AnalysisPipeline",
    "AnalysisRequest",
    "Analyzer",
    "PipelineConfig",
    "TransformersConfig",
    "build_pipeline",
]
