"""schemathesis against /openapi.json: no 5xx, every answer as the spec says.

Bounded (a few dozen examples per operation), on the app with fakes behind it: what is
checked is the HTTP contract, not the analyzers.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from api_fakes import Harness, auth  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Invalid requests may also answer 413 (too many texts or events: a documented answer).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 413, 415, 422, 429]
            },
        }
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", Harness().app, config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_matches_its_openapi_document(case: Any) -> None:
    case.call_and_validate(headers=auth())
