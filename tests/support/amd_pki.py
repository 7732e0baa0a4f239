"""A test AMD SEV-SNP PKI: an ARK and an ASK (RSA, signing with RSASSA-PSS SHA-384 as AMD
does), a VCEK (ECDSA P-384, with AMD's hwID and SPL extensions), SNP reports signed by
the VCEK, and CRLs signed by the ARK (``cryptography``'s CRL builder). No real AMD CRL
is public as a test vector, so the positive revocation path is shown with this PKI, its
ARK put in place of the pinned one (:func:`pin`).

RSA keys are 2048-bit (AMD's are 4096) to keep the tests quick; nothing checks the size.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from slsa_dist.attest import _snp

AMD = "1.3.6.1.4.1.3704.1"
CHIP = bytes(range(64))
TCB = {"bootLoader": 3, "tee": 0, "snp": 8, "microcode": 115}
NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2045, 1, 1, tzinfo=dt.timezone.utc)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Micro Devices")])


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


class AmdPki:
    """ARK-{product} -> SEV-{product} (ASK) -> SEV-VCEK, for one chip and TCB."""

    def __init__(self, product: str = "Milan", chip: bytes = CHIP,
                 tcb: dict[str, int] | None = None) -> None:
        self.product, self.chip, self.tcb = product, chip, dict(tcb or TCB)
        self.ark_key = rsa.generate_private_key(65537, 2048)
        self.ask_key = rsa.generate_private_key(65537, 2048)
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        ca = x509.BasicConstraints(ca=True, path_length=None)
        self.ark = self._cert(f"ARK-{product}", f"ARK-{product}", self.ark_key.public_key(),
                              self.ark_key, 0x10000, [ca])
        self.ask = self._cert(f"SEV-{product}", f"ARK-{product}", self.ask_key.public_key(),
                              self.ark_key, 0x10001, [ca])
        spl = {"3.1": self.tcb["bootLoader"], "3.2": self.tcb["tee"], "3.3": self.tcb["snp"],
               "3.8": self.tcb["microcode"]}
        name = f"{product}-B0".encode()
        extensions: list[x509.ExtensionType] = [
            x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD}.{oid}"), _der_int(v))
            for oid, v in spl.items()]
        extensions += [
            x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD}.2"),
                                       bytes([0x16, len(name)]) + name),
            x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD}.4"), chip)]
        self.vcek = self._cert("SEV-VCEK", f"SEV-{product}", self.vcek_key.public_key(),
                               self.ask_key, 0x5EC, extensions)

    @staticmethod
    def _cert(subject: str, issuer: str, public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
              signer: rsa.RSAPrivateKey, serial: int,
              extensions: list[x509.ExtensionType]) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(_name(subject))
                   .issuer_name(_name(issuer)).public_key(public).serial_number(serial)
                   .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER))
        for extension in extensions:
            builder = builder.add_extension(
                extension, critical=isinstance(extension, x509.BasicConstraints))
        return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)

    def pem(self, *certs: x509.Certificate) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    @property
    def collateral(self) -> bytes:
        """The VCEK, then the ASK and ARK, PEM: what the node carries."""
        return self.pem(self.vcek, self.ask, self.ark)

    def report(self, data: bytes = bytes(64), *, version: int = 3) -> bytes:
        """An SNP report (ABI layout) of this chip and TCB, signed by the VCEK."""
        report = bytearray(0x4A0)
        struct.pack_into("<IIQ", report, 0, version, 1, 0x30000)
        struct.pack_into("<II", report, 0x30, 0, 1)  # VMPL, ECDSA P-384 with SHA-384
        tcb = bytes([self.tcb["bootLoader"], self.tcb["tee"], 0, 0, 0, 0, self.tcb["snp"],
                     self.tcb["microcode"]])
        report[0x38:0x40] = tcb  # current
        report[0x50:0x90] = data
        report[0x90:0xC0] = b"\x33" * 48  # measurement
        report[0x180:0x188] = tcb  # reported
        family, models = _snp.PRODUCTS[self.product]
        report[0x188:0x18B] = bytes([family, min(models), 0])
        report[0x1A0:0x1E0] = self.chip
        report[0x1E0:0x1E8] = tcb  # committed
        report[0x1F8:0x200] = tcb  # launch
        r, s = decode_dss_signature(self.vcek_key.sign(bytes(report[:0x2A0]),
                                                       ec.ECDSA(hashes.SHA384())))
        report[0x2A0:0x2A0 + 72] = r.to_bytes(72, "little")
        report[0x2A0 + 72:0x2A0 + 144] = s.to_bytes(72, "little")
        return bytes(report)

    def crl(self, *revoked: x509.Certificate, this_update: dt.datetime | None = None,
            next_update: dt.datetime | None = None, key: rsa.RSAPrivateKey | None = None,
            issuer: x509.Name | None = None) -> bytes:
        """A DER CRL of the ARK (RSASSA-PSS SHA-384) listing ``revoked``; current from
        ``this_update`` (default 2024-01-01) to ``next_update`` (default 2044-01-01)."""
        start = this_update or dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(issuer or self.ark.subject).last_update(start)
                   .next_update(next_update or dt.datetime(2044, 1, 1,
                                                           tzinfo=dt.timezone.utc)))
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                .revocation_date(start).build())
        signed = builder.sign(key or self.ark_key, hashes.SHA384(), rsa_padding=PSS)
        return signed.public_bytes(serialization.Encoding.DER)

    def pin(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make this PKI's ARK (and ASK) the pinned ones, for this product only."""
        monkeypatch.setattr(_snp, "AMD_ARK", {self.product: self.pem(self.ark).decode()})
        monkeypatch.setattr(_snp, "AMD_ASK", {self.product: self.pem(self.ask).decode()})


@functools.cache
def shared(product: str = "Milan") -> AmdPki:
    """One PKI per product for a whole test session (key generation takes a while)."""
    return AmdPki(product)
