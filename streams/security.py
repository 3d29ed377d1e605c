"""Secure connections: Settings -> Kafka / Faust / Redis client arguments, and clear
one-line explanations of the connection failures operators actually hit (wrong SASL
password, unknown CA, host name mismatch, TLS spoken to a plaintext listener).

The ``*_kwargs`` functions are pure: they read files only to build the TLS context, and
open no connection. ``check_kafka_connection`` is the one function here that does I/O:
aiokafka's bootstrap swallows the real cause of a failed connection (it logs it and
raises a bare "Unable to bootstrap"), so a preflight connection is the way to name it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from schemas.errors import ConfigurationError, ContentStreamError, ServiceUnavailable
from streams.redaction import mask_credentials
from streams.settings import Settings

DEFAULT_SASL_MECHANISM = "PLAIN"
DEFAULT_KAFKA_PORT = 9092

_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


# ----------------------------------------------------------------------------- Kafka


def sasl_mechanism(settings: Settings) -> str:
    """The SASL mechanism in use (PLAIN when a SASL protocol names none, as aiokafka)."""
    return settings.kafka_sasl_mechanism or DEFAULT_SASL_MECHANISM


def build_kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL, or None for the plaintext protocols.

    Without ``KAFKA_SSL_CAFILE`` the system trust store is used (managed Kafka services
    with public certificates). The certificate chain is always verified;
    ``KAFKA_SSL_CHECK_HOSTNAME=false`` only skips the host name match.
    """
    if settings.kafka_security_protocol not in _TLS_PROTOCOLS:
        return None
    from aiokafka.helpers import create_ssl_context

    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        raise ConfigurationError(
            "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE must be set together (mutual TLS)"
        )
    for name, path in (
        ("KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
        ("KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
        ("KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile),
    ):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{name}={path} is not a readable file")
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"cannot load Kafka TLS files ({exc}): check KAFKA_SSL_CAFILE, "
            "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE hold PEM data"
        ) from exc
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def _sasl_credentials(settings: Settings) -> tuple[str, str]:
    username = settings.kafka_sasl_username
    password = settings.kafka_sasl_password
    if not username or password is None:
        raise ConfigurationError(
            f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    return username, password.get_secret_value()


def _security_kwargs(settings: Settings) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in _SASL_PROTOCOLS:
        username, password = _sasl_credentials(settings)
        kwargs["sasl_mechanism"] = sasl_mechanism(settings)
        kwargs["sasl_plain_username"] = username
        kwargs["sasl_plain_password"] = password
    context = build_kafka_ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    return kwargs


def aiokafka_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for ``AIOKafkaProducer`` / ``AIOKafkaConsumer`` / ``AIOKafkaAdminClient``.

    Holds ``bootstrap_servers``, ``security_protocol`` and, as the protocol needs them,
    ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password`` (SCRAM uses the
    same two) and ``ssl_context``. Raises ConfigurationError for incomplete settings.
    """
    return {"bootstrap_servers": settings.bootstrap_servers, **_security_kwargs(settings)}


def faust_broker_url(settings: Settings) -> str:
    """Faust's ``broker`` setting: ``kafka://host:port;kafka://host:port``."""
    return ";".join(f"kafka://{server}" for server in settings.bootstrap_servers)


def faust_broker_credentials(settings: Settings) -> object | None:
    """``faust.SASLCredentials`` / ``faust.SSLCredentials`` / None for PLAINTEXT.

    Faust derives ``security_protocol`` from the credentials object: SASLCredentials
    means SASL_SSL only when it carries an ``ssl_context`` (SASL_PLAINTEXT otherwise),
    so the context is passed exactly for the TLS protocols.
    """
    import faust

    protocol = settings.kafka_security_protocol
    context = build_kafka_ssl_context(settings)
    if protocol in _SASL_PROTOCOLS:
        username, password = _sasl_credentials(settings)
        return faust.SASLCredentials(
            username=username,
            password=password,
            mechanism=sasl_mechanism(settings),
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments: ``broker`` and ``broker_credentials``."""
    return {
        "broker": faust_broker_url(settings),
        "broker_credentials": faust_broker_credentials(settings),
    }


# ----------------------------------------------------------------------------- Redis


def redis_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for ``redis.asyncio.from_url(settings.redis_url, **kwargs)``.

    ``password`` when ``REDIS_PASSWORD`` is set (a password inside the URL wins when
    this is absent); for ``rediss://`` URLs, certificate and host name verification
    against ``REDIS_SSL_CAFILE`` (or the system store without it).
    """
    kwargs: dict[str, Any] = {}
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password.get_secret_value()
    scheme = urlsplit(settings.redis_url or "").scheme
    if scheme == "rediss":
        kwargs["ssl_cert_reqs"] = "required"
        # redis-py before 6 did not match the host name unless asked; be explicit.
        kwargs["ssl_check_hostname"] = True
        if settings.redis_ssl_cafile is not None:
            if not settings.redis_ssl_cafile.is_file():
                raise ConfigurationError(
                    f"REDIS_SSL_CAFILE={settings.redis_ssl_cafile} is not a readable file"
                )
            kwargs["ssl_ca_certs"] = str(settings.redis_ssl_cafile)
    elif settings.redis_ssl_cafile is not None:
        raise ConfigurationError(
            "REDIS_SSL_CAFILE is set but REDIS_URL is not a rediss:// URL: "
            "use rediss:// to connect with TLS"
        )
    return kwargs


# ----------------------------------------------------------------------------- errors


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)


def _user_part(settings: Settings | None) -> str:
    if settings is not None and settings.kafka_sasl_username:
        return f" for user '{settings.kafka_sasl_username}'"
    return ""


def _mechanism_from(message: str, settings: Settings | None) -> str:
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "OAUTHBEARER", "GSSAPI", "PLAIN"):
        if mechanism in message:
            return mechanism
    return sasl_mechanism(settings) if settings is not None else "SASL"


def _where(settings: Settings | None) -> str:
    return f" ({settings.kafka_bootstrap_servers})" if settings is not None else ""


def _describe_tls(exc: ssl.SSLError, settings: Settings | None) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
            return (
                f"TLS certificate verification failed{_where(settings)}: {reason}: the "
                "broker certificate does not name this host; connect by a name in its "
                "subjectAltName, or set KAFKA_SSL_CHECK_HOSTNAME=false"
            )
        return (
            f"TLS certificate verification failed{_where(settings)}: {reason}: "
            "check KAFKA_SSL_CAFILE (the CA that signed the brokers' certificates)"
        )
    reason = exc.reason or str(exc)
    if reason and ("WRONG_VERSION_NUMBER" in reason or "record layer" in reason):
        return (
            f"TLS handshake failed{_where(settings)}: {reason}: the listener does not speak "
            "TLS; check KAFKA_SECURITY_PROTOCOL and the port in KAFKA_BOOTSTRAP_SERVERS"
        )
    return (
        f"TLS handshake failed{_where(settings)}: {reason}: check KAFKA_SSL_CAFILE, "
        "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE and KAFKA_SECURITY_PROTOCOL"
    )


def _describe_one(exc: BaseException, settings: Settings | None) -> str | None:
    """A message for a cause this module recognises, else None."""
    from aiokafka import errors as kafka_errors

    if isinstance(exc, ssl.SSLError):
        return _describe_tls(exc, settings)
    if isinstance(
        exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError
    ):
        mechanism = _mechanism_from(str(exc), settings)
        return (
            f"Kafka authentication failed{_user_part(settings)} ({mechanism}): "
            "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
        )
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
        return f"Kafka broker refused the SASL mechanism: {exc}: check KAFKA_SASL_MECHANISM"
    if isinstance(exc, kafka_errors.IllegalSaslStateError):
        return (
            f"Kafka SASL handshake failed: {exc}: check KAFKA_SECURITY_PROTOCOL matches "
            "the listener (SASL_SSL vs SSL vs PLAINTEXT)"
        )
    redis_message = _describe_redis(exc)
    if redis_message is not None:
        return redis_message
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"connection refused{_where(settings)}: nothing listens there; "
            "check KAFKA_BOOTSTRAP_SERVERS"
        )
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | asyncio.IncompleteReadError):
        # A broker drops a connection whose first bytes are not what its listener expects:
        # a TLS ClientHello on a plaintext listener, or a Kafka request on a TLS one.
        if settings is not None and settings.kafka_security_protocol in _TLS_PROTOCOLS:
            return (
                f"Kafka closed the connection during the TLS handshake{_where(settings)}: "
                "that listener does not speak TLS; check KAFKA_SECURITY_PROTOCOL and the "
                "port in KAFKA_BOOTSTRAP_SERVERS"
            )
        return (
            f"Kafka closed the connection{_where(settings)}: if that listener uses TLS or "
            "SASL, set KAFKA_SECURITY_PROTOCOL (and the SASL/SSL settings) to match"
        )
    return None


