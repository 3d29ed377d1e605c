"""The worker's assembly rules that need no Kafka: which engine runs what, and that no
Faust internals are reached into."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from streams.commands.cli import main
from streams.settings import Settings
from streams.worker import check_engine

STREAMS = Path(__file__).resolve().parents[2] / "streams"


def test_exactly_once_runs_on_the_batch_engine() -> None:
    assert Settings(processing_guarantee="exactly_once").effective_engine == "batch"
    assert Settings(engine="faust").effective_engine == "faust"
    assert Settings().effective_engine == "batch"


def test_faust_with_exactly_once_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="exactly_once runs on the batch engine"):
        check_engine(Settings(engine="faust", processing_guarantee="exactly_once"))
    check_engine(Settings(engine="faust"))
    check_engine(Settings(processing_guarantee="exactly_once"))


def test_the_worker_command_refuses_it_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_ENGINE", "faust")
    monkeypatch.setenv("CONTENTSTREAM_PROCESSING_GUARANTEE", "exactly_once")
    assert main(["worker"]) == 2
    assert "exactly_once runs on the batch engine" in capsys.readouterr().err


def test_no_private_faust_attribute_and_no_monkeypatching_in_streams() -> None:
    reaching_in = re.compile(
        r"\b(app|consumer|producer|stream|agent|worker|faust)\._[a-z]"
        r"|_on_sigterm|_on_sigint|_schedule_shutdown|_settings_extra|force_commit"
        r"|monkeypatch"
    )
    found = [
        f"{path.relative_to(STREAMS.parent)}:{n}: {line.strip()}"
        for path in sorted(STREAMS.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reaching_in.search(line)
    ]
    assert found == []
