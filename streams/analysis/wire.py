"""How an analysis crosses from an analyzer process to the worker: its JSON, done.

The bulky result fields (sentiment, keywords, entities: the stages declared with
``encoding="json"``) are serialised to JSON in the analyzer process, where CPU is what
the pool is for, and travel as bytes. The worker's event loop then unpickles a few
bytes objects instead of a tree of small dicts and lists, and splices them into the
result unchanged (``orjson.Fragment``). Profiled on the default analyses: unpickling
the dicts cost the worker ~12 µs per event and serialising them again ~4 µs, against
~1 µs for the bytes.

The format knows no stage by name: it loops over the stage registry
(``schemas.stages``). One analysis is ``(values, errors, timings, versions)``; ``values``
holds each contract stage's field that has a value (bytes for the "json" ones, the value
itself for the "plain" ones: language and summary, which the worker reads), and the
values of every added stage together as one JSON object under ``extensions``. A stage
added by a plugin therefore costs the format nothing to learn.
"""

from __future__ import annotations

from typing import Any

import orjson

from analyzers.pipeline import AnalysisOutput
from schemas.stages import EXTENSIONS_FIELD, contract_specs

# values by field, errors, timings, versions
WireOutput = tuple[dict[str, Any], list[dict[str, Any]], dict[str, float], dict[str, str]]

# (field, serialised as JSON?) of the contract stages, in their result order. Fixed once
# the built-in stages are declared: an added stage travels under ``extensions``.
_CONTRACT: tuple[tuple[str, bool], ...] = tuple(
    (spec.result_field, spec.encoding == "json") for spec in contract_specs()
)


def encode_output(output: AnalysisOutput) -> WireOutput:
    """In the analyzer process: one analysis, ready to pickle."""
    fields = output.fields()
    values: dict[str, Any] = {}
    for name, as_json in _CONTRACT:
        value = fields[name]
        if value is not None:
            values[name] = orjson.dumps(value) if as_json else value
    extensions = fields.get(EXTENSIONS_FIELD)
    if extensions:
        values[EXTENSIONS_FIELD] = orjson.dumps(extensions)
    return values, fields["errors"], fields["timings_ms"], fields["analyzer_versions"]


def decode_output(wire: WireOutput) -> dict[str, Any]:
    """In the worker: the result fields, the serialised ones as ``orjson.Fragment``
    (``orjson.dumps`` writes them out as they are; :func:`plain_fields` reads them)."""
    values, errors, timings, versions = wire
    fields: dict[str, Any] = {}
    for name, as_json in _CONTRACT:
        value = values.get(name)
        fields[name] = orjson.Fragment(value) if as_json and value is not None else value
    fields["errors"] = errors
    fields["timings_ms"] = timings
    fields["analyzer_versions"] = versions
    extensions = values.get(EXTENSIONS_FIELD)
    if extensions is not None:
        fields[EXTENSIONS_FIELD] = orjson.Fragment(extensions)
    return fields


def plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with any serialised value parsed back into plain data."""
    return {
        # A Fragment does not expose its bytes at run time (orjson 3.x): write it out.
        key: orjson.loads(orjson.dumps(value)) if isinstance(value, orjson.Fragment) else value
        for key, value in fields.items()
    }
