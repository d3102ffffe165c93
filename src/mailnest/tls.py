"""TLS for every front door: the user's certificate, or a self-signed one generated at start.

The generated certificate names the configured host name, localhost, 127.0.0.1 and ::1, so a test can trust it
by loading `server.tls_cert` as its CA file.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .config import Config, ConfigError

log = logging.getLogger("mailnest.tls")


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    cert: Path
    key: Path
    generated: bool


def _subject_names(hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def generate_self_signed(directory: Path, hostnames: list[str]) -> TLSMaterial:
    """A fresh EC P-256 key and a certificate valid for a year, written as PEM into `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailnest (self-signed, for testing)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(_subject_names(hostnames)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "mailnest-cert.pem", directory / "mailnest-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return TLSMaterial(cert_path, key_path, generated=True)


def tls_wanted(config: Config) -> bool:
    return config.tls_enabled


def load_material(config: Config, scratch: Path) -> TLSMaterial | None:
    """The certificate to serve, or None when TLS is not configured."""
    if not tls_wanted(config):
        return None
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together: give both files (PEM)")
        for path in (config.tls_cert, config.tls_key):
            if not Path(path).is_file():
                raise ConfigError(f"TLS file {path} does not exist or is not a file")
        return TLSMaterial(Path(config.tls_cert), Path(config.tls_key), generated=False)
    hosts = [config.hostname, "localhost", "127.0.0.1", "::1"]
    for listen in (config.smtp, config.http, config.imap, config.pop3, config.smtps, config.imaps, config.pop3s):
        if listen is not None and listen.host not in ("0.0.0.0", "::", ""):
            hosts.append(listen.host)
    material = generate_self_signed(scratch, hosts)
    log.info("generated a self-signed TLS certificate for %s: %s (trust it in tests as the CA file)",
             ", ".join(dict.fromkeys(hosts)), material.cert)
    return material


def server_context(material: TLSMaterial) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(material.cert), str(material.key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use the TLS certificate {material.cert} with key {material.key}: {exc}") from exc
    return context
