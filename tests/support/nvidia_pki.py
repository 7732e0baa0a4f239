"""A test PKI for NVIDIA RIMs and OCSP answers: a root, a CA and a RIM signer (ECDSA P-384),
RIMs signed as NVIDIA signs them (enveloped XML-DSig, ECDSA-SHA384, keys in KeyInfo) and
real RFC 6960 OCSP responses (``cryptography``'s OCSPResponseBuilder). Shared by the RIM
verification and the node collection tests."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


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

    def chain_answers(self) -> list[bytes]:
        return [self.answer(self.leaf, self.ca, self.ca_key),
                self.answer(self.ca, self.root, self.root_key)]
