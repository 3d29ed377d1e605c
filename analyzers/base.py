"""What every analyzer is: a named, versioned, batch-first pure function.

Analyzers take whole batches (lists of texts plus their detected languages) because
every backend gets faster per document with batches: vectorised linear models, one
forward pass of a transformer. They do no I/O after construction, never import Kafka
or Faust, and are safe to build once per process and reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

T_co = TypeVar("T_co")


@runtime_checkable
class Analyzer(Protocol[T_co]):  # output type varies per stage
    """One analysis stage.

    ``name`` is the stage (and result field) name, e.g. ``"sentiment"``; ``version``
    changes whenever the output for the same input may change (new weights, new rules),
    because it is part of the deduplication key.
    """

    name: str
    version: str

    def analyze_batch(
        self, texts: Sequence[str], languages: Sequence[str]
    ) -> list[T_co]:  # pragma: no cover - protocol
        """One output per text, in order. ``languages[i]`` is ``zh``/``en``/``mixed``/``other``."""
        ...
