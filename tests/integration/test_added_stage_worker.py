"""A stage added outside the package, in a real worker on the real broker: declared by
tests/support/plugin_stages.py, loaded through CONTENTSTREAM_PIPELINE_FACTORY, asked for
by events, published under ``extensions``. Nothing in streams/ names it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import orjson
import pytest
from services import ServiceEndpoints
from worker_harness import REPO_ROOT, StreamSetup, WorkerProcess, consume, event, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SUPPORT = str(REPO_ROOT / "tests" / "support")


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


async def test_a_worker_publishes_an_added_stage_under_extensions(
    services: ServiceEndpoints, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    setup = StreamSetup(services.kafka_bootstrap, None, partitions=1)
    await setup.create_topics()
    worker = WorkerProcess(
        setup,
        tmp_path / "worker.log",
        CONTENTSTREAM_PIPELINE_FACTORY="plugin_stages:build",
        CONTENTSTREAM_ANALYSES="language,keywords,readability",
        CONTENTSTREAM_DEDUP_POLICY="off",
        PYTHONPATH=SUPPORT,
    ).start()
    workers.append(worker)
    worker.wait_ready()
    values = [
        event("default", "今天北京开会。明天上海也开会。"),
        event("asked", "One sentence. Two!", analyses=["sentiment", "readability"]),
        event("builtin-only", "Only the built-in stages.", analyses=["language", "keywords"]),
        event("broken", "Breaks its type [[unreadable]]", analyses=["readability"]),
    ]
    await produce(setup.bootstrap, setup.raw_topic, values)
    records = await consume(
        setup.bootstrap, setup.output_topic, expect=4, timeout=120, idle_after_expect=1
    )
    results = {r["id"]: r for r in (orjson.loads(rec.value) for rec in records)}
    assert set(results) == {"default", "asked", "builtin-only", "broken"}, worker.log_tail()

    assert results["default"]["extensions"] == {
        "readability": {"chars": 15, "sentences": 2, "chars_per_sentence": 7.5}
    }
    assert results["default"]["keywords"]
    assert results["default"]["analyzer_versions"]["readability"] == "readability-1"
    assert results["asked"]["sentiment"]["label"] in {"positive", "negative", "neutral"}
    assert results["asked"]["extensions"]["readability"]["sentences"] == 2
    assert "extensions" not in results["builtin-only"]
    assert [(e["stage"], e["code"]) for e in results["broken"]["errors"]] == [
        ("readability", "ANALYSIS_FAILED")
    ]
    # The published schema accepts them; the deployment's own types the added field.
    published = json.loads((REPO_ROOT / "schemas/json/analysis_result.v1.json").read_text())
    out = tmp_path / "schemas"
    subprocess.run(
        [sys.executable, "-m", "schemas.generate", "--stages", "plugin_stages", "--out", str(out)],
        check=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": f"{SUPPORT}:{REPO_ROOT}"},
    )
    own = json.loads((out / "analysis_result.v1.json").read_text())
    for result in results.values():
        jsonschema.validate(result, published)
        jsonschema.validate(result, own)
    assert own["properties"]["extensions"] != published["properties"]["extensions"]