def _describe_redis(exc: BaseException) -> str | None:
    try:
        from redis import exceptions as redis_errors
    except ImportError:  # pragma: no cover - redis is a runtime dependency
        return None
    if isinstance(
        exc, redis_errors.AuthenticationError | redis_errors.AuthenticationWrongNumberOfArgsError
    ):
        return (
            f"Redis authentication failed: {exc}: check REDIS_PASSWORD or the password in REDIS_URL"
        )
    if isinstance(exc, redis_errors.ResponseError) and "NOAUTH" in str(exc):
        return f"Redis requires a password: {exc}: set REDIS_PASSWORD"
    return None


def describe_connection_error(exc: BaseException, settings: Settings | None = None) -> str:
    """One line naming the cause of a failed Kafka / Redis connection and what to check.

    Looks through ``__cause__`` / ``__context__`` chains and exception groups, so a
    wrapped SSL or SASL error is still named. ``settings`` adds the user name and the
    bootstrap servers to the message; it is optional.
    """
    # The messages quote exceptions, whose text may hold a connection URL.
    return mask_credentials(_describe(exc, settings))


def _describe(exc: BaseException, settings: Settings | None) -> str:
    from aiokafka import errors as kafka_errors

    for linked in _chain(exc):
        message = _describe_one(linked, settings)
        if message is not None:
            return message
    if isinstance(exc, ContentStreamError):
        return exc.message
    if isinstance(exc, kafka_errors.KafkaConnectionError | OSError | TimeoutError):
        return (
            f"cannot connect to Kafka{_where(settings)}: {str(exc) or type(exc).__name__}: "
            "check KAFKA_BOOTSTRAP_SERVERS and that KAFKA_SECURITY_PROTOCOL matches the "
            "listener"
        )
    return f"{type(exc).__name__}: {exc}"


