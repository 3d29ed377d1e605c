"""Analysis stages registered once: a stage added outside the package is run, checked
against its declared type and reported in ``extensions``, by the same loop as the
built-in ones."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from analyzers.config import PipelineConfig
from analyzers.factory import build_pipeline
from analyzers.pipeline import AnalysisRequest
from analyzers.stages import stage, stage_factories, stages_restored
from schemas.errors import ConfigurationError
from schemas.events import ALL_ANALYSES, AnalysisName
from schemas.stages import StageSpec, declare_stage, stage_specs

BUILTIN = ["language", "sentiment", "keywords", "summary", "entities"]


@pytest.fixture
def plugin() -> Iterator[Any]:
    with stages_restored("plugin_stages"):
        import plugin_stages

        yield plugin_stages


def test_the_built_in_stages_are_declared_in_run_order_each_with_a_factory() -> None:
    assert [s.name for s in stage_specs()] == BUILTIN
    assert [s.name for s, _ in stage_factories()] == BUILTIN
    assert [a.value for a in ALL_ANALYSES] == BUILTIN
    assert all(s.contract for s in stage_specs())


def test_analysis_names_behave_as_the_enum_did() -> None:
    assert AnalysisName("keywords") is AnalysisName.KEYWORDS
    assert AnalysisName.KEYWORDS == "keywords" and AnalysisName.KEYWORDS.value == "keywords"
    assert list(AnalysisName) == list(ALL_ANALYSES)
    assert pickle.loads(pickle.dumps(AnalysisName.ENTITIES)) is AnalysisName.ENTITIES
    with pytest.raises(ValueError, match="telepathy"):
        AnalysisName("telepathy")


def test_a_plugin_module_declares_its_stage_everywhere(plugin: Any) -> None:
    assert [s.name for s in stage_specs()] == [*BUILTIN, "readability"]
    assert AnalysisName("readability") in set(AnalysisName)
    assert "readability" in PipelineConfig().enabled
    # Not one of the defaults: an installed plugin must not change every result.
    assert "readability" not in ALL_ANALYSES


def test_the_registry_is_restored_after_a_test_that_added_a_stage() -> None:
    assert [s.name for s in stage_specs()] == BUILTIN
    with pytest.raises(ValueError):
        AnalysisName("readability")


def test_an_added_stage_appears_under_extensions_and_in_versions(plugin: Any) -> None:
    pipeline = build_pipeline(PipelineConfig(enabled=("language", "readability")))
    wanted = frozenset({AnalysisName.LANGUAGE, AnalysisName("readability")})
    [out] = pipeline.analyze([AnalysisRequest(text="今天很好。明天也好。", analyses=wanted)])
    fields = out.fields()
    assert fields["extensions"] == {
        "readability": {"chars": 10, "sentences": 2, "chars_per_sentence": 5.0}
    }
    assert fields["errors"] == []
    assert fields["analyzer_versions"]["readability"] == "readability-1"
    assert "readability" in fields["timings_ms"]
    assert pipeline.versions["readability"] == "readability-1"


def test_a_value_that_breaks_the_declared_type_costs_only_its_field(plugin: Any) -> None:
    pipeline = build_pipeline(PipelineConfig(enabled=("language", "keywords", "readability")))
    wanted = frozenset({AnalysisName.KEYWORDS, AnalysisName("readability")})
    [out] = pipeline.analyze(
        [AnalysisRequest(text=f"今天北京开会。{plugin.UNREADABLE}", analyses=wanted)]
    )
    fields = out.fields()
    assert "extensions" not in fields
    assert fields["keywords"]
    [error] = fields["errors"]
    assert error["stage"] == "readability" and error["code"] == "ANALYSIS_FAILED"
    assert "declared result_type" in error["message"]


def test_results_of_the_built_in_stages_have_no_extensions_field(plugin: Any) -> None:
    pipeline = build_pipeline(PipelineConfig())
    [out] = pipeline.analyze([AnalysisRequest(text="北京今天开会。")])
    assert "extensions" not in out.fields()


def test_an_added_stage_asked_for_but_not_built_is_reported(plugin: Any) -> None:
    pipeline = build_pipeline(PipelineConfig(enabled=("language",)))
    [out] = pipeline.analyze(
        [AnalysisRequest(text="hello", analyses=frozenset({AnalysisName("readability")}))]
    )
    [error] = out.fields()["errors"]
    assert (error["stage"], error["code"]) == ("readability", "CONFIGURATION_ERROR")


def test_a_stage_cannot_take_a_declared_name_or_field_or_the_contract() -> None:
    with stages_restored():
        with pytest.raises(ConfigurationError, match="already declared"):
            stage("keywords", result_type=int, description="x")(lambda config: None)
        with pytest.raises(ConfigurationError, match="only the built-in"):
            declare_stage(StageSpec("tone", str, "x", contract=True))
        declare_stage(StageSpec("tone", str, "x", field="mood"))
        with pytest.raises(ConfigurationError, match="result field 'mood'"):
            declare_stage(StageSpec("tone2", str, "x", field="mood"))
        with pytest.raises(ConfigurationError, match="lowercase"):
            declare_stage(StageSpec("Tone", str, "x"))
        # The same declaration again (a module imported twice) is no conflict.
        declare_stage(StageSpec("tone", str, "x", field="mood"))


def test_a_package_adds_a_stage_through_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import analyzers.stages as stages

    point = EntryPoint(name="readability", value="plugin_stages", group=stages.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        stages, "entry_points", lambda group: [point] if group == point.group else []
    )
    monkeypatch.setattr(stages, "_loaded_entry_points", False)
    with stages_restored("plugin_stages"):
        build_pipeline(PipelineConfig(enabled=("language",)))  # loads the entry points
        assert AnalysisName("readability").value == "readability"
        assert "readability" in PipelineConfig().enabled


def test_a_broken_entry_point_stops_the_process_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint

    import analyzers.stages as stages

    point = EntryPoint(name="gone", value="no_such_module_here", group=stages.ENTRY_POINT_GROUP)
    monkeypatch.setattr(stages, "entry_points", lambda group: [point])
    monkeypatch.setattr(stages, "_loaded_entry_points", False)
    with pytest.raises(ConfigurationError, match="entry point gone"):
        stages.load_plugins()
