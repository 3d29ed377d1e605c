"""streams/security.py: Settings -> client arguments, and the failure explanations."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import ssl
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import faust
import pytest
from aiokafka import errors as kafka_errors
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from redis import exceptions as redis_errors

from schemas.errors import ConfigurationError, ServiceUnavailable
from streams.security import (
    aiokafka_client_kwargs,
    build_kafka_ssl_context,
    check_kafka_connection,
    describe_connection_error,
    faust_broker_credentials,
    faust_broker_kwargs,
    faust_broker_url,
    redis_client_kwargs,
)
from streams.settings import Settings, load_settings

TLS_MATERIAL_PY = Path(__file__).resolve().parents[1] / "integration" / "tls_material.py"


def _load_tls_material_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tls_material_for_unit_tests", TLS_MATERIAL_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line tool is not installed")
    return _load_tls_material_module().make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings also read the process environment: keep the developer's out.
    import os

    for name in list(os.environ):
        if name.startswith(("KAFKA_", "REDIS_", "CONTENTSTREAM_")):
            monkeypatch.delenv(name)


def settings(**env: object) -> Settings:
    return load_settings(**env)


def _ca_subjects(context: ssl.SSLContext) -> list[str]:
    subjects: list[str] = []
    for cert in context.get_ca_certs():
        subject: Any = cert["subject"]
        for rdn in subject:
            subjects.extend(str(value) for key, value in rdn if key == "commonName")
    return subjects


# ---------------------------------------------------------------------------- Kafka


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    s = settings(KAFKA_BOOTSTRAP_SERVERS="k1:9092, k2:9093")
    assert aiokafka_client_kwargs(s) == {
        "bootstrap_servers": ["k1:9092", "k2:9093"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_broker_kwargs(s) == {
        "broker": "kafka://k1:9092;kafka://k2:9093",
        "broker_credentials": None,
    }


def test_sasl_ssl_scram_uses_the_ca_and_checks_host_names(tls: Any) -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="alice",
        KAFKA_SASL_PASSWORD="alice-secret",
        KAFKA_SSL_CAFILE=str(tls.ca_cert),
    )
    kwargs = aiokafka_client_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "alice"
    assert kwargs["sasl_plain_password"] == "alice-secret"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert _ca_subjects(context) == ["contentstream test CA"]


def test_faust_credentials_give_aiokafka_the_same_arguments(tls: Any) -> None:
    """Faust turns broker_credentials into aiokafka kwargs itself: they must agree."""
    for protocol, mechanism in [
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SSL", None),
        ("PLAINTEXT", None),
    ]:
        env: dict[str, object] = {"KAFKA_SECURITY_PROTOCOL": protocol}
        if protocol.startswith("SASL"):
            env |= {
                "KAFKA_SASL_MECHANISM": mechanism,
                "KAFKA_SASL_USERNAME": "bob",
                "KAFKA_SASL_PASSWORD": "pw",
            }
        if protocol.endswith("SSL"):
            env["KAFKA_SSL_CAFILE"] = str(tls.ca_cert)
        s = settings(**env)
        ours = aiokafka_client_kwargs(s)
        ours.pop("bootstrap_servers")
        theirs = dict(credentials_to_aiokafka_auth(faust_broker_credentials(s)))  # type: ignore[arg-type]
        ours_context = ours.pop("ssl_context", None)
        theirs_context = theirs.pop("ssl_context", None)
        assert (ours_context is None) == (theirs_context is None), protocol
        assert ours == theirs, protocol


def test_faust_sasl_credentials_carry_mechanism_and_tls(tls: Any) -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="alice",
        KAFKA_SASL_PASSWORD="alice-secret",
        KAFKA_SSL_CAFILE=str(tls.ca_cert),
    )
    creds = faust_broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.protocol.value == "SASL_SSL"
    assert creds.ssl_context is not None
    assert "alice-secret" not in repr(creds)


def test_faust_app_accepts_the_broker_kwargs(tls: Any) -> None:
    s = settings(
        KAFKA_BOOTSTRAP_SERVERS="k1:9093",
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(tls.ca_cert),
    )
    app = faust.App("security-test", **faust_broker_kwargs(s))
    assert [str(url) for url in app.conf.broker] == ["kafka://k1:9093"]
    assert isinstance(app.conf.broker_credentials, faust.SSLCredentials)


def test_mutual_tls_loads_the_client_certificate(tls: Any) -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(tls.ca_cert),
        KAFKA_SSL_CERTFILE=str(tls.client_cert),
        KAFKA_SSL_KEYFILE=str(tls.client_key),
    )
    assert build_kafka_ssl_context(s) is not None
    # A key that does not belong to the certificate is a configuration error.
    wrong = settings(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CERTFILE=str(tls.client_cert),
        KAFKA_SSL_KEYFILE=str(tls.broker_key),
    )
    with pytest.raises(ConfigurationError, match="KAFKA_SSL_CERTFILE"):
        build_kafka_ssl_context(wrong)


def test_check_hostname_false_still_verifies_the_chain(tls: Any) -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(tls.ca_cert),
        KAFKA_SSL_CHECK_HOSTNAME="false",
    )
    context = build_kafka_ssl_context(s)
    assert context is not None
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_plaintext_has_no_tls_and_defaults_to_plain() -> None:
    s = settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p"
    )
    kwargs = aiokafka_client_kwargs(s)
    assert "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "PLAIN"
    creds = faust_broker_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_PLAINTEXT"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "KAFKA_SSL_CAFILE=/nonexistent/ca.pem is not a readable file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/x/client.pem"},
            "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together",
        ),
    ],
)
def test_incomplete_settings_are_configuration_errors(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        aiokafka_client_kwargs(settings(**env))
    assert names in info.value.message


def test_a_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="KAFKA_SSL_CAFILE"):
        aiokafka_client_kwargs(settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(bogus)))


def test_faust_broker_url_strips_blanks() -> None:
    assert faust_broker_url(settings(KAFKA_BOOTSTRAP_SERVERS=" a:1 ,, b:2 ")) == (
        "kafka://a:1;kafka://b:2"
    )


# ---------------------------------------------------------------------------- Redis


def test_redis_without_extras_is_empty() -> None:
    assert redis_client_kwargs(settings(REDIS_URL="redis://r:6379/0")) == {}
    assert redis_client_kwargs(settings()) == {}


def test_redis_password_and_tls(tls: Any) -> None:
    s = settings(
        REDIS_URL="rediss://r:6380/0",
        REDIS_PASSWORD="hunter2",
        REDIS_SSL_CAFILE=str(tls.ca_cert),
    )
    kwargs = redis_client_kwargs(s)
    assert kwargs == {
        "password": "hunter2",
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(tls.ca_cert),
    }
    import redis.asyncio

    client = redis.asyncio.from_url(s.redis_url or "", **kwargs)
    connection_kwargs = client.connection_pool.connection_kwargs
    assert connection_kwargs["password"] == "hunter2"
    assert connection_kwargs["ssl_ca_certs"] == str(tls.ca_cert)
    assert connection_kwargs["ssl_check_hostname"] is True


def test_redis_requirement_admits_only_versions_that_check_host_names() -> None:
    # redis-py 5 left ssl_check_hostname off by default; 6 turned it on.
    import inspect
    import tomllib
    from importlib.metadata import version

    import redis.asyncio
    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    (requirement,) = [r for r in map(Requirement, dependencies) if r.name == "redis"]
    assert not requirement.specifier.contains("5.3.1")
    assert requirement.specifier.contains(version("redis"))  # the venv satisfies it
    default = inspect.signature(redis.asyncio.SSLConnection.__init__).parameters
    assert default["ssl_check_hostname"].default is True


def test_redis_ca_without_rediss_is_an_error(tls: Any) -> None:
    s = settings(REDIS_URL="redis://r:6379/0", REDIS_SSL_CAFILE=str(tls.ca_cert))
    with pytest.raises(ConfigurationError, match="rediss://"):
        redis_client_kwargs(s)


# ---------------------------------------------------------------------------- errors

SCRAM_SETTINGS = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9094",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "x",
    "KAFKA_SASL_PASSWORD": "wrong",
}


def _cert_error(verify_message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {verify_message}"
    )
    exc.verify_message = verify_message
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    return exc


def test_sasl_failure_names_user_mechanism_and_variables() -> None:
    exc = kafka_errors.SaslAuthenticationFailed(
        "Authentication failed during authentication due to invalid credentials with "
        "SASL mechanism SCRAM-SHA-512"
    )
    assert describe_connection_error(exc, settings(**SCRAM_SETTINGS)) == (
        "Kafka authentication failed for user 'x' (SCRAM-SHA-512): "
        "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
    )
    # Without settings the mechanism still comes from the broker's message.
    assert describe_connection_error(exc).startswith("Kafka authentication failed (SCRAM-SHA-512)")


def test_wrapped_causes_are_found() -> None:
    cause = kafka_errors.SaslAuthenticationFailed("invalid credentials")
    try:
        try:
            raise cause
        except kafka_errors.KafkaError as inner:
            raise kafka_errors.KafkaConnectionError("Unable to bootstrap") from inner
    except kafka_errors.KafkaConnectionError as outer:
        message = describe_connection_error(outer, settings(**SCRAM_SETTINGS))
    assert message.startswith("Kafka authentication failed for user 'x' (SCRAM-SHA-512)")

    group = ExceptionGroup("startup", [ValueError("x"), _cert_error("self-signed certificate")])
    assert describe_connection_error(group).startswith("TLS certificate verification failed")


def test_unknown_ca_points_at_the_ca_file() -> None:
    message = describe_connection_error(
        _cert_error("unable to get local issuer certificate"), settings(**SCRAM_SETTINGS)
    )
    assert message == (
        "TLS certificate verification failed (kafka-0:9094): unable to get local issuer "
        "certificate: check KAFKA_SSL_CAFILE (the CA that signed the brokers' certificates)"
    )


def test_host_name_mismatch_points_at_check_hostname() -> None:
    message = describe_connection_error(
        _cert_error("Hostname mismatch, certificate is not valid for 'kafka-0'.")
    )
    assert message.startswith("TLS certificate verification failed: Hostname mismatch")
    assert "KAFKA_SSL_CHECK_HOSTNAME=false" in message


def test_tls_against_a_plaintext_listener_names_the_protocol() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    assert "KAFKA_SECURITY_PROTOCOL" in describe_connection_error(exc)


def test_unsupported_mechanism_points_at_the_mechanism() -> None:
    exc = kafka_errors.UnsupportedSaslMechanismError(
        "Kafka broker does not support SCRAM-SHA-256 sasl mechanism."
    )
    assert "check KAFKA_SASL_MECHANISM" in describe_connection_error(exc)


def test_redis_authentication_failure() -> None:
    message = describe_connection_error(redis_errors.AuthenticationError("invalid password"))
    assert message.startswith("Redis authentication failed")
    assert "REDIS_PASSWORD" in message


def test_unrecognised_errors_keep_their_text() -> None:
    assert describe_connection_error(RuntimeError("boom")) == "RuntimeError: boom"
    generic = describe_connection_error(
        kafka_errors.KafkaConnectionError("Unable to bootstrap from [('k', 9092)]"),
        settings(KAFKA_BOOTSTRAP_SERVERS="k:9092"),
    )
    assert generic.startswith("cannot connect to Kafka (k:9092)")
    assert "KAFKA_BOOTSTRAP_SERVERS" in generic


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_check_kafka_connection_names_a_closed_port() -> None:
    s = settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}")
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(check_kafka_connection(s, timeout_s=5))
    assert "KAFKA_BOOTSTRAP_SERVERS" in info.value.message
    assert info.value.retriable is True


def test_a_reset_connection_points_at_the_security_protocol() -> None:
    tls = settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_BOOTSTRAP_SERVERS="k:9092")
    message = describe_connection_error(ConnectionResetError(), tls)
    assert message.startswith("Kafka closed the connection during the TLS handshake (k:9092)")
    assert "KAFKA_SECURITY_PROTOCOL" in message
    plain = describe_connection_error(ConnectionResetError(), settings())
    assert plain.startswith("Kafka closed the connection (127.0.0.1:9092)")
    assert "KAFKA_SECURITY_PROTOCOL" in plain


def test_an_exception_without_text_is_named_by_its_type() -> None:
    message = describe_connection_error(kafka_errors.KafkaConnectionError())
    assert "KafkaConnectionError" in message
