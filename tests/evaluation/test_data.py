"""The shared training-input checks: a bad data file is one line naming it and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.data import DATA_ERROR_EXIT, DataFileError, exit_on_data_error, load_rows


def test_load_rows_checks_fields(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "好", "label": 1}\n\n{"text": "差", "label": 0}\n', "utf-8")
    assert load_rows(path, {"text": str, "label": int}) == [
        {"text": "好", "label": 1},
        {"text": "差", "label": 0},
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "missing"),
        ("", "no rows"),
        ('{"text": "a", "label": 1}\n{"text": "b", "lab', "line 2: not JSON"),
        ('["a", 1]\n', "line 1: expected a JSON object"),
        ('{"label": 1}\n', "line 1: missing field 'text'"),
        ('{"text": "a", "label": "1"}\n', "line 1: field 'label' is str, not int"),
        ('{"text": "a", "label": true}\n', "line 1: field 'label' is bool, not int"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "data.jsonl"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(DataFileError) as caught:
        load_rows(path, {"text": str, "label": int})
    assert str(caught.value).startswith(f"{path}: {reason}")


def test_exit_on_data_error_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.jsonl"

    @exit_on_data_error
    def main() -> int:
        load_rows(missing)
        return 0

    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == DATA_ERROR_EXIT == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {missing}: missing")
