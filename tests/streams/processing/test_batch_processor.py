"""BatchProcessor with a recording publisher and a scripted analysis queue: no Kafka."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from processors import make_processor

from analyzers.pipeline import AnalysisRequest
from schemas.errors import InvalidEvent, ServiceUnavailable, StageTimeout
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.publisher import PartlyPublished
from streams.kafka.records import InputRecord, Outgoing
from streams.operations.metrics import WorkerMetrics
from streams.processing.processor import BatchProcessor, Outcome, ProcessorConfig


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.groups: list[list[Outgoing]] = []
        self.fail_next = 0

    async def publish(self, messages: list[Outgoing]) -> None:
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unreachable")
        self.groups.append(list(messages))
        self.sent.extend(messages)

    def results(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value) for m in self.sent if m.topic == "out"]


class ScriptedQueue:
    """Answers each request after its text's delay, one delivery per distinct delay
    (like pool batches finishing at different times)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.delays: dict[str, float] = {}
        self.failures: dict[str, list[BaseException]] = {}

    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        by_delay: dict[float, list[tuple[int, Any]]] = {}
        for index, request in requests:
            self.calls.append(request.text)
            queue = self.failures.get(request.text)
            outcome: Any
            if queue:
                outcome = queue.pop(0)
            else:
                outcome = {
                    "language": "zh",
                    "keywords": [{"text": request.text[:2], "weight": 1.0}],
                    "errors": [],
                    "timings_ms": {"keywords": 0.1},
                    "analyzer_versions": {"keywords": "k1"},
                }
            delay = self.delays.get(request.text, 0.0)
            by_delay.setdefault(delay, []).append((index, outcome))
        loop = asyncio.get_running_loop()
        for delay, items in by_delay.items():
            loop.call_later(delay, deliver, items)


def make(
    policy: str = "reuse",
    publisher: RecordingPublisher | None = None,
    refused_record_grace_s: float = 60.0,
) -> tuple[BatchProcessor, RecordingPublisher, ScriptedQueue, WorkerMetrics]:
    publisher = publisher or RecordingPublisher()
    queue = ScriptedQueue()
    metrics = WorkerMetrics()
    processor = make_processor(
        analysis=queue,
        publisher=publisher,
        config=ProcessorConfig(
            output_topic="out",
            default_analyses=ALL_ANALYSES,
            dedup_policy=policy,
            max_attempts=3,
            retry_backoff_s=0.001,
        ),
        metrics=metrics,
        publish_backoff_s=0.001,
        refused_record_grace_s=refused_record_grace_s,
    )
    return processor, publisher, queue, metrics


def rec(offset: int, payload: Any, *, raw: bytes | None = None) -> InputRecord:
    value = raw if raw is not None else orjson.dumps(payload)
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=value)


def ev(offset: int, event_id: str, text: str) -> InputRecord:
    return rec(offset, {"id": event_id, "text": text})


async def test_a_batch_of_events_is_analysed_in_one_submission_and_published() -> None:
    processor, publisher, queue, metrics = make()
    outcomes = await processor.process([ev(i, f"e{i}", f"文本{i}") for i in range(5)])
    assert outcomes == Counter({Outcome.OK: 5})
    assert queue.calls == [f"文本{i}" for i in range(5)]
    assert [m.key for m in publisher.sent] == [f"e{i}".encode() for i in range(5)]
    assert len(publisher.groups) == 1, "one publish for the whole batch"
    assert metrics.events_finished.labels(outcome="ok")._value.get() == 5
    assert metrics.events_consumed.labels(topic="raw")._value.get() == 5


async def test_bad_records_become_dead_letters_and_the_rest_goes_on() -> None:
    processor, publisher, queue, _ = make()
    raw = b'{"id": "x", "text": ""}'
    outcomes = await processor.process(
        [rec(1, None, raw=raw), ev(2, "ok", "好"), rec(3, None, raw=b"\xff\xfe")]
    )
    assert outcomes == Counter({Outcome.DEAD_LETTERED: 2, Outcome.OK: 1})
    letters = [m for m in publisher.sent if m.topic == "dlq"]
    assert [m.value for m in letters] == [raw, b"\xff\xfe"]
    codes = [dict(m.headers)["contentstream-error-code"] for m in letters]
    assert codes == [b"EMPTY_TEXT", b"INVALID_UTF8"]
    assert queue.calls == ["好"]


async def test_repeats_within_a_batch_are_analysed_once() -> None:
    processor, publisher, queue, metrics = make()
    outcomes = await processor.process([ev(i, f"e{i}", "同样的文本") for i in range(4)])
    assert queue.calls == ["同样的文本"]
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DUPLICATE: 3})
    results = {r["id"]: r for r in publisher.results()}
    assert {r["duplicate_of"] for i, r in results.items() if i != "e0"} == {"e0"}
    assert results["e3"]["keywords"] == results["e0"]["keywords"]
    assert metrics.dedup_misses._value.get() == 1
    assert metrics.dedup_hits._value.get() == 3


