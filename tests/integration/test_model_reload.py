"""SIGHUP reloads the worker's transformers model without downtime, on the real broker.

The model path is a symlink, as a deployment would flip it: A (always positive), then B
(always negative), then C (positive again), then a path with no model. Every event gives
exactly one result, every result names the model that produced it (its label is that
model's), a text analysed by A is analysed again by C (dedup keys change with the model),
and the broken path leaves C serving with one line logged.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from services import ServiceEndpoints
from worker_harness import StreamSetup, WorkerProcess, consume, event, produce

pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyzers"))
import tiny_models

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MODELS = {"model-a": "positive", "model-b": "negative", "model-c": "positive"}


@pytest.fixture
def worker_box(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop_quietly()


def build_models(root: Path) -> None:
    tokens = tiny_models.vocab_tokens(cjk_chars=500)
    for seed, (name, label) in enumerate(MODELS.items()):
        directory = tiny_models.build_model(root / name, task="sentiment", tokens=tokens, seed=seed)
        tiny_models.set_sequence_label(directory, label)


def point(link: Path, target: Path) -> None:
    staged = link.with_name(link.name + ".new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    staged.replace(link)  # atomic, as a deployment would flip it


async def wait_for_log(worker: WorkerProcess, needle: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.log_path.read_text(errors="replace").count(needle) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no {needle!r} x{count} in the log:\n{worker.log_tail()}")


async def test_sighup_twice_under_load_swaps_the_model_and_loses_nothing(
    services: ServiceEndpoints, tmp_path: Path, worker_box: list[WorkerProcess]
) -> None:
    build_models(tmp_path)
    current = tmp_path / "current"
    point(current, tmp_path / "model-a")
    setup = StreamSetup(services.kafka_bootstrap, services.redis_url)
    await setup.create_topics()
    worker = WorkerProcess(
        setup,
        tmp_path / "worker.log",
        CONTENTSTREAM_SENTIMENT_BACKEND="transformers",
        CONTENTSTREAM_SENTIMENT_MODEL=str(current),
        CONTENTSTREAM_ANALYSES="language,sentiment",
        CONTENTSTREAM_MODEL_PRECISION="fp32",
        CONTENTSTREAM_MODEL_MAX_LENGTH="32",
        CONTENTSTREAM_POOL_PROCESSES="2",
        CONTENTSTREAM_POOL_STANDBY_PROCESSES="1",
    ).start()
    worker_box.append(worker)
    worker.wait_ready(timeout=300)
    assert worker.proc is not None
    produced = 0

    async def send(count: int, text: str | None = None) -> None:
        nonlocal produced
        values = [
            event(produced + i, text or f"今天 {setup.name} {produced + i}") for i in range(count)
        ]
        await produce(setup.bootstrap, setup.raw_topic, values)
        produced += count

    # Unique per run: the dedup store (Redis) outlives a test run, and the tiny models
    # (seeded) keep their versions from one run to the next.
    repeated = f"同一段文字 {setup.name}"
    await send(1, repeated)  # analysed by A; sent again after the reloads
    await send(1500)
    point(current, tmp_path / "model-b")
    worker.proc.send_signal(signal.SIGHUP)
    await send(1000)
    await wait_for_log(worker, "model reloaded", 1, timeout=300)
    await send(500)
    point(current, tmp_path / "model-c")
    worker.proc.send_signal(signal.SIGHUP)
    await send(1000)
    await wait_for_log(worker, "model reloaded", 2, timeout=300)
    await send(1, repeated)
    # A path with no model: C keeps serving, one line says why.
    point(current, tmp_path / "no-such-model")
    worker.proc.send_signal(signal.SIGHUP)
    await wait_for_log(worker, "model reload failed", 1, timeout=300)
    await send(200)

    records = await consume(
        setup.bootstrap, setup.output_topic, expect=produced, timeout=300, idle_after_expect=3
    )
    results = [orjson.loads(r.value) for r in records]
    assert sorted(int(r["id"]) for r in results) == list(range(produced)), worker.log_tail()
    names: list[str] = []
    for result in results:
        version = result["analyzer_versions"]["sentiment"]
        name = version.removeprefix("transformers:").split("@")[0]
        assert result["sentiment"]["label"] == MODELS[name], (version, result["sentiment"])
        names.append(name)
    assert set(names) == set(MODELS)
    by_id = {int(r["id"]): r for r in results}
    again = by_id[produced - 201]
    assert again["analyzer_versions"]["sentiment"].startswith("transformers:model-c@")
    assert again.get("duplicate_of") is None  # C's key is not A's: analysed afresh
    assert all(by_id[i]["analyzer_versions"]["sentiment"].startswith(
        "transformers:model-c@") for i in range(produced - 200, produced))  # fmt: skip
    errors = [
        line["message"]
        for line in map(_json_line, worker.log_path.read_text(errors="replace").splitlines())
        if line.get("level") in {"error", "critical"}
    ]
    assert len(errors) == 1 and "model reload failed" in errors[0], errors


def _json_line(text: str) -> dict[str, str]:
    try:
        found = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}
