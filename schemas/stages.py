"""The analysis stages: what each one is called, where its result goes, what it looks like.

One declaration per stage (:class:`StageSpec`) is all the contract needs to know about
it; everything that used to list the stages by hand loops over this registry instead:
the names an event may request (:class:`AnalysisName`), the result fields and their
JSON Schema, the wire format between analyzer processes and the worker, the result
builder and the settings. ``analyzers.stages`` registers the analyzer that computes
each stage beside its declaration.

The declarations live here, not in ``analyzers/``, because the JSON Schema files are
generated from ``schemas/`` alone and ``schemas`` may not import ``analyzers``. The
registry is process-wide: a stage declared by a plugin module (imported through
CONTENTSTREAM_PIPELINE_FACTORY or a ``contentstream.stages`` entry point) is known to
every part of the process from then on.

Two kinds of stage:

- the *contract* stages (language, sentiment, keywords, summary, entities) each own a
  top-level field of AnalysisResult v1, written out in ``schemas/results.py`` so that
  consumers keep their typed fields; a test holds those fields to these declarations;
- every other stage's value appears in the result under ``extensions.<field>``,
  validated against the stage's declared type before it leaves the analyzer process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from schemas.errors import ConfigurationError

# How a stage's value crosses from an analyzer process to the worker: "json" as bytes
# serialised in the analyzer process and spliced into the result unparsed (for nested
# values: the worker never rebuilds their tree of dicts); "plain" as the value itself
# (short strings the worker may read).
Encoding = Literal["json", "plain"]

# Where the results of non-contract stages appear in an AnalysisResult.
EXTENSIONS_FIELD = "extensions"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


# --- The values of the built-in stages (re-exported by schemas.results) ------------

SentimentLabel = Literal["positive", "negative", "neutral"]
EntityType = Literal["PER", "LOC", "ORG"]


class SentimentScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: float = Field(ge=0.0, le=1.0)
    negative: float = Field(ge=0.0, le=1.0)
    neutral: float = Field(ge=0.0, le=1.0)


class Sentiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: SentimentLabel
    score: float = Field(ge=0.0, le=1.0, description="Probability of `label`.")
    scores: SentimentScores = Field(description="Probabilities of all three labels.")


class Keyword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    weight: float = Field(description="Relative importance, highest first.")


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    type: str = Field(description="PER, LOC or ORG (other types may be added).")
    start: int = Field(ge=0, description="Character offset into the event text.")
    end: int = Field(ge=0, description="Exclusive end offset: text[start:end] == entity text.")


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One analysis stage, declared once.

    ``name`` is the value an event lists in ``analyses`` (and the key of the stage in
    ``timings_ms``, ``analyzer_versions`` and ``errors[].stage``); ``field`` is where
    its value goes in the result (the name unless given); ``result_type`` is the type of
    that value, anything pydantic validates (a model, ``list[Model]``, ``str``, ...): its
    JSON Schema is the field's. The model and its version are the analyzer's own
    (``Analyzer.version``, reported in ``analyzer_versions`` and part of the dedup key).
    """

    name: str
    result_type: Any
    description: str
    field: str = ""
    encoding: Encoding = "json"
    contract: bool = False

    @property
    def result_field(self) -> str:
        return self.field or self.name


class _Registry:
    def __init__(self) -> None:
        self.specs: dict[str, StageSpec] = {}
        self.names: dict[str, AnalysisName] = {}
        self.adapters: dict[str, TypeAdapter[Any]] = {}
        self.contract_closed = False


_REGISTRY = _Registry()


def declare_stage(spec: StageSpec) -> StageSpec:
    """Adds ``spec`` to the registry; declaring the same spec again is a no-op (a module
    may be imported twice), a different one under a taken name or field is refused."""
    if not _NAME.fullmatch(spec.name):
        raise ConfigurationError(
            f"stage name {spec.name!r}: use lowercase letters, digits and _ (at most 64)"
        )
    known = _REGISTRY.specs.get(spec.name)
    if known is not None:
        if known == spec:
            return known
        raise ConfigurationError(f"analysis stage {spec.name!r} is already declared: {known}")
    if spec.contract and _REGISTRY.contract_closed:
        # AnalysisResult v1's top-level fields are fixed; an added stage goes under
        # ``extensions`` (and the wire format counts on the contract stages not changing).
        raise ConfigurationError(f"stage {spec.name!r}: only the built-in stages are contract=True")
    if not _NAME.fullmatch(spec.result_field):
        raise ConfigurationError(f"stage {spec.name!r}: result field {spec.result_field!r}")
    for other in _REGISTRY.specs.values():
        if other.contract == spec.contract and other.result_field == spec.result_field:
            raise ConfigurationError(
                f"stage {spec.name!r}: result field {spec.result_field!r} is stage {other.name!r}'s"
            )
    _REGISTRY.specs[spec.name] = spec
    _REGISTRY.names[spec.name] = str.__new__(AnalysisName, spec.name)
    return spec


