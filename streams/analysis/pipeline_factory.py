"""Settings -> the callable that builds the analysis pipeline in each analyzer process.

The one place that honours ``CONTENTSTREAM_PIPELINE_FACTORY``: the worker's pool, the
HTTP API, ``contentstream analyze`` and the benchmarks all build their pipelines
through :func:`resolve_pipeline_factory`, so a pipeline given there is the one every
entry point runs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from typing import Any

from analyzers.factory import build_pipeline
from schemas.errors import ConfigurationError
from schemas.events import AnalysisName
from streams.analysis.pipeline_config import pipeline_config
from streams.settings import Settings


def resolve_pipeline_factory(
    settings: Settings, analyses: Iterable[AnalysisName] | None = None
) -> Callable[[], Any]:
    """The picklable callable each analyzer process runs once to build its pipeline,
    with the stages of ``analyses`` enabled (a process loads no model it will not use;
    None: every declared stage, those of CONTENTSTREAM_PIPELINE_FACTORY's module too)."""
    config = pipeline_config(settings, analyses)
    if not settings.pipeline_factory:
        return functools.partial(build_pipeline, config)
    module_name, _, attr = settings.pipeline_factory.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"CONTENTSTREAM_PIPELINE_FACTORY={settings.pipeline_factory!r}: use module:function"
        )
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load pipeline factory: {exc}") from exc
    return functools.partial(factory, config)
