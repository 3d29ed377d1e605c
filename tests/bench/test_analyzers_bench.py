"""bench/analyzers.py's side-by-side measurement and its jieba yardstick (no services)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.__main__ import analyzers_suite  # noqa: E402
from bench.analyzers import side_by_side, spaced_sample  # noqa: E402
from bench.reference_engine import JiebaReferenceEngine  # noqa: E402


def test_reference_engine_runs_its_three_analyses_per_text() -> None:
    engine = JiebaReferenceEngine()
    found = engine.analyze("周杰伦昨天在北京开演唱会，现场气氛很好，歌迷都很满意。")
    assert ("北京", "LOC") in found["entities"]
    assert found["keywords"] and all(isinstance(w, float) for _, w in found["keywords"])
    assert found["sentiment"] == "positive"
    assert engine.analyze("糟糕的服务，非常失望")["sentiment"] == "negative"
    assert engine.analyze("今天是星期三")["sentiment"] == "neutral"


def test_spaced_sample_spreads_over_the_whole_list() -> None:
    texts = [str(i) for i in range(100)]
    assert spaced_sample(texts, 4) == ["0", "25", "50", "75"]
    assert spaced_sample(texts[:3], 10) == ["0", "1", "2"]
    assert spaced_sample([], 5) == []


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def analyze(self, arg: Any) -> Any:
        if isinstance(arg, str):  # the reference engine: one text per call
            self.seen.append(arg)
            return {}
        self.seen.extend(r.text for r in arg)  # the pipeline: a batch of requests
        return []


def test_side_by_side_runs_both_on_every_text_in_alternating_slices() -> None:
    texts = [f"文本{i}" for i in range(20)]
    pipeline, reference = _Recorder(), _Recorder()
    found = side_by_side(texts, 4, pipeline, reference, slices=4)
    assert found is not None
    # Warm-up first (8 and 2 texts), then every text exactly once, in order, by both.
    assert pipeline.seen[8:] == texts and reference.seen[2:] == texts
    assert found["docs"] == 20
    ratio = found["pipeline_docs_per_s"] / found["reference_docs_per_s"]
    assert abs(found["ratio"] - ratio) <= 0.01 * ratio + 0.01
    assert side_by_side([], 4, pipeline, reference) is None


def test_bench_table_reports_the_side_by_side_ratio(tmp_path: Path, monkeypatch: Any) -> None:
    report = {
        "results": {
            "corpus": [{"stage": "all (pipeline)", "docs_per_s": 2500.0}],
            ">= 1000 chars": [{"stage": "all (pipeline)", "docs_per_s": 160.0}],
        },
        "side_by_side": {
            "corpus": {
                "docs": 600,
                "pipeline_docs_per_s": 2400.0,
                "reference_docs_per_s": 400.0,
                "ratio": 6.0,
            },
            ">= 1000 chars": None,
        },
    }

    def fake_run(args: list[str], timeout_s: float) -> tuple[int, str]:
        Path(args[args.index("--output") + 1]).write_bytes(orjson.dumps(report))
        return 0, ""

    monkeypatch.setattr("bench.__main__.run_script", fake_run)
    result = analyzers_suite(quick=True, results_dir=tmp_path)
    assert result.error is None
    assert result.figures["reference_ratio"] == 6.0
    assert "long_reference_ratio" not in result.figures
    rows = dict(result.rows)
    assert rows["one core, all stages, corpus (docs/s)"] == "2,500"
    side = [v for k, v in rows.items() if "side by side" in k]
    assert side == ["2,400 / 400.0 = 6.0×"]
