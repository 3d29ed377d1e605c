"""``contentstream lag``: table and JSON output, exit codes (the broker is faked or absent).

tests/integration/test_prometheus.py runs it against a real backlog on Kafka.
"""

from __future__ import annotations

import socket
from typing import Any

import orjson
import pytest

from streams.commands import cli
from streams.commands import lag as lag_command
from streams.operations.lag_monitor import PartitionOffsets
from streams.settings import Settings


def report(total: int = 25) -> dict[str, Any]:
    return {
        "group": "contentstream",
        "topic": "content.raw",
        "total_lag": total,
        "partitions": [
            lag_command.partition_row(
                PartitionOffsets("content.raw", 0, 0, log_end=120, committed=100), 12.34
            ),
            lag_command.partition_row(
                PartitionOffsets("content.raw", 1, 0, log_end=5, committed=None), None
            ),
            lag_command.partition_row(
                PartitionOffsets("content.raw", 2, 0, log_end=7, committed=7), 0.0
            ),
        ],
    }


@pytest.fixture
def fake_broker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """read_lag answers with report(); records the group and topic asked for."""
    asked: list[tuple[str, str]] = []

    async def fake_read_lag(
        settings: Settings, group: str, topic: str, timeout_s: float
    ) -> dict[str, Any]:
        asked.append((group, topic))
        return report()

    monkeypatch.setattr(lag_command, "read_lag", fake_read_lag)
    return asked


def test_table_lists_every_partition_and_the_total() -> None:
    lines = lag_command.render_table(report()).splitlines()
    assert lines[0] == "group contentstream  topic content.raw"
    assert lines[1].split() == [
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "OLDEST-UNCOMMITTED-AGE",
    ]
    assert lines[2].split() == ["0", "100", "120", "20", "12.3s"]
    assert lines[3].split() == ["1", "-", "5", "5", "-"]
    assert lines[4].split() == ["2", "7", "7", "0", "0.0s"]
    assert lines[5].split() == ["TOTAL", "25"]


def test_defaults_come_from_settings(
    fake_broker: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONTENTSTREAM_APP_ID", "my-group")
    monkeypatch.setenv("CONTENTSTREAM_INPUT_TOPIC", "my.raw")
    assert cli.main(["lag"]) == 0
    assert fake_broker == [("my-group", "my.raw")]
    assert "TOTAL" in capsys.readouterr().out
    assert cli.main(["lag", "--group", "g2", "--topic", "t2"]) == 0
    assert fake_broker[-1] == ("g2", "t2")


def test_json_output(
    fake_broker: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["lag", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = orjson.loads(out)
    assert data["total_lag"] == 25
    assert data["partitions"][1] == {
        "partition": 1,
        "committed": None,
        "log_start": 0,
        "log_end": 5,
        "lag": 5,
        "lag_seconds": None,
    }


def test_exit_status_1_above_max_lag(fake_broker: list[tuple[str, str]]) -> None:
    assert cli.main(["lag", "--max-lag", "24"]) == 1
    assert cli.main(["lag", "--max-lag", "25"]) == 0
    assert cli.main(["lag", "--json", "--max-lag", "0"]) == 1


def test_missing_topic_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_topic(settings: Settings, group: str, topic: str, timeout_s: float) -> Any:
        raise LookupError(f"topic {topic!r} does not exist")

    monkeypatch.setattr(lag_command, "read_lag", no_topic)
    assert cli.main(["lag", "--topic", "nope"]) == 2
    err = capsys.readouterr().err
    assert err == "contentstream: topic 'nope' does not exist\n"


def test_unreachable_broker_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    assert cli.main(["lag", "--timeout", "3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("contentstream: ")
    assert f"127.0.0.1:{port}" in lines[0]
