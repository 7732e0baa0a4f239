"""A certificate that is no EK certificate stands in for an EK: a TPM made in software.

``--ek-roots`` counts a TPM quote when its AK was activated by an EK "whose
certificate chains to a root in this PEM file". The chain was checked, but not that
its end is an *EK* certificate: any RSA 2048 certificate the root's hierarchy issued
(a TLS server certificate from the operator's own CA, which the docs offer as an EK
root) counted, and whoever holds its private key answers the credential challenge in
software, with a software "AK" that claims fixedTPM and restricted in its public area,
and quotes any PCR values it likes, reference values included.

An EK certificate says what it is (TCG EK Credential Profile): the EK certificate
extended key usage (2.23.133.8.1) or the TPM's manufacturer, model and version in its
subject alternative name, key encipherment, and no CA. Until the TPM verifier checks
that, this test failed (``_tpm.ek_profile`` now does).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from slsa_dist.attest import _credential as credential
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._reference import ReferenceValues
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.verify._attestation import require_attestation

from support.attest import with_evidence

JOB, NODE, NONCE = "job-1", "node-0", bytes(range(32))
NOW = dt.datetime.now(dt.timezone.utc)
GOLDEN = {str(i): hashlib.sha256(f"golden PCR {i}".encode()).hexdigest() for i in range(8)}


def _ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The operator's own CA, given to verify as the EK root."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Corp Root CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _server_certificate(ca: x509.Certificate, ca_key: rsa.RSAPrivateKey
                        ) -> tuple[bytes, rsa.RSAPrivateKey]:
    """An ordinary TLS server certificate the same CA issued: no EK certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("web.example")]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER), key


def _ak_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A TPM2B_PUBLIC claiming fixedTPM, fixedParent, sensitiveDataOrigin, restricted,
    sign: bytes anyone can write for a key made in software."""
    numbers = key.public_key().public_numbers()
    area = struct.pack(">HHIH", 0x0023, 0x000B, credential.AK_ATTRIBUTES | 0x40, 0)
    area += struct.pack(">HHHHH", 0x0010, 0x0018, 0x000B, 0x0003, 0x0010)
    area += struct.pack(">H", 32) + numbers.x.to_bytes(32, "big")
    area += struct.pack(">H", 32) + numbers.y.to_bytes(32, "big")
    return struct.pack(">H", len(area)) + area


def _job(record: EvidenceRecord) -> Provenance:
    return with_evidence({NODE: (record,)},
                         invocation_id=f"{JOB}/0c2f5a4e-8d1b-4f3a-9b7e-1a2b3c4d5e6f")


def test_a_certificate_that_is_no_ek_certificate_does_not_activate_an_ak() -> None:
    ca, ca_key = _ca()
    ek, ek_key = _server_certificate(ca, ca_key)
    raw, challenge = _forge(ek, ek_key)
    evidence = EvidenceRecord(kind="tpm", status="verified", blob=base64.b64encode(raw).decode(),
                              nonce=NONCE.hex(), size=len(raw), tpm_challenge=challenge)
    root = ca.public_bytes(serialization.Encoding.PEM)
    reference = ReferenceValues.from_json({"version": 1, "tpm": {"pcrs": GOLDEN}})
    check = require_attestation(_job(evidence), "tpm", ek_roots=(root,),
                                reference_values=reference)
    assert not check.ok, check.detail
    assert "not an EK certificate" in check.detail, check.detail


def _forge(ek: bytes, ek_key: rsa.RSAPrivateKey) -> tuple[bytes, dict[str, object]]:
    """(the evidence, the coordinator's challenge record): the node makes an AK in
    software, asks for a nonce sending the certificate and the AK's public area, and
    answers the coordinator's challenge with the certificate's private key; its quote,
    signed in software, holds the golden PCR values."""
    ak = ec.generate_private_key(ec.SECP256R1())
    ak_public = _ak_public(ak)
    record, _ = credential.challenge(ek, ak_public)  # what the coordinator makes and keeps
    challenge = json.loads(record)
    name = credential.parse_public(ak_public).name
    encrypted = base64.b64decode(challenge["encryptedSecret"])
    encrypted = encrypted[2:] if len(encrypted) == 2 + 256 else encrypted  # a TPM2B
    seed = ek_key.decrypt(encrypted, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0"))
    blob = base64.b64decode(challenge["credentialBlob"])
    plain = credential._cfb(credential.kdfa(seed, b"STORAGE", name, b"", 128),
                            blob[2 + 2 + 32:], decrypt=True)
    secret = plain[2:2 + int.from_bytes(plain[:2], "big")]
    digest = hashlib.sha256(b"".join(bytes.fromhex(GOLDEN[str(i)]) for i in range(8))).digest()
    extra = report_data(NONCE, JOB, NODE)
    attest = struct.pack(">IH", 0xFF544347, 0x8018) + struct.pack(">H", len(name)) + name
    attest += struct.pack(">H", len(extra)) + extra + struct.pack(">QIIBQ", 1, 0, 0, 1, 0)
    attest += struct.pack(">IHB", 1, 0x000B, 3) + bytes([0xFF, 0, 0])
    attest += struct.pack(">H", 32) + digest
    r, s = decode_dss_signature(ak.sign(attest, ec.ECDSA(hashes.SHA256())))
    signature = struct.pack(">HHH", 0x0018, 0x000B, 32) + r.to_bytes(32, "big") \
        + struct.pack(">H", 32) + s.to_bytes(32, "big")
    pem = ak.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({
        "format": "tpm2-quote/v1", "attest": base64.b64encode(attest).decode(),
        "signature": base64.b64encode(signature).decode(), "akPublicPem": pem.decode(),
        "akEnrolled": True, "pcrs": {"sha256": GOLDEN},
        "ekCertificate": base64.b64encode(ek).decode(),
        "akPublic": base64.b64encode(ak_public).decode(),
        "activation": {"mac": credential.activation_mac(secret, attest).hex()}},
        sort_keys=True).encode(), challenge
