"""A private certificate authority and the certificates it signs, made with openssl.

For the stack's TLS variants (tests of Kafka's SASL_SSL listener and of Redis over
TLS): a CA of its own, and certificates for 127.0.0.1 and localhost that serve as
server and client certificates alike. Keys are unencrypted PEM (PKCS#8), readable by
the owner only, and the certificates last two days.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_DAYS: Final = "2"
_KEY_OPTIONS: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc")
# A configuration of its own, so that no default of the machine's openssl.cnf (such as
# its CA extensions for every `req -x509`) ends up in a certificate.
_CONFIG: Final = """\
[req]
prompt = no
distinguished_name = name
x509_extensions = extensions

[name]
CN = {name}

[extensions]
{extensions}
"""
_CA_EXTENSIONS: Final = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
_LEAF_EXTENSIONS: Final = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: Path
    key: Path


@dataclass(frozen=True)
class Certificate:
    certificate: Path
    key: Path

    def key_and_chain(self, path: Path) -> Path:
        """One PEM file with the key, then the certificate (Kafka's PEM keystore)."""
        path.write_text(self.key.read_text() + self.certificate.read_text())
        path.chmod(0o600)
        return path


def _request(directory: Path, name: str, extensions: str, *args: str | Path) -> None:
    config = directory / f"{name}.cnf"
    config.write_text(_CONFIG.format(name=name, extensions=extensions))
    command = ["openssl", "req", "-x509", *_KEY_OPTIONS, "-days", _DAYS, "-config", config]
    subprocess.run([*map(str, command), *map(str, args)], check=True, capture_output=True)


def certificate_authority(
    directory: Path, name: str = "memtelemetry-test-ca"
) -> CertificateAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory / f"{name}.pem", directory / f"{name}.key")
    _request(directory, name, _CA_EXTENSIONS, "-keyout", ca.key, "-out", ca.certificate)
    ca.key.chmod(0o600)
    return ca


def issue(ca: CertificateAuthority, directory: Path, name: str) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, for a server or a client, signed by `ca`."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = Certificate(directory / f"{name}.pem", directory / f"{name}.key")
    _request(
        directory, name, _LEAF_EXTENSIONS,
        "-keyout", issued.key, "-out", issued.certificate,
        "-CA", ca.certificate, "-CAkey", ca.key,
    )  # fmt: skip
    issued.key.chmod(0o600)
    return issued
