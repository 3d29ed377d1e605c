"""The ASGI app: routes, authentication, quotas, backpressure, deadlines, metrics.

Order of checks on a POST: key (401), content type (415), body size (413), JSON and
UTF-8 (400), envelope (422/413/403), quota (429), room in analysis (503), then the
work under the request's deadline (504 naming the stage it was in).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import ContentStreamError, ErrorCode
from streams.api._admission import Admission
from streams.api._errors import ApiError, ApiErrorCode
from streams.api._keys import KeyRing, Tenant
from streams.api._metrics import NO_TENANT, ApiMetrics
from streams.api._models import DOC_MODELS
from streams.api._quota import Decision, Limits, QuotaLimiter
from streams.api._service import AnalysisService, EventIntake, Stage
from streams.kafka.headers import trace_context

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(slots=True)
class ApiState:
    """What the routes use; built by ApiRuntime (or by tests, with fakes)."""

    keys: KeyRing
    analysis: AnalysisService
    intake: EventIntake
    quota: QuotaLimiter
    admission: Admission
    metrics: ApiMetrics
    max_body_bytes: int
    request_timeout_s: float
    default_requests_per_s: float
    default_texts_per_s: float
    burst_s: float
    readiness: Callable[[], dict[str, Any]]
    max_texts: int = 256
    max_text_chars: int = 100_000

    def limits(self, tenant: Tenant) -> Limits:
        return Limits(
            tenant.requests_per_s or self.default_requests_per_s,
            tenant.texts_per_s or self.default_texts_per_s,
            self.burst_s,
        )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def _error_response(exc: ApiError) -> Response:
    return _json(exc.body(), exc.status, exc.headers)


def _policy(limits: Limits) -> str:
    w = f"{limits.burst_s:g}"
    return (
        f'"requests";q={int(limits.request_burst)};w={w}, "texts";q={int(limits.text_burst)};w={w}'
    )


def _rate_headers(limits: Limits, decision: Decision) -> dict[str, str]:
    reset = decision.retry_after_header if not decision.allowed else "0"
    return {
        "RateLimit-Policy": _policy(limits),
        "RateLimit": (
            f'"requests";r={max(0, decision.remaining_requests)};t={reset}, '
            f'"texts";r={max(0, decision.remaining_texts)};t={reset}'
        ),
    }


async def read_json(request: Request, limit: int, timeout_s: float = 60.0) -> Any:
    """The request's JSON body: 415 unless JSON, 413 past ``limit`` bytes (read no
    further), 400 for bytes that are not UTF-8 or not JSON, 408 when the client takes
    longer than ``timeout_s`` to send it (a slow sender must not hold a slot for ever)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_json(request, limit)
    except TimeoutError:
        raise ApiError(
            408,
            ApiErrorCode.DEADLINE_EXCEEDED,
            f"the body did not arrive within {timeout_s:g}s",
            stage="body",
        ) from None


async def _read_json(request: Request, limit: int) -> Any:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON:
        raise ApiError(
            415, ApiErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, ErrorCode.PAYLOAD_TOO_LARGE, f"body is {declared} bytes; the limit is {limit}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413, ErrorCode.PAYLOAD_TOO_LARGE, f"body is over the limit of {limit} bytes"
            )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ApiError(
                400, ErrorCode.INVALID_UTF8, f"body is not valid UTF-8 (byte {bad.start})"
            ) from None
        raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON: {exc}"[:300]) from None


