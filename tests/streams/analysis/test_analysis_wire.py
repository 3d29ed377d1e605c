"""The analyzer-process wire format: what arrives is what the analyzers produced."""

from __future__ import annotations

import pickle
from typing import Any

import orjson

from analyzers.pipeline import AnalysisOutput
from schemas.errors import ErrorCode
from schemas.results import Entity, Keyword, Sentiment, SentimentScores, StageError
from streams.analysis.wire import decode_output, encode_output, plain_fields


def full_output() -> AnalysisOutput:
    return AnalysisOutput(
        language="zh",
        sentiment=Sentiment(
            label="positive",
            score=0.75,
            scores=SentimentScores(positive=0.75, negative=0.05, neutral=0.2),
        ),
        keywords=[Keyword(text="北京", weight=1.0), Keyword(text="开会", weight=0.5)],
        summary="今天北京开会。",
        entities=[Entity(text="北京", type="LOC", start=2, end=4)],
        errors=[StageError(stage="summary", code=ErrorCode.ANALYSIS_FAILED, message="boom")],
        timings_ms={"language": 0.01, "keywords": 0.2},
        analyzer_versions={"language": "l1", "keywords": "k1"},
    )


def reference_fields(output: AnalysisOutput) -> dict[str, Any]:
    """What the fields were defined as: pydantic's own dump of each model."""
    return {
        "language": output.language,
        "sentiment": output.sentiment.model_dump() if output.sentiment else None,
        "keywords": [k.model_dump() for k in output.keywords]
        if output.keywords is not None
        else None,
        "summary": output.summary,
        "entities": [e.model_dump() for e in output.entities]
        if output.entities is not None
        else None,
        "errors": [e.model_dump(mode="json") for e in output.errors],
        "timings_ms": output.timings_ms,
        "analyzer_versions": output.analyzer_versions,
    }


def test_fields_equal_the_models_own_dump() -> None:
    # The hand-built fields must not drift from the models (a new field would).
    for output in (full_output(), AnalysisOutput(), AnalysisOutput(keywords=[], entities=[])):
        assert output.fields() == reference_fields(output)
        assert orjson.dumps(output.fields()) == orjson.dumps(reference_fields(output))


def test_wire_round_trip_serialises_to_the_same_json() -> None:
    for output in (full_output(), AnalysisOutput(language="en")):
        wire = pickle.loads(pickle.dumps(encode_output(output), protocol=5))
        fields = decode_output(wire)
        assert orjson.dumps(fields) == orjson.dumps(output.fields())
        assert plain_fields(fields) == output.fields()


def test_only_the_bulky_fields_travel_serialised() -> None:
    fields = decode_output(encode_output(full_output()))
    assert isinstance(fields["keywords"], orjson.Fragment)
    assert isinstance(fields["entities"], orjson.Fragment)
    assert isinstance(fields["sentiment"], orjson.Fragment)
    # What the worker reads itself stays plain.
    assert fields["language"] == "zh"
    assert fields["errors"][0]["code"] == "ANALYSIS_FAILED"
    assert fields["timings_ms"] == {"language": 0.01, "keywords": 0.2}
    absent = decode_output(encode_output(AnalysisOutput()))
    assert absent["sentiment"] is None and absent["keywords"] is None


def test_added_stages_travel_together_as_one_serialised_field() -> None:
    output = full_output()
    output.extensions = {"readability": {"chars": 7, "sentences": 1}, "tone": "calm"}
    wire = pickle.loads(pickle.dumps(encode_output(output), protocol=5))
    fields = decode_output(wire)
    assert isinstance(fields["extensions"], orjson.Fragment)
    assert orjson.dumps(fields) == orjson.dumps(output.fields())
    assert plain_fields(fields)["extensions"] == output.extensions
    # Without added stages the field is absent, as in the results it fills.
    assert "extensions" not in decode_output(encode_output(AnalysisOutput()))
