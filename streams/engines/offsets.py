"""Which offsets the batch engine may commit: never past a batch still in flight.

Fetched batches finish out of order. Per partition the ledger keeps, in fetch order,
the offset each batch ends at (its last offset + 1) and whether it is done; the
committable offset is the end of the longest finished prefix. One entry per batch and
partition, not per event.

Under exactly_once a slot also holds its batch's buffered outputs: the engine takes
the finished prefix (:meth:`OffsetLedger.take_done`) and commits it as one transaction.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from streams.kafka.records import TopicPartition


@dataclass(slots=True, eq=False)
class Slot:
    tp: TopicPartition
    end: int  # the offset to commit once this batch and all before it are done
    done: bool = False
    outputs: Any = None  # exactly_once: what its batch's transaction carries


class OffsetLedger:
    def __init__(self) -> None:
        self._slots: dict[TopicPartition, deque[Slot]] = {}
        self._committed: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, end: int) -> Slot:
        slot = Slot(tp, end)
        self._slots.setdefault(tp, deque()).append(slot)
        return slot

    def finish(self, slot: Slot) -> None:
        slot.done = True

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets newly safe to commit, per partition (only those that moved)."""
        out: dict[TopicPartition, int] = {}
        for tp, slots in self._slots.items():
            end = None
            while slots and slots[0].done:
                end = slots.popleft().end
            if end is not None and end != self._committed.get(tp):
                out[tp] = end
        return out

    def take_done(self, tp: TopicPartition) -> list[Slot]:
        """The finished batches at the head of ``tp``'s queue, removed from it (in
        offset order): what one transaction may now commit."""
        slots = self._slots.get(tp)
        taken: list[Slot] = []
        while slots and slots[0].done:
            taken.append(slots.popleft())
        return taken

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def restore(self, offsets: dict[TopicPartition, int]) -> None:
        """A commit failed: offer these offsets again next time."""
        for tp, end in offsets.items():
            self._slots.setdefault(tp, deque()).appendleft(Slot(tp, end, done=True))

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            return sum(1 for s in self._slots.get(tp, ()) if not s.done)
        return sum(1 for q in self._slots.values() for s in q if not s.done)

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._slots.pop(tp, None)
            self._committed.pop(tp, None)
