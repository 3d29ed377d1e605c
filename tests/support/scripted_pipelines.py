"""Pipelines whose behaviour a test scripts through the text: hang, crash, count.

Used through CONTENTSTREAM_PIPELINE_FACTORY=scripted_pipelines:build (with tests/support
on PYTHONPATH) and directly by the pool tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from analyzers.config import PipelineConfig
from analyzers.factory import build_pipeline
from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from schemas.events import AnalysisName
from schemas.results import Keyword

HANG = "[[hang]]"
CRASH = "[[crash]]"
SLOW = "[[slow]]"


class ScriptedKeywords:
    """Keywords stage that hangs, crashes the process, or sleeps when the text says so."""

    name = "keywords"
    version = "scripted-1"

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[Any]:
        for text in texts:
            if HANG in text:
                time.sleep(3600)
            if CRASH in text:
                os._exit(17)
            if SLOW in text:
                time.sleep(float(os.environ.get("SCRIPTED_SLOW_S", "0.5")))
        return [[Keyword(text=t[:4], weight=1.0)] for t in texts]


def build(config: PipelineConfig | None = None) -> AnalysisPipeline:
    """The real pipeline, with a scripted keywords stage in front."""
    real = build_pipeline(config or PipelineConfig(enabled=("language",)))
    stages = dict(real.stages)
    stages[AnalysisName.KEYWORDS] = ScriptedKeywords()
    return AnalysisPipeline(language=real.language, stages=stages)


def build_light(config: PipelineConfig | None = None) -> AnalysisPipeline:
    """Language detection plus the scripted stage only: starts fast, for pool tests."""
    return AnalysisPipeline(
        language=LanguageDetector(), stages={AnalysisName.KEYWORDS: ScriptedKeywords()}
    )
