"""The published JSON Schema files are the models, and the examples follow them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from schemas import ContentEvent, DeadLetter, ErrorCode
from schemas.generate import SCHEMA_DIR, SCHEMA_FILES, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_files_match_the_models(name: str) -> None:
    assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == render(SCHEMA_FILES[name]), (
        "run python -m schemas.generate"
    )


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMA_DIR / name).read_text()))


def test_example_events_validate_and_malformed_ones_do_not() -> None:
    schema = json.loads((SCHEMA_DIR / "content_event.v1.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for line in (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        validator.validate(event)
        ContentEvent.model_validate(event)
    rejected = 0
    for raw in (ROOT / "examples" / "malformed.jsonl").read_bytes().splitlines():
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            rejected += 1
            continue
        if not validator.is_valid(event):
            rejected += 1
    assert rejected == 6


def test_dead_letter_headers_round_trip() -> None:
    letter = DeadLetter(
        error_code=ErrorCode.TEXT_TOO_LONG,
        message="too long",
        stage="decode",
        event_id="e-1",
        source_topic="content.raw",
        source_partition=3,
        source_offset=42,
        first_seen=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        attempts=2,
        original_b64="aGVsbG8=",
    )
    again = DeadLetter.from_record(b"hello", letter.headers())
    assert again == letter
    assert again.original == b"hello"
