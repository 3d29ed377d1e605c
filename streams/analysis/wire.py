"""How an analysis crosses from an analyzer process to the worker: its JSON, done.

The bulky result fields (sentiment, keywords, entities: the stages declared with
``encoding="json"``) are serialised to JSON in the analyzer process, where CPU is what
the pool is for, and travel as bytes. The worker's event loop then unpickles a few
bytes objects instead of a tree of small dicts and lists, and splices them into the
result unchanged (``orjson.Fragment``). Profiled on the default analyses: unpickling
the dicts cost the worker ~12 µs per event and serialising them again ~4 µs, against
~1 µs for the bytes.

The format knows no stage by name: its layout is derived from the stage registry
(``schemas.stages``). One analysis is a tuple: each contract stage's value in
declaration order (bytes for the "json" ones, the value itself for the "plain" ones:
language and summary, which the worker reads; None when absent), then errors, timings
and versions, then the values of every added stage together as one JSON object
(``extensions``) or None. A stage added by a plugin costs the format nothing to learn.
A tuple rather than a dict by field, and a decoder written out from the registry: the
worker unpickles no key strings and runs no loop per field, so the transfer costs what
the hand-written 8-tuple did (``bench/wire.py``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import orjson

from analyzers.pipeline import AnalysisOutput
from schemas.stages import EXTENSIONS_FIELD, contract_specs

# contract stage values..., errors, timings, versions, extensions
WireOutput = tuple[Any, ...]

# The result fields of the contract stages, in their result order, and those of them
# serialised as JSON. Fixed once the built-in stages are declared: an added stage
# travels under ``extensions``.
_STAGES: tuple[str, ...] = tuple(spec.result_field for spec in contract_specs())
_AS_JSON: tuple[str, ...] = tuple(
    spec.result_field for spec in contract_specs() if spec.encoding == "json"
)
_KEYS: tuple[str, ...] = (*_STAGES, "errors", "timings_ms", "analyzer_versions", EXTENSIONS_FIELD)
_in_wire_order = operator.itemgetter(*_KEYS)


def encode_output(output: AnalysisOutput) -> WireOutput:
    """In the analyzer process: one analysis, ready to pickle."""
    fields = output.fields()
    for name in _AS_JSON:
        value = fields[name]
        if value is not None:
            fields[name] = orjson.dumps(value)
    extensions = fields.get(EXTENSIONS_FIELD)
    fields[EXTENSIONS_FIELD] = orjson.dumps(extensions) if extensions else None
    wire: WireOutput = _in_wire_order(fields)
    return wire


def _written_out_decoder() -> Callable[[WireOutput], dict[str, Any]]:
    """The decoder of this registry's layout, written out as one unpacking and one dict
    display, as namedtuple writes its classes: the same built by a loop over the fields
    cost the worker's event loop 0.3 µs more per event (~20 %, bench/wire.py)."""
    slots = [f"v{i}" for i in range(len(_KEYS))]
    items = [
        f"{key!r}: None if {slot} is None else Fragment({slot})"
        if key in _AS_JSON
        else f"{key!r}: {slot}"
        for key, slot in zip(_KEYS[:-1], slots[:-1], strict=True)
    ]
    source = (
        "def decode_output(wire):\n"
        f"    {', '.join(slots)} = wire\n"
        f"    fields = {{{', '.join(items)}}}\n"
        f"    if {slots[-1]} is not None:\n"
        f"        fields[{EXTENSIONS_FIELD!r}] = Fragment({slots[-1]})\n"
        "    return fields\n"
    )
    namespace: dict[str, Any] = {"Fragment": orjson.Fragment}
    exec(source, namespace)
    decoder: Callable[[WireOutput], dict[str, Any]] = namespace["decode_output"]
    return decoder


# In the worker: the result fields of one analysis, the serialised ones as
# ``orjson.Fragment`` (``orjson.dumps`` writes them out as they are; plain_fields reads
# them); ``extensions`` only when an added stage ran.
decode_output = _written_out_decoder()


def plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with any serialised value parsed back into plain data."""
    return {
        # A Fragment does not expose its bytes at run time (orjson 3.x): write it out.
        key: orjson.loads(orjson.dumps(value)) if isinstance(value, orjson.Fragment) else value
        for key, value in fields.items()
    }
