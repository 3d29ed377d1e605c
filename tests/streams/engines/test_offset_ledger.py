"""OffsetLedger: commit the end of the longest finished prefix of batches, per partition."""

from __future__ import annotations

from streams.engines.offsets import OffsetLedger

TP = ("raw", 0)
OTHER = ("raw", 1)


def test_nothing_is_committable_while_the_first_batch_is_in_flight() -> None:
    ledger = OffsetLedger()
    first, second = ledger.add(TP, 10), ledger.add(TP, 20)
    ledger.finish(second)
    assert ledger.committable() == {}
    ledger.finish(first)
    assert ledger.committable() == {TP: 20}


def test_partitions_are_independent() -> None:
    ledger = OffsetLedger()
    a, b = ledger.add(TP, 5), ledger.add(OTHER, 7)
    ledger.finish(b)
    assert ledger.committable() == {OTHER: 7}
    assert ledger.in_flight(TP) == 1 and ledger.in_flight() == 1
    ledger.finish(a)
    assert ledger.committable() == {TP: 5}


def test_an_offset_is_offered_once_and_again_after_a_failed_commit() -> None:
    ledger = OffsetLedger()
    ledger.finish(ledger.add(TP, 3))
    offsets = ledger.committable()
    assert offsets == {TP: 3}
    ledger.restore(offsets)  # the commit failed
    assert ledger.committable() == {TP: 3}
    ledger.committed({TP: 3})
    assert ledger.committable() == {}
    ledger.finish(ledger.add(TP, 9))
    assert ledger.committable() == {TP: 9}


def test_forgotten_partitions_commit_nothing() -> None:
    ledger = OffsetLedger()
    slot = ledger.add(TP, 4)
    ledger.forget({TP})
    ledger.finish(slot)  # a batch that finished after the revocation
    assert ledger.committable() == {}
