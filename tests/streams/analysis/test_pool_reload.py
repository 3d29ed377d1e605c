"""Model reload without downtime: the pool swaps its processes onto a new model under load.

Real analyzer processes running real (tiny, hand-set) transformers models: model A always
says positive, B negative, C positive again; so each result shows which model produced
it, and must name that model's version.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analyzers"))
import tiny_models

from analyzers.config import PipelineConfig, TransformersConfig
from analyzers.factory import build_pipeline
from analyzers.pipeline import AnalysisRequest
from schemas.events import AnalysisName
from streams.analysis.pool import AnalysisPool, PipelineFactory
from streams.analysis.wire import plain_fields

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SENTIMENT = frozenset({AnalysisName.SENTIMENT})
TOKENS = tiny_models.vocab_tokens(cjk_chars=500)
# Model directory name -> the label it always gives.
MODELS = {"model-a": "positive", "model-b": "negative", "model-c": "positive"}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reload_models")
    dirs = {}
    for seed, (name, label) in enumerate(MODELS.items()):
        directory = tiny_models.build_model(root / name, task="sentiment", tokens=TOKENS, seed=seed)
        tiny_models.set_sequence_label(directory, label)
        dirs[name] = directory
    return dirs


def factory_for(model: Path) -> PipelineFactory:
    config = PipelineConfig(
        sentiment_backend="transformers",
        sentiment_transformers=TransformersConfig(
            model=str(model), max_length=32, batch_tokens=256, precision="fp32"
        ),
        enabled=("sentiment",),
    )
    return functools.partial(build_pipeline, config)


def check(outputs: list[dict[str, Any]], versions_seen: dict[str, int]) -> None:
    for raw in outputs:
        fields = plain_fields(raw)
        version = fields["analyzer_versions"]["sentiment"]
        name = version.removeprefix("transformers:").split("@")[0]
        assert name in MODELS, version
        # The result is the one the named model gives: no other model produced it.
        assert fields["sentiment"]["label"] == MODELS[name], (version, fields["sentiment"])
        versions_seen[version] = versions_seen.get(version, 0) + 1


async def test_reload_twice_under_load_loses_nothing_and_names_the_model(
    model_dirs: dict[str, Path],
) -> None:
    pool = AnalysisPool(factory_for(model_dirs["model-a"]), processes=2)
    await pool.start()
    try:
        first = pool.versions["sentiment"]
        assert first.startswith("transformers:model-a@")
        seen: dict[str, int] = {}
        sent = 0
        reloads_done = asyncio.Event()

        async def one_batch(index: int) -> int:
            requests = [
                AnalysisRequest(text=f"今天{index}号{i}", analyses=SENTIMENT) for i in range(20)
            ]
            outputs = await pool.run(requests, timeout_s=60)
            assert len(outputs) == len(requests)
            check(outputs, seen)
            return len(outputs)

        async def feed() -> int:
            # Keep thousands of events queued until both reloads are done, and then some.
            nonlocal sent
            done = 0
            tail = 0
            while tail < 2:
                # 2,000 events at once, then waves of 200 while the processes swap.
                count = 100 if sent == 0 else 10
                wave = [asyncio.ensure_future(one_batch(sent + i)) for i in range(count)]
                sent += len(wave)
                done += sum(await asyncio.gather(*wave))
                # Load, not a flood: the new processes load on the same cores.
                await asyncio.sleep(0.5)
                if reloads_done.is_set():
                    tail += 1
            return done

        async def reload_twice() -> list[bool]:
            await asyncio.sleep(0.5)
            # Two SIGHUPs in a row: the second reload queues behind the first.
            results = await asyncio.gather(
                pool.reload(factory_for(model_dirs["model-b"])),
                pool.reload(factory_for(model_dirs["model-c"])),
            )
            reloads_done.set()
            return list(results)

        analysed, reloaded = await asyncio.gather(feed(), reload_twice())
        assert reloaded == [True, True]
        assert analysed == sent * 20 == sum(seen.values())
        assert analysed >= 2400
        names = {v.removeprefix("transformers:").split("@")[0] for v in seen}
        assert names == {"model-a", "model-b", "model-c"}
        assert pool.versions["sentiment"].startswith("transformers:model-c@")
        assert pool.reloads == 2
        # Every process now runs model C: a batch after the reload says so.
        after = await pool.run([AnalysisRequest(text="好", analyses=SENTIMENT)], timeout_s=60)
        assert (
            plain_fields(after[0])["analyzer_versions"]["sentiment"] == pool.versions["sentiment"]
        )
        assert len(pool.pids) == 2  # the old processes have exited
    finally:
        await pool.close()


async def test_a_broken_new_model_leaves_the_old_one_serving(
    model_dirs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = AnalysisPool(factory_for(model_dirs["model-a"]), processes=1)
    await pool.start()
    try:
        before = dict(pool.versions)
        assert pool.versions["sentiment"].startswith("transformers:model-a@")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="streams.analysis.pool"):
            ok = await pool.reload(factory_for(tmp_path / "no-such-model"))
        assert ok is False
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(problems) == 1
        assert "model reload failed" in problems[0].getMessage()
        assert "no-such-model" in problems[0].getMessage()
        assert pool.versions == before
        outputs = await pool.run([AnalysisRequest(text="好", analyses=SENTIMENT)], timeout_s=60)
        assert plain_fields(outputs[0])["analyzer_versions"]["sentiment"] == before["sentiment"]
        assert pool.reloads == 0
    finally:
        await pool.close()
