"""The HTTP API (``contentstream api``): synchronous analysis and event intake.

``POST /v1/analyze`` analyses one text or a batch now, in the workers' analyzer pool,
sharing their dedup store; ``POST /v1/events`` produces ContentEvents to the raw topic;
``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``. Callers authenticate with
API keys (stored as hashes), each tenant has quotas shared by all replicas through
Redis, and a bounded number of texts is in analysis at once. See the README's "HTTP
API" section.
"""

from __future__ import annotations

from streams.api._admission import Admission
from streams.api._app import ApiState, create_app, read_json
from streams.api._errors import ApiError, ApiErrorCode
from streams.api._keys import KeyRing, Tenant, hash_key, load_keys_file, parse_keys
from streams.api._metrics import ApiMetrics
from streams.api._quota import Decision, Limits, LocalBuckets, QuotaLimiter
from streams.api._runtime import ApiRuntime, run_api
from streams.api._service import (
    AnalysisService,
    AnalyzeConfig,
    EventIntake,
    KafkaEventSink,
    api_dedup_key,
)

__all__ = [
    "Admission",
    "AnalysisService",
    "AnalyzeConfig",
    "ApiError",
    "ApiErrorCode",
    "ApiMetrics",
    "ApiRuntime",
    "ApiState",
    "Decision",
    "EventIntake",
    "KafkaEventSink",
    "KeyRing",
    "Limits",
    "LocalBuckets",
    "QuotaLimiter",
    "Tenant",
    "api_dedup_key",
    "create_app",
    "hash_key",
    "load_keys_file",
    "parse_keys",
    "read_json",
    "run_api",
]
