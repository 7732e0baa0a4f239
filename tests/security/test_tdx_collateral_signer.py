"""TDX TCB info and QE identity count only when Intel's TCB Signing certificate signed them.

The collateral a node carries for its TDX quote (``tcb_info``, ``qe_identity``, each with
its signature and issuer chain) decides the quote's TCB status: which platform and QE
TCB levels are ``UpToDate`` and which ``OutOfDate`` or ``Revoked``. Intel signs both
with one key, the "Intel SGX TCB Signing" certificate, issued by the Intel SGX Root CA.
The verifier only required the signer's chain to reach the pinned root, so *any*
certificate under that root was accepted as a TCB info signer -- a PCK certificate too
(root -> PCK Platform CA -> PCK). PCK keys are the platform's own: one extracted from a
platform whose TCB is out of date (the very platforms TCB levels exist to single out)
could sign a TCB info calling its own level ``UpToDate``, and ``verify --tcb-status
UpToDate`` (or the default refusal of ``Revoked``) would accept it.

Intel's root cannot be signed with, so a test root stands in for it (as the other TDX
collateral tests do with the pinned roots); the check under test is
:func:`slsa_dist.attest._tdx._signed_json`, which ``verify_quote`` calls for both
documents.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from slsa_dist.attest import _tdx as tdx

AT = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
_BEFORE, _AFTER = AT - dt.timedelta(days=365), AT + dt.timedelta(days=365)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool) -> x509.Certificate:
    public = key.public_key()
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer.subject if issuer else _name(cn))
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(_BEFORE).not_valid_after(_AFTER)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public),
                              critical=False))
    signer_public = issuer_key.public_key()
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class _Intel:
    """A test Intel PKI: root, TCB Signing, PCK Platform CA and a PCK certificate."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert("Intel SGX Root CA", self.root_key, None, self.root_key, ca=True)
        self.tcb_key = ec.generate_private_key(ec.SECP256R1())
        self.tcb = _cert("Intel SGX TCB Signing", self.tcb_key, self.root, self.root_key,
                         ca=False)
        self.platform_key = ec.generate_private_key(ec.SECP256R1())
        self.platform = _cert("Intel SGX PCK Platform CA", self.platform_key, self.root,
                              self.root_key, ca=True)
        self.pck_key = ec.generate_private_key(ec.SECP256R1())
        self.pck = _cert("Intel SGX PCK Certificate", self.pck_key, self.platform,
                         self.platform_key, ca=False)
        self.root_crl = (x509.CertificateRevocationListBuilder()
                         .issuer_name(self.root.subject)
                         .last_update(AT - dt.timedelta(days=1))
                         .next_update(AT + dt.timedelta(days=30))
                         .sign(self.root_key, hashes.SHA256())
                         .public_bytes(serialization.Encoding.DER))

    def collateral(self, name: str, document: dict[str, object],
                   key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]
                   ) -> dict[str, str]:
        text = json.dumps(document)
        r, s = decode_dss_signature(key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        return {name: text, f"{name}_signature": (r.to_bytes(32, "big")
                                                  + s.to_bytes(32, "big")).hex(),
                f"{name}_issuer_chain": pem.decode()}


# What a forger would write: its own TCB level, UpToDate.
_TCB_INFO = {"id": "TDX", "version": 3, "issueDate": (AT - dt.timedelta(days=1)).isoformat(),
             "nextUpdate": (AT + dt.timedelta(days=30)).isoformat(), "fmspc": "00806F050000",
             "pceId": "0000", "tcbLevels": [{"tcb": {}, "tcbStatus": "UpToDate"}]}
_QE_IDENTITY = {"id": "TD_QE", "version": 2,
                "issueDate": (AT - dt.timedelta(days=1)).isoformat(),
                "nextUpdate": (AT + dt.timedelta(days=30)).isoformat(),
                "tcbLevels": [{"tcb": {"isvsvn": 0}, "tcbStatus": "UpToDate"}]}


@pytest.mark.parametrize(("name", "document"), [("tcb_info", _TCB_INFO),
                                                ("qe_identity", _QE_IDENTITY)])
def test_a_tcb_document_signed_by_a_pck_key_is_refused(name: str,
                                                       document: dict[str, object]) -> None:
    intel = _Intel()
    # the control: Intel's TCB Signing certificate, issued by the root, signed it
    genuine = intel.collateral(name, document, intel.tcb_key, [intel.tcb, intel.root])
    found, signer = tdx._signed_json(genuine, name, intel.root, AT, intel.root_crl)
    assert found == document
    assert signer.subject == intel.tcb.subject
    # the attack: the same document signed by a PCK key, its chain up to the same root
    forged = intel.collateral(name, document, intel.pck_key,
                              [intel.pck, intel.platform, intel.root])
    with pytest.raises(tdx._FailError) as refused:
        tdx._signed_json(forged, name, intel.root, AT, intel.root_crl)
    assert refused.value.failure == "certificate chain"
    assert "Intel SGX TCB Signing" in refused.value.reason
    assert "Intel SGX PCK Certificate" in refused.value.reason
    # nor by a certificate named like the TCB Signing one but issued below the root
    look_alike = _cert("Intel SGX TCB Signing", intel.pck_key, intel.platform,
                       intel.platform_key, ca=False)
    forged = intel.collateral(name, document, intel.pck_key,
                              [look_alike, intel.platform, intel.root])
    with pytest.raises(tdx._FailError) as refused:
        tdx._signed_json(forged, name, intel.root, AT, intel.root_crl)
    assert refused.value.failure == "certificate chain"
