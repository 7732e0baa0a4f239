"""A job CA and per-identity certificates for mutual TLS between agents and the coordinator.

Every certificate carries its identity as a URI subject alternative name::

    slsa-dist://job/<job>/coordinator
    slsa-dist://job/<job>/node/<node id>
    slsa-dist://job/<job>/rank/<rank>
    slsa-dist://job/<job>/admin            (may finalize)

The coordinator accepts only certificates from the job's CA, and a peer may
act only as the identity its certificate names, only in that job: a rank
registers and reports only as its own rank, a node only as itself.

>>> # ca = JobCA.create("job-1"); ca.write("pki/")
>>> # ca.issue(Identity(job="job-1", role="rank", name="3")).write("pki/rank-3")
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from slsa_dist.errors import InputError

__all__ = ["ROLES", "Identity", "Issued", "JobCA", "channel_credentials", "identity_from_pem",
           "server_credentials"]

ROLES = ("coordinator", "node", "rank", "admin")
_SCHEME = "slsa-dist://job/"


@dataclass(frozen=True)
class Identity:
    job: str
    role: str
    name: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"role: expected one of {list(ROLES)}, found {self.role!r}")
        if self.role in ("node", "rank") and not self.name:
            raise InputError(f"{self.role} identity: expected a name, found none")
        if self.role == "rank" and not self.name.isdigit():
            raise InputError(f"rank identity: expected a rank number, found {self.name!r}")

    def uri(self) -> str:
        tail = self.role if self.role in ("coordinator", "admin") else \
            f"{self.role}/{quote(self.name, safe='')}"
        return f"{_SCHEME}{quote(self.job, safe='')}/{tail}"

    @classmethod
    def from_uri(cls, uri: str) -> Identity:
        if not uri.startswith(_SCHEME):
            raise InputError(f"identity: expected a {_SCHEME}... URI, found {uri!r}")
        parts = uri[len(_SCHEME):].split("/")
        if len(parts) == 2:
            return cls(job=unquote(parts[0]), role=parts[1])
        if len(parts) == 3:
            return cls(job=unquote(parts[0]), role=parts[1], name=unquote(parts[2]))
        raise InputError(f"identity: expected job/role[/name], found {uri!r}")


def identity_from_pem(pem: bytes) -> Identity:
    """The slsa-dist identity in a certificate's URI SAN. Raises :class:`InputError`."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise InputError("certificate: expected a subjectAltName with a slsa-dist URI, found "
                         "none") from None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(_SCHEME)]
    if len(uris) != 1:
        raise InputError(f"certificate: expected one slsa-dist URI SAN, found {len(uris)}")
    return Identity.from_uri(uris[0])


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class Issued:
    identity: Identity
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """``cert.pem``, ``key.pem`` (0600) and ``ca.pem`` in ``directory``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        (target / "cert.pem").write_bytes(self.cert_pem)
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        _write_private(target / "key.pem", key)
        (target / "ca.pem").write_bytes(self.ca_pem)
        return target


class JobCA:
    """The certificate authority of one job (ECDSA P-256, short-lived)."""

    def __init__(self, *, job: str, key: ec.EllipticCurvePrivateKey,
                 cert: x509.Certificate) -> None:
        self.job, self._key, self.cert = job, key, cert

    @classmethod
    def create(cls, job: str, *, days: int = 30) -> JobCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"slsa-dist job CA {job}")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"{_SCHEME}{quote(job, safe='')}")]),
                    critical=False)
                .sign(key, hashes.SHA256()))
        return cls(job=job, key=key, cert=cert)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> JobCA:
        root = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((root / "ca.pem").read_bytes())
            key = serialization.load_pem_private_key((root / "ca.key").read_bytes(), None)
        except FileNotFoundError as exc:
            raise InputError(f"CA: expected ca.pem and ca.key in {root}, found no "
                             f"{Path(str(exc.filename)).name}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InputError("CA key: expected an ECDSA key")
        uris = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
        job = unquote(uris[0][len(_SCHEME):]) if uris else ""
        return cls(job=job, key=key, cert=cert)

    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: str | os.PathLike[str]) -> Path:
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        (target / "ca.pem").write_bytes(self.ca_pem())
        _write_private(target / "ca.key", self._key)
        return target

    def issue(self, identity: Identity, *, hosts: tuple[str, ...] = (), days: int = 30) -> Issued:
        """A certificate for ``identity``; ``hosts`` (DNS names or IPs) for servers."""
        if identity.job != self.job:
            raise InputError(f"issue: expected an identity in job {self.job!r}, found "
                             f"{identity.job!r}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri())]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if identity.role == "coordinator":
            usage.append(ExtendedKeyUsageOID.SERVER_AUTH)
        cn = f"{identity.role} {identity.name}".strip()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                .sign(self._key, hashes.SHA256()))
        return Issued(identity=identity, cert_pem=cert.public_bytes(serialization.Encoding.PEM),
                      key_pem=key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()),
                      ca_pem=self.ca_pem())


def _read_tls(directory: str | os.PathLike[str]) -> tuple[bytes, bytes, bytes]:
    root = Path(directory)
    try:
        return ((root / "cert.pem").read_bytes(), (root / "key.pem").read_bytes(),
                (root / "ca.pem").read_bytes())
    except FileNotFoundError as exc:
        raise InputError(f"TLS: expected cert.pem, key.pem and ca.pem in {root}, found no "
                         f"{Path(str(exc.filename)).name}") from None


def server_credentials(directory: str | os.PathLike[str]) -> Any:
    """gRPC server credentials that require a client certificate from the job CA."""
    import grpc

    cert, key, ca = _read_tls(directory)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=True)


def channel_credentials(directory: str | os.PathLike[str]) -> Any:
    """gRPC channel credentials: this identity's certificate, trusting only the job CA."""
    import grpc

    cert, key, ca = _read_tls(directory)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                        certificate_chain=cert)
