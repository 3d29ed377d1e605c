"""Kafka over SASL_SSL with SCRAM-SHA-512, through ``streams/security.py``.

Starts its OWN single-node broker with ``scripts/services.sh`` (separate state dir and
ports, so the shared test broker is untouched) with an extra SASL_SSL listener whose
certificate is signed by a CA made here; the SCRAM user is created through the
broker's PLAINTEXT listener with the Admin API. Then:

* produce and consume over SASL_SSL with aiokafka and the kwargs from security.py;
* a wrong password fails fast with the clear "authentication failed" line;
* a CA that did not sign the broker's certificate fails fast with the clear TLS line.

The ``secured_kafka`` fixture yields the secured bootstrap address and the
environment variables a ``contentstream`` command needs to use it (``env``), so CLI /
worker tests can run against it: ``subprocess.run([...], env={**os.environ, **secured_kafka.env})``.

Ports are free ones picked at start (other brokers may run on this machine), or fixed by
CONTENTSTREAM_SASL_TEST_KAFKA_PORT (PLAINTEXT), CONTENTSTREAM_SASL_TEST_CONTROLLER_PORT,
CONTENTSTREAM_SASL_TEST_SASL_SSL_PORT and CONTENTSTREAM_SASL_TEST_REDIS_PORT
(services.sh starts a Redis too).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tls_material import TlsMaterial, make_tls_material

from schemas.errors import ConfigurationError, ContentStreamError
from streams.security import aiokafka_client_kwargs, check_kafka_connection, faust_broker_kwargs
from streams.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services.sh"
# A fixed dir (gitignored .services/) rather than a pytest tmp dir: a broker left
# over by a killed run is found through its pid file and stopped before starting.
STATE_DIR = REPO_ROOT / ".services" / "sasl-ssl-test"
SHARED_KAFKA_LIBS = REPO_ROOT / ".services" / "kafka" / "libs"


def _choose_ports(*env_names: str) -> list[int]:
    """Ports from the environment, or free ones the OS picks (held together, so distinct)."""
    sockets = []
    try:
        ports = []
        for name in env_names:
            if os.environ.get(name):
                ports.append(int(os.environ[name]))
                continue
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
        return ports
    finally:
        for sock in sockets:
            sock.close()


PLAINTEXT_PORT, CONTROLLER_PORT, SASL_SSL_PORT, REDIS_PORT = _choose_ports(
    "CONTENTSTREAM_SASL_TEST_KAFKA_PORT",
    "CONTENTSTREAM_SASL_TEST_CONTROLLER_PORT",
    "CONTENTSTREAM_SASL_TEST_SASL_SSL_PORT",
    "CONTENTSTREAM_SASL_TEST_REDIS_PORT",
)

USERNAME = "alice"
PASSWORD = "alice-secret"
MECHANISM = "SCRAM-SHA-512"
FAIL_FAST_S = 30.0

# Run with the JDK's single-file source launcher against the broker's kafka-clients jar
# (kafka-configs' ConfigCommand lives in kafka-tools, which the broker does not ship).
ADD_SCRAM_USER_JAVA = """
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;

public class AddScramUser {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(props)) {
            ScramCredentialInfo info =
                new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096);
            UserScramCredentialUpsertion user =
                new UserScramCredentialUpsertion(args[1], info, args[2]);
            admin.alterUserScramCredentials(List.of(user)).all().get();
        }
        System.out.println("added SCRAM-SHA-512 user " + args[1]);
    }
}
"""


@dataclass(frozen=True)
class SecuredKafka:
    """A broker with a SASL_SSL (SCRAM-SHA-512) listener, and how to reach it."""

    bootstrap: str
    plaintext_bootstrap: str
    tls: TlsMaterial
    username: str
    password: str
    mechanism: str
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, **overrides: object) -> Settings:
        """Settings for the secured listener; ``overrides`` use the env names."""
        values: dict[str, object] = {**self.env, **overrides}
        return load_settings(**values)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _services_env() -> dict[str, str]:
    return {
        **os.environ,
        "CONTENTSTREAM_SERVICES_DIR": str(STATE_DIR),
        "CONTENTSTREAM_KAFKA_PORT": str(PLAINTEXT_PORT),
        "CONTENTSTREAM_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "CONTENTSTREAM_REDIS_PORT": str(REDIS_PORT),
        "CONTENTSTREAM_KAFKA_EXTRA_PROPERTIES": str(STATE_DIR / "sasl-ssl.properties"),
    }


def _services(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES_SCRIPT), *args],
        cwd=REPO_ROOT,
        env=_services_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _stop_broker() -> None:
    proc = _services("stop", "--clean", timeout=120)
    if proc.returncode != 0:
        print(f"services.sh stop failed:\n{proc.stderr}")


def _reuse_shared_kafka_libs() -> None:
    """Point at the shared broker's resolved jars, saving a Maven run when they exist."""
    libs = STATE_DIR / "kafka" / "libs"
    if libs.exists() or libs.is_symlink():
        return
    if (SHARED_KAFKA_LIBS / ".complete").is_file():
        libs.parent.mkdir(parents=True, exist_ok=True)
        libs.symlink_to(SHARED_KAFKA_LIBS, target_is_directory=True)