@contextmanager
def declarations_restored() -> Iterator[None]:
    """The registry as it was, again on exit: for tests that declare stages (the
    registry is process-wide)."""
    specs, names = dict(_REGISTRY.specs), dict(_REGISTRY.names)
    try:
        yield
    finally:
        _REGISTRY.specs, _REGISTRY.names = specs, names
        _REGISTRY.adapters = {k: v for k, v in _REGISTRY.adapters.items() if k in specs}


def stage_specs() -> tuple[StageSpec, ...]:
    """Every declared stage, in declaration (and run) order."""
    return tuple(_REGISTRY.specs.values())


def stage_spec(name: str) -> StageSpec:
    try:
        return _REGISTRY.specs[name]
    except KeyError:
        raise ConfigurationError(f"no analysis stage {name!r} is declared") from None


def contract_specs() -> tuple[StageSpec, ...]:
    return tuple(s for s in _REGISTRY.specs.values() if s.contract)


def extension_specs() -> tuple[StageSpec, ...]:
    return tuple(s for s in _REGISTRY.specs.values() if not s.contract)


def result_adapter(spec: StageSpec) -> TypeAdapter[Any]:
    """The validator of ``spec``'s values (built once per stage)."""
    adapter = _REGISTRY.adapters.get(spec.name)
    if adapter is None:
        adapter = _REGISTRY.adapters[spec.name] = TypeAdapter(spec.result_type)
    return adapter


class _StageNames(type):
    """Lets ``AnalysisName`` be iterated like the enum it was: over every declared stage."""

    def __iter__(cls) -> Iterator[AnalysisName]:
        return iter(tuple(_REGISTRY.names.values()))

    def __len__(cls) -> int:
        return len(_REGISTRY.names)

    @property
    def __members__(cls) -> dict[str, AnalysisName]:
        return {name.upper(): value for name, value in _REGISTRY.names.items()}


class AnalysisName(str, metaclass=_StageNames):
    """The name of a declared analysis stage: what a producer may list in ``analyses``.

    A ``str`` (it compares, hashes and serialises as its text), built only from a
    declared stage's name: ``AnalysisName("telepathy")`` raises ValueError. It replaced a
    StrEnum whose members were the five built-in stages; ``AnalysisName.SENTIMENT``,
    ``.value``, iteration and ``is`` comparison still work (one instance per name).
    """

    __slots__ = ()

    LANGUAGE: ClassVar[AnalysisName]
    SENTIMENT: ClassVar[AnalysisName]
    KEYWORDS: ClassVar[AnalysisName]
    SUMMARY: ClassVar[AnalysisName]
    ENTITIES: ClassVar[AnalysisName]

    def __new__(cls, value: object) -> AnalysisName:
        found = _REGISTRY.names.get(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(
                f"{value!r} is not an analysis stage (declared: {', '.join(_REGISTRY.names)})"
            )
        return found

    @property
    def value(self) -> str:
        # The declared name itself, one object per stage: a fresh copy per call would
        # defeat pickle's memo for the timings/versions keys of every analysis.
        return _REGISTRY.specs[self].name

    def __repr__(self) -> str:
        return f"AnalysisName({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (AnalysisName, (self.value,))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls,
            ref="AnalysisName",
            serialization=core_schema.plain_serializer_function_ser_schema(
                str.__str__, when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Rendered from the registry when the schema is generated, so a deployment's
        # schema (python -m schemas.generate --stages MODULE) lists its own stages.
        return {
            "description": "The analyses a producer may request: the built-in stages, "
            "and any stage a deployment declares (see AnalysisResult.extensions).",
            "enum": list(_REGISTRY.names),
            "title": "AnalysisName",
            "type": "string",
        }


# The stages of AnalysisResult v1. Order matters: it is the order stages run in
# (language first: every other stage reads its output) and their fields' order in a
# result.
BUILTIN_STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "language",
        str,
        "`zh`, `en`, `mixed` (zh and en) or `other`.",
        encoding="plain",
        contract=True,
    ),
    StageSpec("sentiment", Sentiment, "Sentiment label and probabilities.", contract=True),
    StageSpec("keywords", list[Keyword], "Key terms, highest weight first.", contract=True),
    StageSpec("summary", str, "Extractive summary of the text.", encoding="plain", contract=True),
    StageSpec("entities", list[Entity], "Named entities with offsets.", contract=True),
)
for _spec in BUILTIN_STAGES:
    declare_stage(_spec)
_REGISTRY.contract_closed = True

AnalysisName.LANGUAGE = AnalysisName("language")
AnalysisName.SENTIMENT = AnalysisName("sentiment")
AnalysisName.KEYWORDS = AnalysisName("keywords")
AnalysisName.SUMMARY = AnalysisName("summary")
AnalysisName.ENTITIES = AnalysisName("entities")

# The built-in stages: the default of CONTENTSTREAM_ANALYSES. Stages a deployment adds
# run when an event (or CONTENTSTREAM_ANALYSES) asks for them by name.
ALL_ANALYSES: tuple[AnalysisName, ...] = tuple(AnalysisName(s.name) for s in BUILTIN_STAGES)
