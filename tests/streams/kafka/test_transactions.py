"""PartitionTransactions against a fake transactional broker: what one commit carries,
fencing, refused records and retries. No Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, ProducerFenced

from streams.kafka.records import Outgoing
from streams.kafka.transactions import (
    Buffered,
    PartitionLost,
    PartitionTransactions,
    is_fencing,
    transactional_id,
)

TP = ("raw", 3)


@dataclass
class Broker:
    """Keeps what committed transactions wrote, and the epoch of each transactional id."""

    limits: dict[str, int] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    records: list[Outgoing] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    send_failures: list[Exception] = field(default_factory=list)
    producers: list[TxnProducer] = field(default_factory=list)

    def producer(self, txn_id: str = "app-raw-3") -> TxnProducer:
        self.producers.append(TxnProducer(self, txn_id))
        return self.producers[-1]

    def values(self, topic: str) -> list[bytes]:
        return [m.value for m in self.records if m.topic == topic]


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes, Any]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: Any, headers: Any) -> bool:
        self.records.append((key, value, headers))
        return True


class TxnProducer:
    """AIOKafkaProducer's transactional surface (what KafkaPublisher and
    PartitionTransactions use)."""

    def __init__(self, broker: Broker, txn_id: str) -> None:
        self.broker = broker
        self.txn_id = txn_id
        self.epoch = -1
        self.in_transaction = False
        self.pending: list[Outgoing] = []
        self.pending_offsets: dict[tuple[str, int], tuple[str, int]] = {}
        self.stopped = False
        self.sends = 0

    async def start(self) -> None:
        # Initialising under a transactional id bumps its epoch: older producers are fenced.
        self.epoch = self.broker.epochs[self.txn_id] = self.broker.epochs.get(self.txn_id, -1) + 1

    async def stop(self) -> None:
        self.stopped = True

    def _check(self) -> None:
        if self.broker.epochs[self.txn_id] != self.epoch:
            raise ProducerFenced()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def begin_transaction(self) -> None:
        assert not self.in_transaction
        self.in_transaction = True
        self.pending = []
        self.pending_offsets = {}

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        assert self.in_transaction, "sent outside a transaction"
        self.sends += 1
        await asyncio.sleep(0)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broker.send_failures:
            future.set_exception(self.broker.send_failures.pop(0))
            return future
        try:
            self._check()
        except ProducerFenced as exc:
            future.set_exception(exc)
            return future
        if any(len(v) > self.broker.limits.get(topic, 1 << 30) for _, v, _ in batch.records):
            future.set_exception(MessageSizeTooLargeError())
            return future
        self.pending += [Outgoing(topic, k, v, list(h)) for k, v, h in batch.records]
        future.set_result(None)
        return future

    async def send_offsets_to_transaction(self, offsets: dict[Any, Any], group_id: str) -> None:
        assert self.in_transaction
        self._check()
        for tp, meta in offsets.items():
            self.pending_offsets[(tp.topic, tp.partition)] = (group_id, meta.offset)

    async def commit_transaction(self) -> None:
        assert self.in_transaction
        self._check()
        self.broker.records += self.pending
        self.broker.offsets.update(self.pending_offsets)
        self.in_transaction = False


def txns(broker: Broker, **kwargs: Any) -> PartitionTransactions:
    kwargs.setdefault("backoff_s", 0.001)
    return PartitionTransactions(TP, broker.producer, group_id="app", **kwargs)


def plain(topic: str, value: bytes) -> Buffered:
    return Buffered(Outgoing(topic, b"k", value, []), lambda _exc: None)


def test_every_owner_of_an_input_partition_uses_the_same_transactional_id() -> None:
    assert transactional_id("app", ("raw", 3)) == "app-raw-3"
    assert transactional_id("app", ("raw", 3)) != transactional_id("app", ("raw", 4))


async def test_a_commit_carries_the_outputs_and_the_partitions_next_offset() -> None:
    broker = Broker()
    t = txns(broker)
    await t.start()
    async with t.lock:
        await t.commit([plain("out", b"r1"), plain("dlq", b"d1"), plain("out", b"r2")], 42)
    assert broker.values("out") == [b"r1", b"r2"]
    assert broker.values("dlq") == [b"d1"]
    assert broker.offsets == {TP: ("app", 42)}
    async with t.lock:
        await t.commit([], 50)  # nothing to publish (all dropped): the offset still moves
    assert broker.offsets == {TP: ("app", 50)}
    assert len(broker.producers) == 1


async def test_a_newer_owner_fences_the_older_and_nothing_of_the_older_commits() -> None:
    broker = Broker()
    old, new = txns(broker), txns(broker)
    await old.start()
    await new.start()  # e.g. the worker the partition moved to after a rebalance
    with pytest.raises(PartitionLost) as lost:
        await old.commit([plain("out", b"zombie")], 10)
    assert lost.value.fenced and old.fenced
    assert broker.records == [] and broker.offsets == {}
    # Never again, and without fencing back: no new producer was made for it.
    with pytest.raises(PartitionLost):
        await old.commit([plain("out", b"zombie")], 10)
    assert len(broker.producers) == 2
    await new.commit([plain("out", b"owner")], 10)
    assert broker.values("out") == [b"owner"]


async def test_a_failed_transaction_is_retried_on_a_new_producer() -> None:
    broker = Broker(send_failures=[KafkaConnectionError(), KafkaConnectionError()])
    t = txns(broker)
    await t.start()
    await t.commit([plain("out", b"r1")], 5)
    assert broker.values("out") == [b"r1"] and broker.offsets == {TP: ("app", 5)}
    assert len(broker.producers) == 3, "a new producer (same id) after each failure"
    assert all(p.stopped for p in broker.producers[:2])


async def test_a_closed_partition_commits_nothing() -> None:
    broker = Broker(send_failures=[KafkaConnectionError()] * 1000)
    t = txns(broker, backoff_s=0.01)
    await t.start()
    commit = asyncio.ensure_future(t.commit([plain("out", b"r1")], 5))
    await asyncio.sleep(0.05)
    await t.close()  # revoked while Kafka keeps failing
    with pytest.raises(PartitionLost) as lost:
        await asyncio.wait_for(commit, 5)
    assert not lost.value.fenced
    assert broker.records == []


async def test_a_refused_record_is_replaced_after_the_grace_and_the_rest_commits_in_order() -> None:
    broker = Broker(limits={"out": 10, "dlq": 100})
    refusals: list[BaseException] = []

    def letter(exc: BaseException) -> Buffered:
        refusals.append(exc)
        return plain("dlq", b"dead letter of big")

    entries = [
        plain("out", b"first"),
        Buffered(Outgoing("out", b"k", b"a very big result", []), letter),
        plain("out", b"last"),
    ]
    t = txns(broker, refused_record_grace_s=0.05)
    await t.start()
    await t.commit(entries, 3)
    assert broker.values("out") == [b"first", b"last"]
    assert broker.values("dlq") == [b"dead letter of big"]
    assert broker.offsets == {TP: ("app", 3)}
    assert len(refusals) == 1 and isinstance(refusals[0], MessageSizeTooLargeError)
    assert len(broker.producers) > 3, "retried during the grace period first"


async def test_replacements_are_themselves_replaced_when_refused() -> None:
    broker = Broker(limits={"out": 10, "dlq": 20})

    def without_original(_exc: BaseException) -> Buffered:
        return plain("dlq", b"")

    def letter(_exc: BaseException) -> Buffered:
        return Buffered(Outgoing("dlq", b"k", b"the original, too big", []), without_original)

    t = txns(broker, refused_record_grace_s=0.0)
    await t.start()
    await t.commit([Buffered(Outgoing("out", b"k", b"a very big result", []), letter)], 1)
    assert broker.values("dlq") == [b""] and broker.values("out") == []


async def test_a_record_with_nothing_left_to_replace_is_retried_not_dropped() -> None:
    broker = Broker(limits={"dlq": 5})
    t = txns(broker, refused_record_grace_s=0.0, max_backoff_s=0.01)
    await t.start()
    commit = asyncio.ensure_future(t.commit([plain("dlq", b"still too big")], 1))
    await asyncio.sleep(0.1)
    assert not commit.done() and broker.records == []
    broker.limits["dlq"] = 1 << 20  # the operator raises max.message.bytes
    await asyncio.wait_for(commit, 5)
    assert broker.values("dlq") == [b"still too big"]


def test_fencing_is_recognised_through_wrapping_errors() -> None:
    try:
        try:
            raise ProducerFenced()
        except ProducerFenced as inner:
            raise RuntimeError("batch delivery failed") from inner
    except RuntimeError as outer:
        assert is_fencing(outer)
    assert not is_fencing(KafkaConnectionError())
