"""API keys (hashes only, constant-time compare) and the local GCRA buckets."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.errors import ConfigurationError
from streams.api import Admission, KeyRing, Limits, LocalBuckets, hash_key, load_keys_file


def test_keys_file_json_or_yaml_maps_hashes_to_tenants(tmp_path: Path) -> None:
    as_json = tmp_path / "keys.json"
    as_json.write_text(
        orjson.dumps(
            {"keys": {hash_key("s3cret"): {"tenant": "acme", "requests_per_s": 5}}}
        ).decode()
    )
    as_yaml = tmp_path / "keys.yaml"
    as_yaml.write_text(f"{hash_key('other')}: globex\n")
    ring = KeyRing(load_keys_file(as_json) + load_keys_file(as_yaml))
    acme = ring.authenticate("Bearer s3cret")
    assert acme is not None and acme.name == "acme" and acme.requests_per_s == 5.0
    globex = ring.authenticate("bearer other")
    assert globex is not None and globex.name == "globex" and globex.texts_per_s is None
    assert ring.authenticate("Bearer " + hash_key("s3cret")) is None  # the hash is no key
    assert ring.authenticate("Basic s3cret") is None
    assert ring.authenticate(None) is None


@pytest.mark.parametrize(
    "document",
    [
        '{"plain-key-by-mistake": {"tenant": "acme"}}',
        orjson.dumps({hash_key("k"): {"requests_per_s": 5}}).decode(),
        orjson.dumps({hash_key("k"): {"tenant": "a", "texts_per_s": -1}}).decode(),
        "[1, 2]",
    ],
)
def test_a_malformed_keys_file_is_refused_without_quoting_keys(
    tmp_path: Path, document: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(document)
    with pytest.raises(ConfigurationError) as info:
        load_keys_file(path)
    assert "plain-key-by-mistake" not in str(info.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gcra_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    limits = Limits(requests_per_s=10, texts_per_s=1000, burst_s=1)
    allowed = sum(buckets.check("t", limits, 1).allowed for _ in range(30))
    assert allowed == 10
    refused = buckets.check("t", limits, 1)
    assert not refused.allowed and refused.limit == "requests"
    assert 0 < refused.retry_after_s <= 0.1 + 1e-9
    clock.now += 0.5
    assert sum(buckets.check("t", limits, 1).allowed for _ in range(30)) == 5
    assert buckets.check("other", limits, 1).allowed


def test_a_batch_larger_than_the_burst_spends_it_and_leaves_a_debt() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    limits = Limits(requests_per_s=100, texts_per_s=10, burst_s=1)
    assert buckets.check("t", limits, 50).allowed  # full bucket: let in, not refused for ever
    refused = buckets.check("t", limits, 1)
    assert refused.limit == "texts" and refused.retry_after_s == pytest.approx(4.1)
    clock.now += 4.1
    assert buckets.check("t", limits, 1).allowed


def test_admission_bounds_the_total_and_each_tenants_share() -> None:
    admission = Admission(capacity=10, tenant_share=0.5)
    assert admission.try_acquire("a", 5) is None
    refusal = admission.try_acquire("a", 1)
    assert refusal is not None and refusal.reason == "tenant_share"
    assert admission.try_acquire("b", 5) is None
    refusal = admission.try_acquire("c", 1)
    assert refusal is not None and refusal.reason == "capacity"
    admission.release("a", 5)
    admission.release("b", 5)
    assert admission.in_flight == 0 and admission.held("a") == 0
    assert admission.try_acquire("a", 20) is None  # alone and idle: a big batch still runs


def test_the_api_command_refuses_to_start_without_a_keys_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.commands.cli import main

    monkeypatch.delenv("CONTENTSTREAM_API_KEYS_FILE", raising=False)
    assert main(["api"]) == 2
    assert "CONTENTSTREAM_API_KEYS_FILE" in capsys.readouterr().err


def test_hash_key_prints_what_a_keys_file_stores(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from streams.commands.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["api", "hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("s3cret")


def test_keys_file_changes_are_picked_up_without_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "keys.yaml"
    path.write_text(f"{hash_key('old')}: acme\n")
    ring = KeyRing.from_file(path, check_every_s=5, clock=clock)
    assert ring.authenticate("Bearer old") is not None
    replacement = tmp_path / "new.yaml"
    replacement.write_text(f"{hash_key('new')}: acme\n")
    replacement.replace(path)  # as a Secret update swaps the file
    assert ring.authenticate("Bearer new") is None  # not yet checked again
    clock.now += 6
    assert ring.authenticate("Bearer new") is not None
    assert ring.authenticate("Bearer old") is None  # revoked
    broken = tmp_path / "broken.yaml"
    broken.write_text("[not, a, mapping]\n")
    broken.replace(path)
    clock.now += 6
    assert ring.authenticate("Bearer new") is not None  # a broken file keeps the keys
