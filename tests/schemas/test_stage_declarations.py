"""The stage declarations are the contract's: AnalysisResult's stage fields, the names an
event may list, and a deployment's schema with the stages it adds."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from analyzers.stages import stages_restored
from schemas import ContentEvent
from schemas.generate import main as generate
from schemas.results import AnalysisResult, result_model
from schemas.stages import contract_specs, stage_specs


@pytest.fixture
def plugin() -> Iterator[Any]:
    with stages_restored("plugin_stages"):
        import plugin_stages

        yield plugin_stages


def test_each_contract_stage_owns_its_typed_result_field_in_order() -> None:
    fields = list(AnalysisResult.model_fields)
    positions = []
    for spec in contract_specs():
        annotation = AnalysisResult.model_fields[spec.result_field].annotation
        assert set(typing.get_args(annotation)) == {spec.result_type, types.NoneType}, spec.name
        positions.append(fields.index(spec.result_field))
    assert positions == sorted(positions)
    assert fields[positions[-1] + 1] == "extensions"


def test_a_deployment_schema_lists_and_types_its_added_stages(plugin: Any, tmp_path: Path) -> None:
    assert generate(["--stages", "plugin_stages:build", "--out", str(tmp_path)]) == 0
    event_schema = json.loads((tmp_path / "content_event.v1.json").read_text())
    assert event_schema["$defs"]["AnalysisName"]["enum"] == [s.name for s in stage_specs()]
    jsonschema.validate({"id": 1, "text": "x", "analyses": ["readability"]}, event_schema)
    ContentEvent.model_validate({"id": 1, "text": "x", "analyses": ["readability"]})

    schema = json.loads((tmp_path / "analysis_result.v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    result = {
        "id": 1,
        "content_hash": "h",
        "extensions": {"readability": {"chars": 3, "sentences": 1, "chars_per_sentence": 3.0}},
        "processed_at": "2026-12-05T00:00:00+00:00",
    }
    validator.validate(result)
    result_model().model_validate(result)
    result["extensions"] = {"readability": {"chars": "many"}}
    assert not validator.is_valid(result)


def test_the_published_schema_leaves_extensions_an_open_object(plugin: Any) -> None:
    # The files in schemas/json are the built-in contract; a deployment writes its own.
    assert result_model() is not AnalysisResult
    published = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas/json/analysis_result.v1.json").read_text()
    )
    assert published["properties"]["extensions"]["anyOf"][0] == {
        "additionalProperties": True,
        "type": "object",
    }


def test_a_result_without_added_stages_is_written_without_extensions() -> None:
    result = AnalysisResult(id=1, content_hash="h", processed_at="2026-12-05T00:00:00Z")
    assert "extensions" not in json.loads(result.model_dump_json())
