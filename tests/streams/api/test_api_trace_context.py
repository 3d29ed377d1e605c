"""POST /v1/events passes the request's W3C trace context on to the records it
produces (issue #19), so the worker's spans continue the caller's trace."""

from __future__ import annotations

from api_fakes import Harness, auth

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_events_carry_the_requests_trace_context_and_not_its_credentials() -> None:
    h = Harness()
    async with h.client() as c:
        traced = await c.post(
            "/v1/events",
            json=[{"id": "e1", "text": "hello"}, {"id": "e2", "text": "world"}],
            headers={**auth(), "traceparent": TRACEPARENT, "x-request-id": "r1"},
        )
        plain = await c.post("/v1/events", json={"id": "e3", "text": "hi"}, headers=auth())
    assert traced.status_code == plain.status_code == 202
    assert h.sink.headers == [[("traceparent", TRACEPARENT.encode())], []]