def _split_host_port(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if not sep or "]" in port:
        return server.strip("[]"), DEFAULT_KAFKA_PORT
    return host.strip("[]"), int(port)


def _is_fatal(exc: BaseException) -> bool:
    """Auth and TLS problems: retrying with the same settings cannot help."""
    from aiokafka import errors as kafka_errors

    return isinstance(
        exc,
        ssl.SSLError
        | kafka_errors.SaslAuthenticationFailed
        | kafka_errors.AuthenticationFailedError
        | kafka_errors.UnsupportedSaslMechanismError
        | kafka_errors.IllegalSaslStateError,
    )


async def _connect_once(host: str, port: int, security: dict[str, Any], timeout_s: float) -> None:
    from aiokafka.conn import create_conn

    conn = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **security),
        timeout=timeout_s,
    )
    conn.close()


async def check_kafka_connection(settings: Settings, *, timeout_s: float = 10.0) -> None:
    """Connect (and authenticate) to the bootstrap servers once, before starting clients.

    Returns when one server accepts. Raises ConfigurationError (not retriable) for SASL
    and TLS failures, ServiceUnavailable (retriable) when no server answers; the
    exception's ``message`` is the line from :func:`describe_connection_error`.
    """
    security = _security_kwargs(settings)
    failures: list[BaseException] = []
    for server in settings.bootstrap_servers:
        host, port = _split_host_port(server)
        try:
            await _connect_once(host, port, security, timeout_s)
        except Exception as exc:  # every failure is either fatal or tried on the next server
            if _is_fatal(exc):
                raise ConfigurationError(describe_connection_error(exc, settings)) from exc
            failures.append(exc)
        else:
            return
    if not failures:
        raise ConfigurationError("KAFKA_BOOTSTRAP_SERVERS is empty")
    first = failures[0]
    message = describe_connection_error(first, settings)
    if isinstance(first, TimeoutError | asyncio.TimeoutError):
        message = (
            f"no answer from Kafka{_where(settings)} within {timeout_s:g}s: check "
            "KAFKA_BOOTSTRAP_SERVERS and that KAFKA_SECURITY_PROTOCOL matches the listener"
        )
    raise ServiceUnavailable(message) from first
