"""A test PKI for NVIDIA RIMs and OCSP answers: a root, a CA and a RIM signer (ECDSA P-384),
RIMs signed as NVIDIA signs them (enveloped XML-DSig, ECDSA-SHA384, keys in KeyInfo) and
real RFC 6960 OCSP responses (``cryptography``'s OCSPResponseBuilder). Shared by the RIM
verification and the node collection tests.

:class:`Gpu` is a synthetic GPU: a device identity PKI (root -> ICA -> attestation leaf,
ECDSA P-384) whose leaf signs SPDM GET_MEASUREMENTS requests and responses laid out as
NVIDIA's Hopper sample (DMTF DSP0274 1.1, 10.11, NVIDIA's OpaqueData fields). With its
root pinned in place of NVIDIA's (monkeypatch), RIMs a :class:`Ca` signs for its golden
values and OCSP answers for every certificate, it is complete evidence: the only way to
show a counted GPU verdict offline, since no one can sign answers for NVIDIA's chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def answer(cert: x509.Certificate, issuer: x509.Certificate,
           issuer_key: ec.EllipticCurvePrivateKey, *, status: str = "good",
           this: dt.datetime = dt.datetime(2024, 5, 30, tzinfo=dt.timezone.utc),
           nxt: dt.datetime | None = dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc),
           signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
           carry: bool = True) -> bytes:
    """An RFC 6960 answer for ``cert``, signed by its issuer (or ``signer``), current from
    ``this`` to ``nxt``."""
    states = {"good": x509_ocsp.OCSPCertStatus.GOOD,
              "revoked": x509_ocsp.OCSPCertStatus.REVOKED,
              "unknown": x509_ocsp.OCSPCertStatus.UNKNOWN}
    revoked = status == "revoked"
    key, responder = signer or (issuer_key, issuer)
    builder = x509_ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=hashes.SHA1(), cert_status=states[status],
        this_update=this, next_update=nxt,
        revocation_time=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc) if revoked
        else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    ).responder_id(x509_ocsp.OCSPResponderEncoding.HASH, responder)
    if signer and carry:
        builder = builder.certificates([responder])
    return builder.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


class Ca:
    """A test PKI: root -> CA -> RIM signer, each with an ECDSA P-384 key."""

    def __init__(self, tag: str = "test") -> None:
        self.root_key, self.root = self._cert(f"{tag} RIM root", None, None, ca=True)
        self.ca_key, self.ca = self._cert(f"{tag} RIM CA", self.root_key, self.root, ca=True)
        self.leaf_key, self.leaf = self._cert(f"{tag} RIM signer", self.ca_key, self.ca,
                                              ca=False)

    @staticmethod
    def _cert(cn: str, issuer_key: ec.EllipticCurvePrivateKey | None,
              issuer: x509.Certificate | None, *, ca: bool,
              eku: list[x509.ObjectIdentifier] | None = None,
              ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP384R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn))
                   .issuer_name(issuer.subject if issuer else _name(cn))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
                   .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return key, builder.sign(issuer_key or key, hashes.SHA384())

    def pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def rims_for(self, gpu: Gpu) -> dict[str, bytes]:
        """The driver and VBIOS RIMs of ``gpu``'s versions whose golden values are its own
        measurements (what NVIDIA would publish for it), both signed by this PKI."""
        driver, vbios = gpu.golden()
        return {"driver": self.sign_rim("driver", gpu.driver_version, driver),
                "vbios": self.sign_rim("vbios", gpu.vbios_version, vbios)}

    def sign_rim(self, component: str, version: str, golden: dict[int, str],
                 inactive: dict[int, str] | None = None) -> bytes:
        from lxml import etree
        from signxml import DigestAlgorithm, SignatureMethod, XMLSigner

        swid = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
        sha = "http://www.w3.org/2001/04/xmlenc#sha384"
        doc = etree.Element(f"{{{swid}}}SoftwareIdentity", nsmap={None: swid, "ns2": sha},
                            name="GH100", tagId=f"{component}-{version}", version="1.0")
        etree.SubElement(doc, f"{{{swid}}}Meta", colloquialVersion=version)
        payload = etree.SubElement(doc, f"{{{swid}}}Payload")
        entries = [(i, v, True) for i, v in golden.items()] + \
            [(i, v, False) for i, v in (inactive or {}).items()]
        for index, value, active in sorted(entries):
            etree.SubElement(payload, f"{{{swid}}}Resource", type="Measurement",
                             index=str(index), active=str(active), alternatives="1",
                             size=str(len(value) // 2), name=f"Measurement_{index}",
                             attrib={f"{{{sha}}}Hash0": value})
        signed = XMLSigner(signature_algorithm=SignatureMethod.ECDSA_SHA384,
                           digest_algorithm=DigestAlgorithm.SHA384).sign(
            doc, key=self.leaf_key, cert=[self.leaf, self.ca, self.root])
        return bytes(etree.tostring(signed))

    def answer(self, cert: x509.Certificate, issuer: x509.Certificate,
               issuer_key: ec.EllipticCurvePrivateKey, *, status: str = "good",
               this: dt.datetime = dt.datetime(2024, 5, 30, tzinfo=dt.timezone.utc),
               nxt: dt.datetime | None = dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc),
               signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
               carry: bool = True) -> bytes:
        return answer(cert, issuer, issuer_key, status=status, this=this, nxt=nxt,
                      signer=signer, carry=carry)

    def chain_answers(self) -> list[bytes]:
        return [self.answer(self.leaf, self.ca, self.ca_key),
                self.answer(self.ca, self.root, self.root_key)]


# OpaqueData field types and the versions the synthetic report states (as the sample's)
DRIVER, VBIOS, NVDEC0, CHIP_SKU, PROJECT, PROJECT_SKU = 3, 6, 11, 15, 17, 18


def _device_cert(cn: str, key: ec.EllipticCurvePrivateKey,
                 issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, *,
                 ca: bool) -> x509.Certificate:
    """A device identity certificate with the extensions RFC 5280 path validation wants."""
    public = key.public_key()
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer[1].subject if issuer else _name(cn))
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))
               .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public),
                              critical=False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
            critical=False)
    return builder.sign(issuer[0] if issuer else key, hashes.SHA384())


def _field(kind: int, value: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


class Gpu:
    """A synthetic GPU: device identity root -> ICA -> attestation leaf (ECDSA P-384), 64
    measurement blocks, driver 550.90.07 and VBIOS 96.00.9f.00.01 (the sample's versions,
    so the RIM service identifiers are the sample's too)."""

    driver_version = "550.90.07"
    vbios_version = "96.00.9f.00.01"

    def __init__(self, tag: str = "test") -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _device_cert(f"{tag} GPU identity root", self.root_key, None, ca=True)
        self.ica_key = ec.generate_private_key(ec.SECP384R1())
        self.ica = _device_cert(f"{tag} GPU provisioner ICA", self.ica_key,
                                (self.root_key, self.root), ca=True)
        self.leaf_key = ec.generate_private_key(ec.SECP384R1())
        self.leaf = _device_cert(f"{tag} GPU attestation", self.leaf_key,
                                 (self.ica_key, self.ica), ca=False)
        self.blocks = {i: hashlib.sha384(f"{tag} block {i}".encode()).digest()
                       for i in range(1, 65)}

    def pem(self) -> str:
        """The root, to pin as ``roots.NVIDIA_DEVICE_ROOT``."""
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    def chain_pem(self) -> bytes:
        """Leaf first, the root last (as NVML gives it)."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.leaf, self.ica, self.root))

    def golden(self) -> tuple[dict[int, str], dict[int, str]]:
        """Driver and VBIOS golden values (RIM index -> hex) equal to this GPU's blocks:
        RIM index i is SPDM block i + 1, split between the RIMs as NVIDIA's are."""
        values = {i - 1: v.hex() for i, v in self.blocks.items()}
        return ({i: values[i] for i in (7, 21, 22, 23, 24)},
                {i: values[i] for i in (0, 1, 2, 4, 8)})

    def report(self, nonce: bytes) -> bytes:
        """The GET_MEASUREMENTS request (``nonce``: 32 bytes) and the signed response."""
        assert len(nonce) == 32
        request = b"\x11\xe0\x01\xff" + nonce + b"\x00"
        record = b"".join(bytes([i, 1]) + (3 + len(v)).to_bytes(2, "little") + b"\x01"
                          + len(v).to_bytes(2, "little") + v for i, v in self.blocks.items())
        opaque = (_field(DRIVER, self.driver_version.encode() + b"\0")
                  + _field(VBIOS, bytes([0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0]))
                  + _field(NVDEC0, b"\xaa") + _field(CHIP_SKU, b"882\0")
                  + _field(PROJECT, b"1010\0") + _field(PROJECT_SKU, b"0200\0"))
        response = (b"\x11\x60\x00\x00" + bytes([len(self.blocks)])
                    + len(record).to_bytes(3, "little") + record
                    + hashlib.sha256(b"responder nonce" + nonce).digest()
                    + len(opaque).to_bytes(2, "little") + opaque)
        der = self.leaf_key.sign(request + response, ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        return request + response + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def answers(self, *, this: dt.datetime = dt.datetime(2024, 5, 30, tzinfo=dt.timezone.utc),
                nxt: dt.datetime = dt.datetime(2024, 6, 6, tzinfo=dt.timezone.utc)
                ) -> list[bytes]:
        """Good OCSP answers for the leaf and the ICA, current from ``this`` to ``nxt``."""
        return [answer(self.leaf, self.ica, self.ica_key, this=this, nxt=nxt),
                answer(self.ica, self.root, self.root_key, this=this, nxt=nxt)]