def create_app(
    state: ApiState,
    *,
    lifespan: Callable[[FastAPI], Any] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="contentstream API",
        version="1",
        description="Synchronous analysis and event intake on the stream's analyzers, "
        "dedup store and topics. Authenticate with `Authorization: Bearer <key>`.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = state

    def authenticate(request: Request) -> Tenant:
        tenant = state.keys.authenticate(request.headers.get("authorization"))
        if tenant is None:
            raise ApiError(
                401,
                ApiErrorCode.UNAUTHORIZED,
                "a valid API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.tenant = tenant.name
        return tenant

    async def admit(request: Request, tenant: Tenant, texts: int) -> dict[str, str]:
        limits = state.limits(tenant)
        decision = await state.quota.check(tenant.name, limits, texts)
        headers = _rate_headers(limits, decision)
        if not decision.allowed:
            state.metrics.rate_limited.labels(tenant=tenant.name, limit=decision.limit).inc()
            headers["Retry-After"] = decision.retry_after_header
            raise ApiError(
                429,
                ApiErrorCode.RATE_LIMITED,
                f"over the tenant's {decision.limit} per second limit",
                headers=headers,
            )
        return headers

    async def guarded(work: Callable[[Stage], Awaitable[Response]]) -> Response:
        stage = Stage()
        try:
            async with asyncio.timeout(state.request_timeout_s):
                return await work(stage)
        except TimeoutError:
            raise ApiError(
                504,
                ApiErrorCode.DEADLINE_EXCEEDED,
                f"the request ran past its deadline of {state.request_timeout_s:g}s "
                f"in stage {stage.name}",
                stage=stage.name,
            ) from None

    app.add_middleware(_Observe, metrics=state.metrics)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: ApiErrorCode.NOT_FOUND, 405: ApiErrorCode.METHOD_NOT_ALLOWED}.get(
            exc.status_code, ErrorCode.INVALID_EVENT
        )
        return _json(
            {"error": {"code": str(code), "message": str(exc.detail)}},
            exc.status_code,
            dict(exc.headers or {}),
        )

    @app.exception_handler(ContentStreamError)
    async def contentstream_error(_: Request, exc: ContentStreamError) -> Response:
        # Kafka or the pool away (retriable): 503 and come back; anything else is ours.
        status = 503 if exc.retriable else 500
        body = {"error": {"code": exc.code.value, "message": exc.message, "stage": exc.stage}}
        return _json(body, status, {"Retry-After": "1"} if status == 503 else None)

    errors = _error_docs()

    @app.post(
        "/v1/analyze",
        summary="Analyse one text or a batch, now",
        openapi_extra=_body_doc("AnalyzeOne", "AnalyzeBatch"),
        responses={
            200: _doc("AnalyzeResponse", "One AnalysisResult (or error) per text, in order."),
            **{s: errors[s] for s in (400, 401, 408, 413, 415, 422, 429, 503, 504)},
        },
    )
    async def analyze(request: Request) -> Response:
        tenant = authenticate(request)
        body = await read_json(request, state.max_body_bytes, state.request_timeout_s)
        items, one = state.analysis.texts_of(body, tenant.name)
        headers = await admit(request, tenant, len(items))
        refusal = state.admission.try_acquire(tenant.name, len(items))
        if refusal is not None:
            state.metrics.shed.labels(tenant=tenant.name, reason=refusal.reason).inc()
            raise ApiError(
                503,
                ApiErrorCode.OVERLOADED,
                "analysis is at capacity"
                if refusal.reason == "capacity"
                else "the tenant holds its share of the analysis capacity",
                headers={**headers, "Retry-After": str(refusal.retry_after_s)},
            )
        state.metrics.texts_in_flight.set(state.admission.in_flight)
        try:

            async def work(stage: Stage) -> Response:
                answers = await state.analysis.analyze(items, stage)
                if one and items[0].error is not None:
                    error = items[0].error["error"]
                    return _json({"error": error}, 422, headers)
                content = b'{"results":[' + b",".join(answers) + b"]}"
                return Response(content, media_type=JSON, headers=headers)

            return await guarded(work)
        finally:
            state.admission.release(tenant.name, len(items))
            state.metrics.texts_in_flight.set(state.admission.in_flight)

    @app.post(
        "/v1/events",
        summary="Produce one ContentEvent or a batch to the raw topic",
        status_code=202,
        openapi_extra=_body_doc("ContentEvent", batch=state.max_texts),
        responses={
            202: _doc("EventsAccepted", "Every event is in Kafka (acks=all)."),
            **{s: errors[s] for s in (400, 401, 403, 408, 413, 415, 422, 429, 503, 504)},
        },
    )
    async def events(request: Request) -> Response:
        tenant = authenticate(request)
        body = await read_json(request, state.max_body_bytes, state.request_timeout_s)
        records = state.intake.events_of(body, tenant.name)
        headers = await admit(request, tenant, len(records))

        async def work(stage: Stage) -> Response:
            accepted = await state.intake.produce(
                records, tenant.name, stage, trace_context(request.headers)
            )
            return _json({"accepted": accepted}, 202, headers)

        return await guarded(work)

    @app.get("/healthz", summary="Alive", responses={200: {"description": "Alive."}})
    async def healthz() -> Response:
        return _json({"ok": True})

    @app.get(
        "/readyz",
        summary="Ready for traffic: analyzers loaded",
        responses={200: {"description": "Ready."}, 503: {"description": "Not ready."}},
    )
    async def readyz() -> Response:
        status = state.readiness()
        return _json(status, 200 if status["ok"] else 503)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in DOC_MODELS:
                doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(doc.pop("$defs", {}))
                components[model.__name__] = doc
            # The limits of this deployment, so that what the document admits is admitted.
            components["AnalyzeBatch"]["properties"]["texts"]["maxItems"] = state.max_texts
            for name in ("AnalyzeOne", "ContentEvent"):
                components[name]["properties"]["text"]["maxLength"] = state.max_text_chars
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path in ("/v1/analyze", "/v1/events"):
                schema["paths"][path]["post"]["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# A flood of 5xx (shedding under overload, Kafka away) comes when the event loop is
# busiest: a log line per refused request would add work exactly then, and the metrics
# count every one. At most one line per route and status this often, with the count.
SERVER_ERROR_LOG_EVERY_S = 10.0


class _Observe:
    """Requests by route, status and tenant, and their latency. A plain ASGI wrapper:
    Starlette's BaseHTTPMiddleware runs each request in an extra task group, a cost
    per request that showed in the profile of one-text requests."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # (route, status) -> (when its last line was written, answers since then)
        self._logged: dict[tuple[str, int], tuple[float, int]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["tenant"] = NO_TENANT  # until a route has authenticated the caller
        status = 500  # unless the app answers

        async def observed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            path = getattr(scope.get("route"), "path", "other")
            tenant = state.get("tenant", NO_TENANT)
            if status >= 500:
                self._log_server_error(scope.get("method"), path, status, tenant)
            self.metrics.requests.labels(route=path, status=str(status), tenant=tenant).inc()
            self.metrics.latency.labels(route=path).observe(time.perf_counter() - started)

    def _log_server_error(self, method: Any, path: str, status: int, tenant: str) -> None:
        now = time.monotonic()
        last, count = self._logged.get((path, status), (-SERVER_ERROR_LOG_EVERY_S, 0))
        count += 1
        if now - last < SERVER_ERROR_LOG_EVERY_S:
            self._logged[(path, status)] = (last, count)
            return
        self._logged[(path, status)] = (now, 0)
        # Never the headers: the Authorization header holds a key.
        log.warning(
            "%s %s answered %d (%d time(s) since this line was last written)",
            method,
            path,
            status,
            count,
            extra={"tenant": tenant, "status": status},
        )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(model: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(model)}}}


def _body_doc(*models: str, batch: int = 0) -> dict[str, Any]:
    """A JSON request body of one of ``models`` (or, with ``batch``, an array of up to
    that many of the one model)."""
    schema: dict[str, Any] = _ref(models[0])
    if len(models) > 1:
        schema = {"oneOf": [_ref(m) for m in models]}
    if batch:
        array = {"type": "array", "items": _ref(models[0]), "minItems": 1, "maxItems": batch}
        schema = {"oneOf": [schema, array]}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def _error_docs() -> dict[int, dict[str, Any]]:
    what = {
        400: "Not JSON, or not UTF-8 (INVALID_JSON, INVALID_UTF8).",
        401: "No valid API key (UNAUTHORIZED).",
        403: "An event names another tenant than the key's (FORBIDDEN).",
        408: "The body did not arrive within the request deadline (DEADLINE_EXCEEDED).",
        413: "Body or batch too large (PAYLOAD_TOO_LARGE).",
        415: "Body not application/json (UNSUPPORTED_MEDIA_TYPE).",
        422: "Malformed request or invalid event(s), with their dead-letter codes.",
        429: "Over the tenant's quota (RATE_LIMITED); see Retry-After, RateLimit.",
        503: "Analysis full (OVERLOADED) or Kafka/analyzers away (SERVICE_UNAVAILABLE); "
        "see Retry-After.",
        504: "Past the request deadline (DEADLINE_EXCEEDED), naming the stage.",
    }
    return {status: _doc("ErrorBody", text) for status, text in what.items()}
