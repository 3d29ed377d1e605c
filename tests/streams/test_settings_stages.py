"""CONTENTSTREAM_ANALYSES names declared stages: the built-in ones, and those the module
of CONTENTSTREAM_PIPELINE_FACTORY declares (imported before the names are checked)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from analyzers.stages import stages_restored
from schemas.errors import ConfigurationError
from streams.settings import Settings


def test_a_stage_the_factory_module_declares_may_be_a_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_PIPELINE_FACTORY", "plugin_stages:build")
    monkeypatch.setenv("CONTENTSTREAM_ANALYSES", "language, readability")
    with stages_restored("plugin_stages"):
        assert [a.value for a in Settings().analyses] == ["language", "readability"]


def test_an_undeclared_analysis_is_refused_naming_the_declared_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_ANALYSES", "language,readability")
    with pytest.raises(ValidationError, match=r"'readability' is not an analysis stage \(declared"):
        Settings()


def test_a_factory_module_that_does_not_import_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_PIPELINE_FACTORY", "no_such_stages_module:build")
    with pytest.raises(ConfigurationError, match="cannot load pipeline factory"):
        Settings()