def _write_extra_properties(tls: TlsMaterial) -> Path:
    path = STATE_DIR / "sasl-ssl.properties"
    path.write_text(
        "listeners=PLAINTEXT://127.0.0.1:@KAFKA_PORT@,"
        f"CONTROLLER://127.0.0.1:@KAFKA_CONTROLLER_PORT@,SASL_SSL://127.0.0.1:{SASL_SSL_PORT}\n"
        "advertised.listeners=PLAINTEXT://127.0.0.1:@KAFKA_PORT@,"
        f"SASL_SSL://127.0.0.1:{SASL_SSL_PORT}\n"
        f"sasl.enabled.mechanisms={MECHANISM}\n"
        f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}\n"
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
        "listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
        f"listener.name.sasl_ssl.ssl.keystore.location={tls.broker_keystore_pem}\n"
        "listener.name.sasl_ssl.ssl.client.auth=none\n"
    )
    return path


def _add_scram_user(username: str, password: str) -> None:
    java = shutil.which("java")
    assert java is not None, "java disappeared after services.sh started Kafka"
    source = STATE_DIR / "AddScramUser.java"
    source.write_text(ADD_SCRAM_USER_JAVA)
    libs = STATE_DIR / "kafka" / "libs"
    proc = subprocess.run(
        [
            java,
            "-cp",
            f"{libs}/*",
            "-Dlog4j2.level=warn",
            str(source),
            f"127.0.0.1:{PLAINTEXT_PORT}",
            username,
            password,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"adding the SCRAM user failed:\n{proc.stdout}\n{proc.stderr}")


def _wait_until_authenticates(secured: SecuredKafka, deadline_s: float = 60.0) -> None:
    """SCRAM credentials reach the listener through the metadata log: wait for them."""
    deadline = time.monotonic() + deadline_s
    settings = secured.settings()
    while True:
        try:
            asyncio.run(check_kafka_connection(settings, timeout_s=10))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    if shutil.which("java") is None and not (SHARED_KAFKA_LIBS / ".complete").is_file():
        pytest.skip("java is not installed; run scripts/services.sh install first")
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line tool is not installed")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    _stop_broker()  # a broker left by a killed run would hold the ports
    for port in (PLAINTEXT_PORT, CONTROLLER_PORT, SASL_SSL_PORT, REDIS_PORT):
        if _port_open(port):
            pytest.fail(
                f"port {port} is busy: set CONTENTSTREAM_SASL_TEST_* ports (see module docstring)"
            )

    tls = make_tls_material(tmp_path_factory.mktemp("kafka-tls"))
    _reuse_shared_kafka_libs()
    _write_extra_properties(tls)
    secured = SecuredKafka(
        bootstrap=f"127.0.0.1:{SASL_SSL_PORT}",
        plaintext_bootstrap=f"127.0.0.1:{PLAINTEXT_PORT}",
        tls=tls,
        username=USERNAME,
        password=PASSWORD,
        mechanism=MECHANISM,
        env={
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{SASL_SSL_PORT}",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": USERNAME,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CAFILE": str(tls.ca_cert),
        },
    )
    try:
        started = _services("start", timeout=900)
        if started.returncode != 0:
            raise RuntimeError(f"services.sh start failed:\n{started.stderr}")
        _add_scram_user(USERNAME, PASSWORD)
        _wait_until_authenticates(secured)
        yield secured
    finally:
        _stop_broker()


async def _create_topic(settings: Settings, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**aiokafka_client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()


async def _produce_with_aiokafka(settings: Settings, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**aiokafka_client_kwargs(settings), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


async def _produce_with_faust(settings: Settings, topic: str, values: list[bytes]) -> None:
    """Faust's own producer, configured only by faust_broker_kwargs (as the worker is)."""
    import faust

    app = faust.App(f"sasl-ssl-test-{uuid.uuid4().hex[:8]}", **faust_broker_kwargs(settings))
    producer = app.producer
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, value, None, None, None)
    finally:
        await producer.stop()


async def _consume(settings: Settings, topic: str, count: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        **aiokafka_client_kwargs(settings),
        group_id=f"sasl-ssl-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return received


async def _round_trip(settings: Settings, topic: str, values: list[bytes]) -> list[bytes]:
    await _create_topic(settings, topic)
    await _produce_with_aiokafka(settings, topic, values)
    return await _consume(settings, topic, len(values))


def test_produce_and_consume_over_sasl_ssl(secured_kafka: SecuredKafka) -> None:
    settings = secured_kafka.settings()
    kwargs = aiokafka_client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["ssl_context"].check_hostname is True

    values = [f"secured message {i} 你好".encode() for i in range(20)]
    topic = f"sasl-ssl-{uuid.uuid4().hex[:8]}"
    received = asyncio.run(_round_trip(settings, topic, values))
    assert sorted(received) == sorted(values)


def test_faust_producer_over_sasl_ssl(secured_kafka: SecuredKafka) -> None:
    settings = secured_kafka.settings()
    topic = f"sasl-ssl-faust-{uuid.uuid4().hex[:8]}"
    values = [f"from faust {i}".encode() for i in range(5)]

    async def scenario() -> list[bytes]:
        await _create_topic(settings, topic)
        await _produce_with_faust(settings, topic, values)
        return await _consume(settings, topic, len(values))

    assert sorted(asyncio.run(scenario())) == sorted(values)


def _time_failure(settings: Settings) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        asyncio.run(check_kafka_connection(settings, timeout_s=FAIL_FAST_S))
    return info.value.message, time.monotonic() - started


async def _producer_start_fails(settings: Settings) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(**aiokafka_client_kwargs(settings), request_timeout_ms=10_000)
    try:
        with pytest.raises(KafkaError):
            await producer.start()
    finally:
        await producer.stop()


def test_wrong_password_fails_fast_with_clear_message(secured_kafka: SecuredKafka) -> None:
    settings = secured_kafka.settings(KAFKA_SASL_PASSWORD="not-the-password")
    message, elapsed = _time_failure(settings)
    print(f"wrong password after {elapsed:.2f}s: {message}")
    assert elapsed < FAIL_FAST_S
    assert message == (
        "Kafka authentication failed for user 'alice' (SCRAM-SHA-512): "
        "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
    )

    started = time.monotonic()
    asyncio.run(_producer_start_fails(settings))
    assert time.monotonic() - started < FAIL_FAST_S


def test_unknown_user_is_an_authentication_failure(secured_kafka: SecuredKafka) -> None:
    settings = secured_kafka.settings(KAFKA_SASL_USERNAME="mallory")
    message, elapsed = _time_failure(settings)
    assert elapsed < FAIL_FAST_S
    assert message.startswith("Kafka authentication failed for user 'mallory' (SCRAM-SHA-512)")


@pytest.mark.parametrize("check_hostname", [True, False])
def test_unknown_ca_fails_fast_with_clear_message(
    secured_kafka: SecuredKafka, check_hostname: bool
) -> None:
    # KAFKA_SSL_CHECK_HOSTNAME=false skips the name match only, never the chain check.
    settings = secured_kafka.settings(
        KAFKA_SSL_CAFILE=str(secured_kafka.tls.other_ca_cert),
        KAFKA_SSL_CHECK_HOSTNAME=check_hostname,
    )
    message, elapsed = _time_failure(settings)
    print(f"unknown CA after {elapsed:.2f}s: {message}")
    assert elapsed < FAIL_FAST_S
    assert message.startswith("TLS certificate verification failed (127.0.0.1:")
    assert "check KAFKA_SSL_CAFILE" in message

    started = time.monotonic()
    asyncio.run(_producer_start_fails(settings))
    assert time.monotonic() - started < FAIL_FAST_S


def test_tls_client_on_plaintext_listener_names_the_protocol(
    secured_kafka: SecuredKafka,
) -> None:
    settings = secured_kafka.settings(KAFKA_BOOTSTRAP_SERVERS=secured_kafka.plaintext_bootstrap)
    started = time.monotonic()
    with pytest.raises(ContentStreamError) as info:
        asyncio.run(check_kafka_connection(settings, timeout_s=10))
    print(f"TLS to a plaintext listener: {info.value.message}")
    assert time.monotonic() - started < FAIL_FAST_S
    assert info.value.message.startswith("Kafka closed the connection during the TLS handshake")
    assert "KAFKA_SECURITY_PROTOCOL" in info.value.message


def test_plaintext_client_on_tls_listener_names_the_protocol(secured_kafka: SecuredKafka) -> None:
    settings = secured_kafka.settings(KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    started = time.monotonic()
    with pytest.raises(ContentStreamError) as info:
        asyncio.run(check_kafka_connection(settings, timeout_s=10))
    print(f"plaintext to a TLS listener: {info.value.message}")
    assert time.monotonic() - started < FAIL_FAST_S
    assert "KAFKA_SECURITY_PROTOCOL" in info.value.message


# ---------------------------------------------------------------------------- the CLI

EXAMPLES = REPO_ROOT / "examples" / "events.jsonl"


def _cli(
    secured: SecuredKafka, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``contentstream ARGS`` with the secured listener's settings (``env`` overrides)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "REDIS_", "CONTENTSTREAM_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO_ROOT,
        env={**clean, **secured.env, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_produce_and_tail_over_sasl_ssl(secured_kafka: SecuredKafka) -> None:
    topic = f"sasl-ssl-cli-{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_topic(secured_kafka.settings(), topic))
    expected = [line for line in EXAMPLES.read_text().splitlines() if line.strip()]

    produced = _cli(secured_kafka, "produce", str(EXAMPLES), "--topic", topic, "--quiet")
    assert produced.returncode == 0, produced.stderr

    tailed = _cli(
        secured_kafka,
        "tail",
        "--topic",
        topic,
        "--from-beginning",
        "--limit",
        str(len(expected)),
        "--idle-timeout",
        "30",
    )
    assert tailed.returncode == 0, tailed.stderr
    records = [json.loads(line) for line in tailed.stdout.splitlines() if line.strip()]
    assert len(records) == len(expected)
    assert {r.get("id") for r in records} == {json.loads(line)["id"] for line in expected}


def test_cli_wrong_password_exits_with_the_clear_line(secured_kafka: SecuredKafka) -> None:
    started = time.monotonic()
    proc = _cli(
        secured_kafka, "produce", str(EXAMPLES), "--quiet", KAFKA_SASL_PASSWORD="wrong-password"
    )
    assert time.monotonic() - started < FAIL_FAST_S + 15  # + interpreter start-up
    assert proc.returncode != 0
    assert (
        "Kafka authentication failed for user 'alice' (SCRAM-SHA-512): "
        "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_end_to_end_over_sasl_ssl(secured_kafka: SecuredKafka, tmp_path: Path) -> None:
    """A real worker, producer and tail, all through the SCRAM + TLS listener."""
    name = f"sasl-worker-{uuid.uuid4().hex[:8]}"
    topics = {
        "CONTENTSTREAM_APP_ID": name,
        "CONTENTSTREAM_INPUT_TOPIC": f"{name}.raw",
        "CONTENTSTREAM_OUTPUT_TOPIC": f"{name}.analyzed",
        "CONTENTSTREAM_DEAD_LETTER_TOPIC": f"{name}.dlq",
        "CONTENTSTREAM_TOPIC_PARTITIONS": "2",
        "CONTENTSTREAM_POOL_PROCESSES": "1",
        "CONTENTSTREAM_POOL_STANDBY_PROCESSES": "0",
        "CONTENTSTREAM_WEB_PORT": "0",
    }
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "REDIS_", "CONTENTSTREAM_"))
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker"],
        cwd=REPO_ROOT,
        env={**clean, **secured_kafka.env, **topics},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        expected = {json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines() if line}
        produced = _cli(secured_kafka, "produce", str(EXAMPLES), "--quiet", **topics)
        assert produced.returncode == 0, produced.stderr
        tailed = _cli(
            secured_kafka,
            "tail",
            "--from-beginning",
            "--limit",
            str(len(expected)),
            "--idle-timeout",
            "90",
            timeout=240,
            **topics,
        )
        worker_log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        assert tailed.returncode == 0, tailed.stderr + worker_log
        results = [json.loads(line) for line in tailed.stdout.splitlines() if line.strip()]
        assert {r["id"] for r in results} == expected
        assert all(r["language"] in {"zh", "en", "mixed"} for r in results)
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
