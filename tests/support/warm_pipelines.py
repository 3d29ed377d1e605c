"""A pipeline whose stage says whether it was warmed up before its first batch (pool
tests: analyzer processes run every stage's ``warm_up`` before they report ready)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from schemas.events import AnalysisName
from schemas.results import Keyword


class WarmableKeywords:
    name = "keywords"
    version = "warmable-1"

    def __init__(self) -> None:
        self.warm_ups = 0

    def warm_up(self) -> None:
        self.warm_ups += 1

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[Any]:
        return [[Keyword(text=f"warm-ups:{self.warm_ups}", weight=1.0)] for _ in texts]


def build_warmable() -> AnalysisPipeline:
    return AnalysisPipeline(
        language=LanguageDetector(), stages={AnalysisName.KEYWORDS: WarmableKeywords()}
    )
