from streams.engines.offset_tracker import OffsetTracker

TP = ("raw", 0)


def test_offsets_are_released_only_in_order() -> None:
    t: OffsetTracker[int] = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.start(TP, off, off)
    assert t.finish(TP, 12) == []
    assert t.finish(TP, 11) == []
    assert t.oldest(TP) == 10
    assert t.finish(TP, 10) == [10, 11, 12]
    assert t.finish(TP, 13) == [13]
    assert t.in_flight() == 0


def test_slow_head_holds_back_everything_behind_it() -> None:
    """faust-streaming #606: a slow first event must not be committed past."""
    t: OffsetTracker[int] = OffsetTracker()
    for off in range(2684, 2690):
        t.start(TP, off, off)
    for off in range(2685, 2690):
        assert t.finish(TP, off) == []
    assert t.in_flight(TP) == 6
    assert t.finish(TP, 2684) == list(range(2684, 2690))


def test_partitions_are_independent_and_forgettable() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.start(("raw", 0), 1, "a")
    t.start(("raw", 1), 1, "b")
    assert t.finish(("raw", 1), 1) == ["b"]
    t.forget(("raw", 0))
    assert t.finish(("raw", 0), 1) == []
    assert t.partitions() == []
