"""WorkerMetrics: recording a batch's stage timings at once equals observing each event."""

from __future__ import annotations

from prometheus_client import generate_latest

from streams.operations.metrics import WorkerMetrics, observe_values


def stage_lines(m: WorkerMetrics) -> list[str]:
    text = generate_latest(m.registry).decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("contentstream_stage") and "_created" not in line
    ]


def test_stage_timings_of_a_batch_record_like_single_observations() -> None:
    one_by_one, at_once = WorkerMetrics(), WorkerMetrics()
    timings = {"keywords": 0.4, "entities": 30.0, "summary": 0.0}
    for _ in range(7):
        one_by_one.observe_stages(timings)
    at_once.observe_stages(timings, 7)
    at_once.observe_stages({"keywords": 9999.0}, 2)  # past the largest bucket: +Inf only
    for _ in range(2):
        one_by_one.observe_stages({"keywords": 9999.0})
    assert stage_lines(at_once) == stage_lines(one_by_one)
    assert any('stage="keywords"' in x and x.endswith(" 9.0") for x in stage_lines(at_once))


def test_many_latencies_at_once_record_like_single_observations() -> None:
    one_by_one, at_once = WorkerMetrics(), WorkerMetrics()
    # Bucket bounds themselves, values between them, zero and past the largest bound.
    bounds = list(one_by_one.end_to_end_latency._upper_bounds[:-1])
    values = [0.0, *bounds, *(b * 1.01 for b in bounds), 1e6, 0.0123]
    for value in values:
        one_by_one.end_to_end_latency.observe(value)
    observe_values(at_once.end_to_end_latency, values)
    observe_values(at_once.end_to_end_latency, [])

    def lines(m: WorkerMetrics) -> list[str]:
        text = generate_latest(m.registry).decode()
        return [x for x in text.splitlines() if "end_to_end_latency" in x and "_created" not in x]

    assert lines(at_once) == lines(one_by_one)
    assert any(x.endswith(f" {float(len(values))}") for x in lines(at_once))
