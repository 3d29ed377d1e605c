"""The Chinese training scripts stop on a missing or malformed data file with one line
naming it and exit status 2 (never a traceback, never a model trained on part of it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"CONTENTSTREAM_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    args = [
        sys.executable,
        str(ROOT / "scripts" / script),
        "--out" if "entities" in script else "--out-dir",
        str(tmp_path / "out"),
    ]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("script", ["train_entities.py", "train_sentiment.py"])
def test_missing_data_file_names_it_and_exits_2(script: str, tmp_path: Path) -> None:
    result = _run(script, tmp_path / "nothing-here", tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "nothing-here" in lines[0] and "missing" in lines[0]


def test_malformed_entities_file_names_it_and_exits_2(tmp_path: Path) -> None:
    ner = tmp_path / "data" / "ner"
    ner.mkdir(parents=True)
    (ner / "peoples_daily_dev.jsonl").write_text(
        '{"text": "北京", "entities": []}\n{"text": oops\n'
    )
    result = _run("train_entities.py", tmp_path / "data", tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "peoples_daily_dev.jsonl" in lines[0] and "line 2" in lines[0]


def test_malformed_sentiment_file_names_it_and_exits_2(tmp_path: Path) -> None:
    en = tmp_path / "data" / "sentiment_en"
    en.mkdir(parents=True)
    (en / "uci_amazon.jsonl").write_text('{"text": "great", "label": 1}\n{"text": "bad"}\n')
    result = _run("train_sentiment.py", tmp_path / "data", tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "uci_amazon.jsonl" in lines[0] and "line 2" in lines[0] and "label" in lines[0]
