"""Which Kafka headers of an input record travel on to its result and dead letter.

One helper for every engine and guarantee (the one processor,
streams/processing/processor.py, calls it), so a header is forwarded, or not, the same
way whichever engine consumed the event.

Forwarded: headers named in the allow-list (``CONTENTSTREAM_FORWARD_HEADERS``, by default
the W3C trace context ``traceparent``, ``tracestate`` and ``baggage``) or starting with
``CONTENTSTREAM_FORWARD_HEADER_PREFIX`` (``x-``), compared without regard to case, in the
order and spelling they arrived. Never forwarded: ``contentstream-*`` headers. Those are
contentstream's own word on a record (its reason headers, its event id); a producer that
sets them speaks only for itself, and copying them would make its claim look like ours
(see README "Dead letters" for the only place they are read: a replayed record's origin).

Results also carry contentstream's own headers (:func:`own_headers`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import orjson

from schemas.dead_letter import HEADER_PREFIX
from streams.kafka.records import Headers

EVENT_ID_HEADER = "contentstream-event-id"
SCHEMA_VERSION_HEADER = "contentstream-schema-version"
ANALYZER_VERSIONS_HEADER = "contentstream-analyzer-versions"
RESULT_SCHEMA_VERSION = b"1"

DEFAULT_FORWARD_HEADERS = ("traceparent", "tracestate", "baggage")
DEFAULT_FORWARD_PREFIX = "x-"

# Decisions remembered per header name. Producers choose the names, so the memory is
# bounded; past it a name is decided afresh (a lower() and a startswith, no regex).
_MAX_REMEMBERED = 4096


class HeaderForwarding:
    """The allow-list, decided once per header name."""

    __slots__ = ("_decided", "_names", "_prefixes", "forwards_nothing")

    def __init__(self, names: Iterable[str], prefixes: Iterable[str] = ()) -> None:
        self._names = frozenset(n.strip().lower() for n in names if n.strip())
        self._prefixes = tuple(p.strip().lower() for p in prefixes if p.strip())
        self.forwards_nothing = not self._names and not self._prefixes
        self._decided: dict[str, bool] = {}

    def _decide(self, name: str) -> bool:
        lowered = name.lower()
        keep = not lowered.startswith(HEADER_PREFIX) and (
            lowered in self._names or (bool(self._prefixes) and lowered.startswith(self._prefixes))
        )
        if len(self._decided) < _MAX_REMEMBERED:
            self._decided[name] = keep
        return keep

    def forwarded(self, headers: Headers) -> Headers:
        """The headers of ``headers`` that travel on, in their order."""
        if not headers or self.forwards_nothing:
            return []
        decided = self._decided
        out: Headers = []
        for pair in headers:
            keep = decided.get(pair[0])
            if keep is None:
                keep = self._decide(pair[0])
            if keep:
                out.append(pair)
        return out


def forwarding_from_settings(settings: object) -> HeaderForwarding:
    names = getattr(settings, "forward_headers", DEFAULT_FORWARD_HEADERS)
    prefix = getattr(settings, "forward_header_prefix", DEFAULT_FORWARD_PREFIX)
    return HeaderForwarding(names, (prefix,) if prefix else ())


def versions_digest(versions: Mapping[str, str]) -> bytes:
    """A short, stable name for a set of analyzer versions (16 hex characters)."""
    canonical = orjson.dumps(dict(versions), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16].encode("ascii")


class OwnHeaders:
    """contentstream's own headers on a result. The digest names the versions that
    produced the result (its own ``analyzer_versions``, so a result published while a
    model reload swaps processes names the model that really analysed it); it is
    computed once per distinct set of versions, not per event."""

    __slots__ = ("_digests",)

    _MAX_DIGESTS = 256  # distinct version sets seen: stages requested x model reloads

    def __init__(self) -> None:
        self._digests: dict[tuple[tuple[str, str], ...], bytes] = {}

    def digest(self, versions: Mapping[str, str]) -> bytes:
        key = tuple(versions.items())
        found = self._digests.get(key)
        if found is None:
            if len(self._digests) >= self._MAX_DIGESTS:
                self._digests.clear()
            found = self._digests[key] = versions_digest(versions)
        return found

    def for_result(self, event_id: str | int, versions: Mapping[str, str]) -> Headers:
        return [
            (EVENT_ID_HEADER, str(event_id).encode("utf-8", "replace")),
            (SCHEMA_VERSION_HEADER, RESULT_SCHEMA_VERSION),
            (ANALYZER_VERSIONS_HEADER, self.digest(versions)),
        ]


def with_trace(headers: Headers, trace: Headers | None) -> Headers:
    """``headers`` with the trace context in ``trace`` in place of any forwarded one."""
    if not trace:
        return headers
    replaced = {name for name, _ in trace}
    return [*(h for h in headers if h[0].lower() not in replaced), *trace]


# What an HTTP request passes on to the records it produces (POST /v1/events): the W3C
# trace context only. Not the x-* prefix: an HTTP request's x-* headers include
# credentials (X-API-Key) that must never reach a topic.
TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")
_MAX_TRACE_HEADER_BYTES = 8192


def trace_context(headers: Mapping[str, str]) -> Headers:
    """The trace context of an HTTP request (case-insensitive ``headers``) as Kafka
    headers, so the worker's spans continue the caller's trace."""
    out: Headers = []
    for name in TRACE_CONTEXT_HEADERS:
        value = headers.get(name)
        if value:
            raw = value.encode("latin-1", "replace")
            if len(raw) <= _MAX_TRACE_HEADER_BYTES:
                out.append((name, raw))
    return out
