"""Each analysis stage's analyzer, registered beside its declaration.

A stage is added in one module, spaCy style::

    from analyzers.stages import stage

    @stage("readability", result_type=Readability, description="Reading ease, 0-100.")
    def readability(config: PipelineConfig) -> Analyzer[Readability]:
        return ReadabilityAnalyzer()

The decorator declares the stage in the contract registry (``schemas.stages``: its
name, result field, value type and wire encoding) and records its factory, which
``analyzers.factory.build_pipeline`` calls once per analyzer process with the
pipeline's config when the stage is enabled. A factory may return None when its model
is not installed (the stage then reports CONFIGURATION_ERROR when asked for).

Plugin modules are found two ways: the module of CONTENTSTREAM_PIPELINE_FACTORY is
imported by every process that builds or reads results, and packages may list modules
under the ``contentstream.stages`` entry-point group (:func:`load_plugins`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, TypeVar

from analyzers.base import Analyzer
from analyzers.config import PipelineConfig
from schemas.errors import ConfigurationError
from schemas.stages import (
    Encoding,
    StageSpec,
    declarations_restored,
    declare_stage,
    stage_spec,
    stage_specs,
)

StageFactory = Callable[[PipelineConfig], Analyzer[Any] | None]
F = TypeVar("F", bound=StageFactory)

ENTRY_POINT_GROUP = "contentstream.stages"

_FACTORIES: dict[str, StageFactory] = {}
_loaded_entry_points = False


def register_stage(spec: StageSpec, factory: StageFactory) -> None:
    """Declares ``spec`` (if it is not yet) and makes ``factory`` build its analyzer."""
    declare_stage(spec)
    known = _FACTORIES.get(spec.name)
    if known is not None and known is not factory and _qualname(known) != _qualname(factory):
        raise ConfigurationError(f"analysis stage {spec.name!r} already has a factory")
    _FACTORIES[spec.name] = factory


def stage(
    name: str,
    *,
    result_type: Any,
    description: str,
    field: str = "",
    encoding: Encoding = "json",
) -> Callable[[F], F]:
    """Decorator: the function builds the analyzer of a new stage ``name`` whose values
    (of ``result_type``) appear in results under ``extensions.<field or name>``."""

    def register(factory: F) -> F:
        spec = StageSpec(
            name=name,
            result_type=result_type,
            description=description,
            field=field,
            encoding=encoding,
        )
        register_stage(spec, factory)
        return factory

    return register


def stage_factories() -> list[tuple[StageSpec, StageFactory]]:
    """Every stage with a factory, in declaration order."""
    return [(spec, _FACTORIES[spec.name]) for spec in stage_specs() if spec.name in _FACTORIES]


def factory_of(name: str) -> StageFactory:
    spec = stage_spec(name)
    try:
        return _FACTORIES[spec.name]
    except KeyError:
        raise ConfigurationError(f"analysis stage {name!r} has no analyzer factory") from None


def load_plugins(pipeline_factory: str | None = None) -> None:
    """Imports the modules that add stages: those named by ``contentstream.stages``
    entry points (once per process), and the module of ``pipeline_factory``
    (``module:function``, CONTENTSTREAM_PIPELINE_FACTORY), whose stages every process
    of a worker must know, not only those that build the pipeline."""
    global _loaded_entry_points
    if not _loaded_entry_points:
        _loaded_entry_points = True
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                point.load()
            except Exception as exc:
                raise ConfigurationError(
                    f"entry point {point.name} = {point.value!r} ({ENTRY_POINT_GROUP}): {exc}"
                ) from exc
    if pipeline_factory:
        module = pipeline_factory.partition(":")[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"cannot load pipeline factory: {exc}") from exc


@contextmanager
def stages_restored(*modules: str) -> Iterator[None]:
    """Declarations and factories as they were, again on exit, and ``modules`` (plugin
    modules a test imported) forgotten so that the next import declares them anew."""
    factories = dict(_FACTORIES)
    with declarations_restored():
        try:
            yield
        finally:
            _FACTORIES.clear()
            _FACTORIES.update(factories)
            for module in modules:
                sys.modules.pop(module, None)


def _qualname(factory: StageFactory) -> str:
    # A module imported twice (as a script and as a module) brings a second function
    # object for the same factory: that is no conflict.
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', '')}"