async def test_a_later_batch_waits_for_an_earlier_batchs_analysis() -> None:
    processor, publisher, queue, metrics = make()
    queue.delays["slow same"] = 0.1
    first = asyncio.ensure_future(processor.process([ev(1, "a", "slow same")]))
    await asyncio.sleep(0.01)
    second = await processor.process([ev(2, "b", "slow same")])
    await first
    assert queue.calls == ["slow same"]
    assert second == Counter({Outcome.DUPLICATE: 1})
    assert metrics.dedup_hits._value.get() == 1 and metrics.dedup_misses._value.get() == 1
    assert [r["id"] for r in publisher.results()] == ["a", "b"]


async def test_repeat_in_a_later_batch_reuses_the_stored_analysis() -> None:
    processor, publisher, queue, _ = make()
    await processor.process([ev(1, "first", "文本")])
    assert await processor.process([ev(2, "second", "文本")]) == Counter({Outcome.DUPLICATE: 1})
    assert queue.calls == ["文本"]
    assert publisher.results()[1]["duplicate_of"] == "first"


async def test_drop_policy_publishes_nothing_for_repeats() -> None:
    processor, publisher, _, _ = make(policy="drop")
    outcomes = await processor.process([ev(1, "a", "重复"), ev(2, "b", "重复")])
    await processor.process([ev(3, "c", "重复")])
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DROPPED: 1})
    assert [r["id"] for r in publisher.results()] == ["a"]


async def test_a_slow_analysis_holds_back_only_its_own_events() -> None:
    processor, publisher, queue, _ = make(policy="off")
    queue.delays["hangs"] = 0.3
    task = asyncio.ensure_future(
        processor.process([ev(1, "h", "hangs")] + [ev(i, f"n{i}", f"快{i}") for i in range(2, 6)])
    )
    await asyncio.sleep(0.1)
    assert [r["id"] for r in publisher.results()] == ["n2", "n3", "n4", "n5"]
    await task
    assert publisher.results()[-1]["id"] == "h"


async def test_results_of_one_id_keep_arrival_order_across_batches() -> None:
    processor, publisher, queue, _ = make(policy="off")
    queue.delays["slow text"] = 0.2
    await asyncio.gather(
        processor.process([ev(1, "k", "slow text"), ev(2, "other", "quick")]),
        processor.process([ev(3, "k", "fast text")]),
    )
    order = [r["keywords"][0]["text"] for r in publisher.results() if r["id"] == "k"]
    assert order == ["sl", "fa"]
    assert publisher.results()[0]["id"] == "other", "another id is not held back"


async def test_same_id_three_times_in_different_chunks_does_not_deadlock() -> None:
    processor, publisher, queue, _ = make(policy="off")
    queue.delays.update({"one": 0.05, "two": 0.0, "three": 0.1})
    batch = [ev(1, "k", "one"), ev(2, "k", "two"), ev(3, "k", "three"), ev(4, "x", "other")]
    await asyncio.wait_for(processor.process(batch), 2)
    order = [r["keywords"][0]["text"] for r in publisher.results() if r["id"] == "k"]
    assert order == ["on", "tw", "th"]


async def test_timeout_gives_a_partial_result_that_is_not_remembered() -> None:
    processor, publisher, queue, _ = make()
    queue.failures["t"] = [StageTimeout("ran past 1s", stage="analysis")]
    assert await processor.process([ev(1, "a", "t")]) == Counter({Outcome.PARTIAL: 1})
    result = publisher.results()[0]
    assert result["errors"][0]["code"] == "STAGE_TIMEOUT" and result["keywords"] is None
    await processor.process([ev(2, "b", "t")])
    assert queue.calls == ["t", "t"]


async def test_retriable_failures_are_retried_then_dead_lettered() -> None:
    processor, publisher, queue, metrics = make()
    queue.failures["flaky"] = [ServiceUnavailable("pool died")]
    queue.failures["broken"] = [ServiceUnavailable("x") for _ in range(3)]
    outcomes = await processor.process([ev(1, "a", "flaky"), ev(2, "b", "broken")])
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DEAD_LETTERED: 1})
    [letter] = [m for m in publisher.sent if m.topic == "dlq"]
    assert dict(letter.headers)["contentstream-error-code"] == b"ANALYSIS_FAILED"
    assert metrics.retries._value.get() == 3


async def test_a_non_retriable_analysis_error_is_dead_lettered_at_once() -> None:
    processor, publisher, queue, _ = make()
    queue.failures["bad"] = [InvalidEvent("analyzer refused it", stage="sentiment")]
    assert await processor.process([ev(1, "a", "bad")]) == Counter({Outcome.DEAD_LETTERED: 1})
    assert queue.calls == ["bad"]
    [letter] = publisher.sent
    assert dict(letter.headers)["contentstream-stage"] == b"sentiment"


async def test_a_refused_publish_is_retried_not_dropped() -> None:
    processor, publisher, _, _ = make()
    publisher.fail_next = 2
    assert await processor.process([ev(1, "a", "文本")]) == Counter({Outcome.OK: 1})
    assert [r["id"] for r in publisher.results()] == ["a"]


