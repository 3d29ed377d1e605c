"""streams/operations/logging_setup.py: one format for the whole process, Faust's loggers
included."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest
from mode.utils.logging import setup_logging as mode_setup_logging

from streams.operations.logging_setup import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    logging_config,
    uses_json,
)
from streams.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The tests reconfigure the root logger; put pytest's set-up back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("faust", "mode", "aiokafka")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "streams.processing.dead_letters", logging.WARNING, __file__, 1, "msg %s", ("x",), None
    )
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


CONTEXT = {
    "event_id": "e-1",
    "topic": "content.raw",
    "partition": 3,
    "offset": 42,
    "stage": "decode",
    "error_code": "INVALID_JSON",
}


def test_json_line_carries_the_event_context() -> None:
    line = JsonFormatter().format(record(**CONTEXT))
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "streams.processing.dead_letters"
    assert entry["message"] == "msg x"
    for key, value in CONTEXT.items():
        assert entry[key] == value
    assert entry["ts"].endswith("+00:00")


def test_json_line_keeps_a_traceback_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = orjson.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in entry["exception"]


def test_text_line_appends_the_context() -> None:
    line = TextFormatter().format(record(**CONTEXT))
    assert "WARNING streams.processing.dead_letters: msg x" in line
    assert line.endswith(
        "[event_id=e-1 topic=content.raw partition=3 offset=42 stage=decode "
        "error_code=INVALID_JSON]"
    )
    assert "[" not in TextFormatter().format(record())


def test_auto_means_text_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert not uses_json(Settings(log_format="auto"))
    assert uses_json(Settings(log_format="json"))
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert uses_json(Settings(log_format="auto"))
    assert not uses_json(Settings(log_format="text"))


def emit_from_everyone() -> None:
    logging.getLogger("streams.worker").info("worker line", extra={"partition": 1})
    logging.getLogger("faust.transport.consumer").warning("faust line")
    logging.getLogger("aiokafka.consumer.group_coordinator").error("aiokafka line")
    logging.getLogger("mode.services").info("mode chatter at info is hidden")


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [orjson.loads(line) for line in lines]  # fails on any non-JSON line


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_replaces_the_handlers_faust_installed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(log_format="json", log_level="INFO")
    configure_logging(settings)
    # What Faust's Worker does when it starts: mode's setup_logging, colour handler.
    mode_setup_logging(loglevel="INFO", logfile=None)
    configure_logging(settings)  # what ContentWorker.start_runtime does next
    capsys.readouterr()
    emit_from_everyone()
    captured = capsys.readouterr()
    entries = json_lines(captured.err)
    assert [e["logger"] for e in entries] == [
        "streams.worker",
        "faust.transport.consumer",
        "aiokafka.consumer.group_coordinator",
    ]
    assert entries[0]["partition"] == 1
    assert captured.out == ""


@pytest.mark.usefixtures("restore_logging")
def test_logging_config_is_what_faust_can_apply_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(log_format="json", log_level="INFO")
    # Faust's Worker(logging_config=...) hands the dictionary to mode's setup_logging.
    mode_setup_logging(loglevel="INFO", logfile=None, logging_config=logging_config(settings))
    capsys.readouterr()
    emit_from_everyone()
    entries = json_lines(capsys.readouterr().err)
    assert len(entries) == 3
    assert {e["level"] for e in entries} == {"info", "warning", "error"}


@pytest.mark.usefixtures("restore_logging")
def test_text_format_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="text", log_level="DEBUG"))
    capsys.readouterr()
    emit_from_everyone()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # faust/mode/aiokafka stay at WARNING even under DEBUG
    assert lines[0].endswith("INFO    streams.worker: worker line [partition=1]")
    assert not lines[1].startswith("{")


FORGED = "e-1\n2026-01-01 00:00:00,000 INFO    streams.worker: all events committed"


def test_text_line_escapes_control_characters_so_no_line_can_be_forged() -> None:
    rec = logging.LogRecord(
        "streams.processing.dead_letters",
        logging.WARNING,
        __file__,
        1,
        "dead letter %s",
        (FORGED,),
        None,
    )
    rec.event_id = FORGED + "\r\x1b[2K\u2028"
    line = TextFormatter().format(rec)
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    assert "dead letter e-1\\n2026-01-01" in line
    assert line.endswith(
        "[event_id=e-1\\n2026-01-01 00:00:00,000 INFO    streams.worker: "
        "all events committed\\r\\x1b[2K\\u2028]"
    )


def test_text_traceback_lines_are_indented_below_the_record() -> None:
    try:
        raise ValueError(f"bad id {FORGED}")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first, *below = TextFormatter().format(rec).split("\n")
    assert first.endswith("ERROR   x: failed")
    assert below[0] == "    Traceback (most recent call last):"
    assert any("ValueError: bad id e-1" in line for line in below)
    assert all(line.startswith("    ") for line in below)  # none can pass for a record


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_both_formats_hide_url_passwords(formatter: logging.Formatter) -> None:
    try:
        raise ConnectionError("Error connecting to redis://default:s3cret@redis:6379/0")
    except ConnectionError:
        rec = logging.LogRecord(
            "streams.processing.dedup",
            logging.WARNING,
            __file__,
            1,
            "Redis unavailable (%s)",
            ("rediss://:s3cret@redis:6380/0",),
            sys.exc_info(),
        )
    text = formatter.format(rec)
    assert "s3cret" not in text
    assert "rediss://:****@redis:6380/0" in text
    assert "redis://default:****@redis:6379/0" in text
