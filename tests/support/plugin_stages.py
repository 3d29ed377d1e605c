"""An analysis stage added from outside the package, as a user's plugin module would.

Through CONTENTSTREAM_PIPELINE_FACTORY=plugin_stages:build (tests/support on PYTHONPATH)
every worker process imports this module, so the stage is declared everywhere: events
may list "readability" in ``analyses`` and its value appears in results under
``extensions.readability``. Nothing in ``streams/`` names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from analyzers.config import PipelineConfig
from analyzers.factory import build_pipeline
from analyzers.language import LanguageDetector
from analyzers.pipeline import AnalysisPipeline
from analyzers.stages import stage
from schemas.events import AnalysisName

# A text holding this gets a value that breaks the stage's declared type.
UNREADABLE = "[[unreadable]]"


class Readability(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chars: int = Field(ge=0)
    sentences: int = Field(ge=0)
    chars_per_sentence: float = Field(ge=0.0)


class ReadabilityAnalyzer:
    name = "readability"
    version = "readability-1"

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[Any]:
        out: list[Any] = []
        for text in texts:
            if UNREADABLE in text:
                out.append({"chars": "many"})
                continue
            sentences = max(1, sum(text.count(m) for m in "。！？.!?"))
            out.append(
                Readability(
                    chars=len(text), sentences=sentences, chars_per_sentence=len(text) / sentences
                )
            )
        return out


@stage(
    "readability",
    result_type=Readability,
    description="Characters, sentences and characters per sentence.",
)
def readability(config: PipelineConfig) -> ReadabilityAnalyzer:
    return ReadabilityAnalyzer()


def build(config: PipelineConfig | None = None) -> AnalysisPipeline:
    """The built-in pipeline: it builds every declared stage, this one too."""
    return build_pipeline(config or PipelineConfig())


def build_light(config: PipelineConfig | None = None) -> AnalysisPipeline:
    """Language detection and this stage only: starts fast, for pool tests."""
    return AnalysisPipeline(
        language=LanguageDetector(),
        stages={AnalysisName("readability"): ReadabilityAnalyzer()},
    )
