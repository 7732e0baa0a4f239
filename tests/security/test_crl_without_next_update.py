"""A CRL without nextUpdate does not clear a certificate.

``check_crl`` (EK CRLs for ``verify --ek-roots``, Intel's root CA and PCK CA CRLs for
TDX) required ``thisUpdate <= time <= nextUpdate`` only when nextUpdate was present:
a CRL without one counted as current forever. A node keeps the oldest CRL its issuer
signed -- from before its certificate was revoked -- and carries it (``ekCrls``) for
every job after. RFC 5280 5.1.2.5 makes nextUpdate mandatory for conforming issuers;
the OCSP check already refuses an answer without one, and AMD's CRL check too.

``cryptography`` will not build a CRL without nextUpdate, so the test signs one by
hand: the TBSCertList of a built CRL with its nextUpdate taken out, signed again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from slsa_dist.attest import _pki as pki

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _without_next_update(crl: x509.CertificateRevocationList,
                         key: ec.EllipticCurvePrivateKey) -> bytes:
    """``crl`` (DER) with no nextUpdate, signed again by ``key``."""
    (_, outer), = pki.der_items(crl.public_bytes(Encoding.DER))
    (_, tbs), (algorithm_tag, algorithm), _ = pki.der_items(outer)
    items = pki.der_items(tbs)
    # version, signature, issuer, thisUpdate, nextUpdate, ...: drop the second time
    times = [i for i, (tag, _) in enumerate(items) if tag in (0x17, 0x18)]
    assert len(times) == 2
    kept = [item for i, item in enumerate(items) if i != times[1]]
    new_tbs = _der(0x30, b"".join(_der(tag, body) for tag, body in kept))
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    return _der(0x30, new_tbs + _der(algorithm_tag, algorithm) + _der(0x03, b"\0" + signature))


def test_a_crl_without_next_update_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EK CA")])
    issuer = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(key.public_key()).serial_number(1)
              .not_valid_before(NOW - dt.timedelta(days=3650))
              .not_valid_after(NOW + dt.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(key, hashes.SHA256()))
    ek_key = ec.generate_private_key(ec.SECP256R1())
    ek = (x509.CertificateBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "EK")])).issuer_name(name)
        .public_key(ek_key.public_key()).serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=3650))
        .not_valid_after(NOW + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
    # five years old, from before the EK was revoked: it lists nothing
    old = (x509.CertificateRevocationListBuilder().issuer_name(name)
           .last_update(NOW - dt.timedelta(days=5 * 365))
           .next_update(NOW - dt.timedelta(days=5 * 365 - 7)).sign(key, hashes.SHA256()))
    with pytest.raises(pki.ChainError, match="not at"):  # the control: stale
        pki.check_crl(old.public_bytes(Encoding.DER), issuer, [ek], NOW)
    forever = _without_next_update(old, key)
    loaded = x509.load_der_x509_crl(forever)
    assert loaded.next_update_utc is None
    assert loaded.is_signature_valid(key.public_key())
    with pytest.raises(pki.ChainError, match="nextUpdate"):
        pki.check_crl(forever, issuer, [ek], NOW)