@pytest.mark.parametrize("policy", ["reuse", "off"])
async def test_nothing_outlives_a_cancelled_batch(policy: str) -> None:
    processor, _, queue, _ = make(policy)
    queue.delays["never"] = 60
    task = asyncio.ensure_future(processor.process([ev(1, "a", "never")]))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert processor._analysing == {} and processor._key_tails == {}


class RefusingPublisher(RecordingPublisher):
    """A broker whose topics refuse records over a size limit (max.message.bytes)."""

    def __init__(self, limits: dict[str, int]) -> None:
        super().__init__()
        self.limits = limits
        self.refusals = 0

    async def publish(self, messages: list[Outgoing]) -> None:
        await asyncio.sleep(0)
        if any(len(m.value) > self.limits.get(m.topic, 1 << 30) for m in messages):
            self.refusals += 1
            raise MessageSizeTooLargeError()
        await super().publish(messages)


def refusing(limits: dict[str, int], grace_s: float) -> tuple[BatchProcessor, RefusingPublisher]:
    publisher = RefusingPublisher(limits)
    processor, _, _, _ = make(policy="off", publisher=publisher, refused_record_grace_s=grace_s)
    return processor, publisher


async def test_a_result_kafka_refuses_becomes_a_dead_letter_after_the_grace() -> None:
    processor, publisher = refusing({"out": 1500}, grace_s=0.05)
    # Results of the short ones are ~500 bytes; metadata is copied into the result.
    big = rec(1, {"id": "big", "text": "长", "metadata": {"note": "n" * 2000}})
    outcomes = await processor.process([ev(0, "a", "短"), big, ev(2, "b", "短的")])
    assert outcomes == Counter({Outcome.OK: 2, Outcome.DEAD_LETTERED: 1})
    assert sorted(r["id"] for r in publisher.results()) == ["a", "b"]
    (letter,) = [m for m in publisher.sent if m.topic == "dlq"]
    headers = dict(letter.headers)
    assert headers["contentstream-error-code"] == b"RESULT_REJECTED"
    assert b"MessageSizeTooLargeError" in headers["contentstream-error-message"]
    assert letter.value == big.value
    assert publisher.refusals >= 2, "retried during the grace period first"


async def test_a_refused_dead_letter_goes_out_without_the_original() -> None:
    processor, publisher = refusing({"dlq": 50}, grace_s=0.0)
    raw = b'{"id": "x", "text": "", "padding": "' + b"p" * 100 + b'"}'
    outcomes = await processor.process([rec(7, None, raw=raw)])
    assert outcomes == Counter({Outcome.DEAD_LETTERED: 1})
    (letter,) = publisher.sent
    headers = dict(letter.headers)
    assert letter.value == b""
    assert headers["contentstream-error-code"] == b"EMPTY_TEXT"
    assert b"MessageSizeTooLargeError" in headers["contentstream-original-dropped"]
    assert headers["contentstream-source-offset"] == b"7"


class PerPartitionPublisher(RefusingPublisher):
    """Kafka acknowledges each partition's records on their own: here every record is its
    own partition, so the records within the limit are written even when another is refused."""

    async def publish(self, messages: list[Outgoing]) -> None:
        await asyncio.sleep(0)
        refused = [m for m in messages if len(m.value) > self.limits.get(m.topic, 1 << 30)]
        if not refused:
            await RecordingPublisher.publish(self, messages)
            return
        self.refusals += 1
        written = [m for m in messages if all(m is not r for r in refused)]
        if not written:
            raise MessageSizeTooLargeError()
        self.sent.extend(written)
        raise PartlyPublished(refused, MessageSizeTooLargeError())


async def test_records_kafka_acknowledged_are_not_sent_again_when_another_is_refused() -> None:
    publisher = PerPartitionPublisher({"dlq": 80})
    processor, _, _, _ = make(policy="off", publisher=publisher, refused_record_grace_s=0.0)
    padded = b'{"id": "big", "text": "", "padding": "' + b"p" * 100 + b'"}'
    # Two dead letters in one publish: the small one is written, the big one refused.
    outcomes = await asyncio.wait_for(
        processor.process([rec(0, None, raw=b"{}"), rec(1, None, raw=padded)]), 10
    )
    assert outcomes == Counter({Outcome.DEAD_LETTERED: 2})
    offsets = sorted(dict(m.headers)["contentstream-source-offset"] for m in publisher.sent)
    assert offsets == [b"0", b"1"], "each dead letter once"
    (dropped,) = [m for m in publisher.sent if m.value == b""]
    assert b"MessageSizeTooLargeError" in dict(dropped.headers)["contentstream-original-dropped"]


async def test_a_refused_record_waits_while_the_limit_may_still_be_raised() -> None:
    processor, publisher = refusing({"out": 10}, grace_s=60.0)
    task = asyncio.ensure_future(processor.process([ev(0, "a", "短")]))
    while publisher.refusals < 3:
        await asyncio.sleep(0.01)
    assert not task.done() and publisher.sent == []
    publisher.limits["out"] = 1 << 20  # the operator raises max.message.bytes
    assert await asyncio.wait_for(task, 10) == Counter({Outcome.OK: 1})
    assert [r["id"] for r in publisher.results()] == ["a"]
