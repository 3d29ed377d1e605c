"""Which offsets are safe to acknowledge: never past the oldest event in flight.

Events of one partition finish out of order under concurrency. Faust commits the
highest contiguous acknowledged offset, but its gap handling can skip a single
unacknowledged offset at the head (faust-streaming #606). So contentstream hands Faust
acknowledgements strictly in offset order: an offset is released only when it and every
earlier tracked offset of its partition are done. Faust then never sees a gap.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")
TopicPartition = tuple[str, int]


class OffsetTracker(Generic[T]):
    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, OrderedDict[int, tuple[bool, T]]] = {}

    def start(self, tp: TopicPartition, offset: int, item: T) -> None:
        self._partitions.setdefault(tp, OrderedDict())[offset] = (False, item)

    def finish(self, tp: TopicPartition, offset: int) -> list[T]:
        """Mark one offset done; return the items now releasable, in offset order."""
        queue = self._partitions.get(tp)
        if queue is None or offset not in queue:
            return []
        queue[offset] = (True, queue[offset][1])
        released: list[T] = []
        while queue:
            _head_offset, (done, item) = next(iter(queue.items()))
            if not done:
                break
            queue.popitem(last=False)
            released.append(item)
        return released

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            return len(self._partitions.get(tp, ()))
        return sum(len(q) for q in self._partitions.values())

    def oldest(self, tp: TopicPartition) -> int | None:
        queue = self._partitions.get(tp)
        if not queue:
            return None
        return next(iter(queue))

    def partitions(self) -> list[TopicPartition]:
        return [tp for tp, q in self._partitions.items() if q]

    def forget(self, tp: TopicPartition) -> None:
        self._partitions.pop(tp, None)
