"""End to end tests of ``contentstream analyze`` (in-process and via a subprocess)."""

from __future__ import annotations

import argparse
import functools
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from analyzers.stages import stages_restored
from schemas.content_hash import content_hash
from schemas.errors import EventRejected
from schemas.events import AnalysisName
from schemas.results import AnalysisResult
from streams.commands import analyze
from streams.commands.analyze import AnalyzeOptions, analyze_stream, parse_analyses

REPO = Path(__file__).resolve().parents[3]
ANALYSES = "language,keywords"


def _lines(rows: list[Any]) -> bytes:
    return b"".join((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n" for row in rows)


def _run(tmp_path: Path, rows: list[Any], *extra: str) -> list[dict[str, Any]]:
    source = tmp_path / "in.jsonl"
    target = tmp_path / "out.jsonl"
    source.write_bytes(_lines(rows))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    analyze.register(sub)
    args = parser.parse_args(
        ["analyze", "--input", str(source), "--output", str(target), "--quiet", *extra]
    )
    assert args.func(args) == 0
    return [orjson.loads(line) for line in target.read_bytes().splitlines()]


def test_results_in_input_order_with_ids_unchanged(tmp_path: Path) -> None:
    rows = [
        {"id": i if i % 2 else f"s-{i}", "text": f"第{i}条：故宫博物院的文物很震撼。"}
        for i in range(40)
    ]
    out = _run(tmp_path, rows, "--analyses", ANALYSES, "--processes", "1", "--batch-size", "7")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert isinstance(out[1]["id"], int) and isinstance(out[2]["id"], str)
    for row, result in zip(rows, out, strict=True):
        parsed = AnalysisResult.model_validate(result)
        assert parsed.content_hash == content_hash(str(row["text"]))
        assert parsed.language == "zh"
        assert parsed.keywords and parsed.processed_at.tzinfo is not None
        assert parsed.summary is None  # not requested


def test_bad_lines_get_error_objects_and_the_run_continues(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"id": 1, "text": "第一条正常的文本。"},
        b"this is not json",
        b'["an", "array"]',
        {"id": "no-text"},
        {"id": "empty", "text": "   "},
        {"text": "没有编号"},
        {"id": 7, "text": 42},
        b'{"id": "bad-utf8", "text": "\xff\xfe"}',
        {"id": "event", "text": "完整的事件。", "analyses": ["telepathy"]},
        {"id": 10, "text": "最后一条正常的文本。"},
    ]
    out = _run(tmp_path, rows, "--analyses", ANALYSES, "--processes", "1")
    assert len(out) == len(rows)
    errors = [(r.get("id"), r.get("line"), r.get("error", {}).get("code")) for r in out]
    assert errors[1:9] == [
        (None, 2, "INVALID_JSON"),
        (None, 3, "INVALID_EVENT"),
        ("no-text", 4, "MISSING_TEXT"),
        ("empty", 5, "EMPTY_TEXT"),
        (None, 6, "INVALID_EVENT"),
        (7, 7, "INVALID_EVENT"),
        (None, 8, "INVALID_UTF8"),
        ("event", 9, "UNKNOWN_ANALYSIS"),
    ]
    assert out[0]["id"] == 1 and "error" not in out[0]
    assert out[-1]["id"] == 10 and out[-1]["language"] == "zh"
    assert all(r["error"]["message"] for r in out[1:9])


def test_full_content_event_fields_are_used(tmp_path: Path) -> None:
    event = {
        "schema_version": 1,
        "id": "evt-1",
        "text": "Great hotel, friendly staff and an excellent breakfast.",
        "source": "reviews",
        "tenant": "acme",
        "language": "en",
        "analyses": ["language"],
        "metadata": {"stars": 5},
        "produced_at": "2024-05-01T12:00:00Z",
    }
    (result,) = _run(tmp_path, [event], "--analyses", ANALYSES, "--processes", "1")
    assert result["source"] == "reviews" and result["tenant"] == "acme"
    assert result["metadata"] == {"stars": 5}
    assert result["language"] == "en"
    assert result["keywords"] is None  # the event asked for language only
    assert result["produced_at"].startswith("2024-05-01T12:00:00")


def test_lines_are_validated_exactly_as_the_worker_validates_records(tmp_path: Path) -> None:
    from streams.processing.decoding import EventDecoder

    rows: list[Any] = [
        {"id": 3, "text": "今天天气很好。", "extra": [1, 2]},  # unknown field
        {"id": True, "text": "今天天气很好。"},
        {"id": 1.5, "text": "今天天气很好。"},
        {"id": "v", "text": "今天天气很好。", "schema_version": True},
        {"id": "deep", "text": "今天天气很好。", "metadata": {"a": [[[[[[[[[[{}]]]]]]]]]]}},
        {"id": "ok", "text": "今天天气很好。", "metadata": {"a": [1]}},
    ]
    # The worker's decoder with the limits the command takes from the settings.
    decoder = EventDecoder(max_payload_bytes=1_048_576, max_text_chars=100_000)
    worker_codes: list[str | None] = []
    for row in rows:
        try:
            decoder.decode(orjson.dumps(row))
            worker_codes.append(None)
        except EventRejected as exc:
            worker_codes.append(exc.code.value)
    out = _run(tmp_path, rows, "--analyses", "language")
    assert [r.get("error", {}).get("code") for r in out] == worker_codes
    assert worker_codes[:4] == [
        "INVALID_EVENT",
        "INVALID_EVENT",
        "INVALID_EVENT",
        "UNSUPPORTED_VERSION",
    ]
    assert out[0]["id"] == 3 and out[3]["id"] == "v" and out[1]["id"] is None
    assert out[5]["id"] == "ok" and out[5]["metadata"] == {"a": [1]}


def test_metadata_too_deep_is_refused_with_its_code(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CONTENTSTREAM_MAX_METADATA_DEPTH", "3")
    rows = [
        {"id": "deep", "text": "你好", "metadata": {"a": {"b": {"c": {}}}}},
        {"id": "fine", "text": "你好", "metadata": {"a": {"b": {}}}},
    ]
    out = _run(tmp_path, rows, "--analyses", "language")
    assert out[0]["error"]["code"] == "METADATA_TOO_LARGE" and out[0]["id"] == "deep"
    assert "error" not in out[1]


def test_empty_analyses_mean_the_default_set_as_in_the_worker(tmp_path: Path) -> None:
    rows = [
        {"id": "empty", "text": "今天天气很好。", "analyses": []},
        {"id": "absent", "text": "今天天气很好。"},
    ]
    out = _run(tmp_path, rows, "--analyses", "language,keywords")
    for result in out:
        assert result["language"] == "zh" and result["keywords"], result


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    out = _run(
        tmp_path, [b"", {"id": 1, "text": "你好"}, b"   ", b"oops"], "--analyses", "language"
    )
    assert [r["id"] for r in out] == [1, None]
    assert out[1]["line"] == 4


def test_pool_keeps_order(tmp_path: Path) -> None:
    rows = [{"id": i, "text": f"文本{i}：今天天气很好，我们去公园。"} for i in range(60)]
    out = _run(tmp_path, rows, "--analyses", "language", "--processes", "2", "--batch-size", "5")
    assert [r["id"] for r in out] == list(range(60))


def test_analyze_stream_in_memory() -> None:
    from analyzers.config import PipelineConfig
    from analyzers.factory import build_pipeline
    from streams.processing.decoding import EventDecoder

    analyses = parse_analyses("language,keywords", ())
    options = AnalyzeOptions(
        pipeline_factory=functools.partial(
            build_pipeline, PipelineConfig(enabled=tuple(a.value for a in analyses))
        ),
        decoder=EventDecoder(max_payload_bytes=1_048_576, max_text_chars=20),
        analyses=analyses,
    )
    source = io.BytesIO(_lines([{"id": "a", "text": "短文本"}, {"id": "b", "text": "长" * 21}]))
    sink = io.BytesIO()
    assert analyze_stream(source, sink, options, processes=1, batch_size=10, progress=False) == 2
    first, second = (orjson.loads(x) for x in sink.getvalue().splitlines())
    assert first["id"] == "a" and first["language"] == "zh"
    assert second["error"]["code"] == "TEXT_TOO_LONG"


def test_the_pipeline_factory_setting_is_used(tmp_path: Path, monkeypatch: Any) -> None:
    # tests/support/scripted_pipelines.py: the real pipeline with a scripted keywords
    # stage (keywords = the text's first four characters, version "scripted-1").
    monkeypatch.setenv("CONTENTSTREAM_PIPELINE_FACTORY", "scripted_pipelines:build")
    rows = [{"id": "a", "text": "今天天气很好。"}, {"id": "b", "text": "Scripted stage."}]
    out = _run(tmp_path, rows, "--analyses", ANALYSES, "--processes", "1")
    assert [r["keywords"] for r in out] == [
        [{"text": "今天天气", "weight": 1.0}],
        [{"text": "Scri", "weight": 1.0}],
    ]
    assert all(r["analyzer_versions"]["keywords"] == "scripted-1" for r in out)
    # The record a worker publishes, duplicate_of and all.
    assert all(r["schema_version"] == 1 and r["duplicate_of"] is None for r in out)
    assert [r["language"] for r in out] == ["zh", "en"]


def test_a_stage_added_by_the_pipeline_factory_module_is_in_the_results(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # tests/support/plugin_stages.py declares "readability" (result under extensions).
    monkeypatch.setenv("CONTENTSTREAM_PIPELINE_FACTORY", "plugin_stages:build")
    rows = [
        {"id": "asks", "text": "今天天气很好。我们去公园！", "analyses": ["readability"]},
        {"id": "default", "text": "One sentence. Two sentences."},
    ]
    with stages_restored("plugin_stages"):  # the declaration must not outlive this test
        out = _run(tmp_path, rows, "--analyses", "language,readability", "--processes", "1")
    assert [r["extensions"]["readability"]["sentences"] for r in out] == [2, 2]
    assert out[0]["language"] is None and out[1]["language"] == "en"
    assert out[1]["analyzer_versions"]["readability"] == "readability-1"


def test_a_pipeline_factory_that_does_not_load_exits_2(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_PIPELINE_FACTORY", "scripted_pipelines:nothing_here")
    source = tmp_path / "in.jsonl"
    source.write_bytes(_lines([{"id": "a", "text": "你好"}]))
    parser = argparse.ArgumentParser()
    analyze.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", "--input", str(source), "--quiet"])
    assert args.func(args) == 2
    assert "cannot load pipeline factory" in capsys.readouterr().err


def test_parse_analyses() -> None:
    assert parse_analyses(None, (AnalysisName.SENTIMENT,)) == (AnalysisName.SENTIMENT,)
    assert parse_analyses("keywords, language,keywords", ()) == (
        AnalysisName.KEYWORDS,
        AnalysisName.LANGUAGE,
    )
    with pytest.raises(ValueError, match="telepathy"):
        parse_analyses("language,telepathy", ())


def test_unknown_analysis_option_exits_2(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    analyze.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", "--analyses", "telepathy", "--quiet"])
    assert args.func(args) == 2


def test_stdin_to_stdout_subprocess() -> None:
    rows = [
        {"id": "x", "text": "今天和朋友去了故宫博物院。"},
        {"id": 2, "text": "The food was excellent."},
    ]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.commands.cli",
            "analyze",
            "--analyses",
            ANALYSES,
            "--quiet",
        ],
        input=_lines(rows),
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    out = [orjson.loads(line) for line in completed.stdout.splitlines()]
    assert [r["id"] for r in out] == ["x", 2]
    assert [r["language"] for r in out] == ["zh", "en"]
