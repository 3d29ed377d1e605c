"""Throw-away TLS material for tests, made with the ``openssl`` command line tool.

``make_tls_material(directory)`` writes a CA, a broker certificate signed by it (with
subjectAltName localhost / 127.0.0.1 / ::1, so host name checks pass on loopback), a
client certificate for mutual TLS, a Kafka PEM keystore (key + chain in one file, for
``ssl.keystore.type=PEM``) and a second, unrelated CA that signed nothing, for
"unknown CA" tests. Keys are unencrypted PKCS#8. Stdlib only.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 2


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: Path
    ca_key: Path
    broker_cert: Path
    broker_key: Path
    broker_keystore_pem: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path


class OpensslMissing(RuntimeError):
    """The ``openssl`` command is not installed."""


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise OpensslMissing("the openssl command line tool is not installed")
    proc = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _make_ca(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", str(VALID_DAYS), "-sha256",
        "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    return key, cert


def _make_leaf(
    directory: Path,
    name: str,
    common_name: str,
    ca: tuple[Path, Path],
    extended_usage: str,
    alt_names: Sequence[str],
) -> tuple[Path, Path]:
    key, csr, cert = (directory / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    ext_file = directory / f"{name}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={extended_usage}",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
    ]
    if alt_names:
        lines.append("subjectAltName=" + ",".join(alt_names))
    ext_file.write_text("\n".join(lines) + "\n")
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-out", str(csr), "-subj", f"/CN={common_name}",
        cwd=directory,
    )  # fmt: skip
    ca_key, ca_cert = ca
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", str(VALID_DAYS), "-sha256",
        "-extfile", str(ext_file),
        cwd=directory,
    )  # fmt: skip
    return key, cert


def make_tls_material(
    directory: Path,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
) -> TlsMaterial:
    """Write a CA, broker and client certificates into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory, "ca", "contentstream test CA")
    alt_names = [f"DNS:{h}" for h in hostnames] + [f"IP:{ip}" for ip in ip_addresses]
    broker_key, broker_cert = _make_leaf(
        directory, "broker", hostnames[0] if hostnames else "broker", ca, "serverAuth", alt_names
    )
    client_key, client_cert = _make_leaf(
        directory, "client", "contentstream-client", ca, "clientAuth", ()
    )
    _other_key, other_ca_cert = _make_ca(directory, "other-ca", "unrelated test CA")
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(broker_key.read_text() + broker_cert.read_text() + ca[1].read_text())
    for path in (ca[0], broker_key, client_key, keystore):
        path.chmod(0o600)
    return TlsMaterial(
        ca_cert=ca[1],
        ca_key=ca[0],
        broker_cert=broker_cert,
        broker_key=broker_key,
        broker_keystore_pem=keystore,
        client_cert=client_cert,
        client_key=client_key,
        other_ca_cert=other_ca_cert,
    )
