"""Prometheus metrics of the HTTP API (conventions of streams/operations/metrics.py).

Tenants are labels: their number is bounded by the keys file. Requests without a valid
key are labelled ``-``; a key never becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.operations.metrics import LATENCY_BUCKETS

NO_TENANT = "-"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "contentstream_api_requests_total",
            "HTTP requests answered, by route, status and tenant.",
            ["route", "status", "tenant"],
            registry=r,
        )
        self.latency = Histogram(
            "contentstream_api_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts_analysed = Counter(
            "contentstream_api_texts_analysed_total",
            "Texts answered by /v1/analyze, by tenant and outcome (ok, partial, duplicate, "
            "rejected).",
            ["tenant", "outcome"],
            registry=r,
        )
        self.cache_hits = Counter(
            "contentstream_api_dedup_hits_total",
            "Texts of /v1/analyze answered from the dedup store shared with the workers.",
            ["tenant"],
            registry=r,
        )
        self.events_produced = Counter(
            "contentstream_api_events_produced_total",
            "Events /v1/events produced to the raw topic, by tenant.",
            ["tenant"],
            registry=r,
        )
        self.rate_limited = Counter(
            "contentstream_api_rate_limited_total",
            "Requests refused with 429, by tenant and limit (requests, texts).",
            ["tenant", "limit"],
            registry=r,
        )
        self.shed = Counter(
            "contentstream_api_shed_total",
            "Requests refused with 503 because analysis was full, by tenant and reason "
            "(capacity, tenant_share).",
            ["tenant", "reason"],
            registry=r,
        )
        self.quota_fallback = Counter(
            "contentstream_api_quota_local_total",
            "Quota checks made on this replica's local buckets because Redis was unavailable.",
            registry=r,
        )
        self.texts_in_flight = Gauge(
            "contentstream_api_texts_in_flight", "Texts in analysis now.", registry=r
        )
        self.texts_in_flight_limit = Gauge(
            "contentstream_api_texts_in_flight_limit",
            "Most texts in analysis at once.",
            registry=r,
        )
        self.dedup_unavailable = Counter(
            "contentstream_api_dedup_unavailable_total",
            "Dedup lookups or stores skipped because Redis was unavailable.",
            registry=r,
        )
        self.pool_restarts = Counter(
            "contentstream_api_pool_restarts_total",
            "Analyzer processes replaced (hung or crashed).",
            registry=r,
        )
