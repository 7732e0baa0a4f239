"""What makes a certificate an EK certificate (TCG EK Credential Profile), one rule each."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from slsa_dist.attest._tpm import ek_profile

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EK_USAGE = x509.ExtendedKeyUsage([x509.ObjectIdentifier("2.23.133.8.1")])
TPM_NAMES = x509.SubjectAlternativeName([x509.DirectoryName(x509.Name([
    x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.1"), "id:00001014"),
    x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.2"), "swtpm"),
    x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.3"), "id:20191023")]))])
ENCIPHER = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
SIGN_ONLY = x509.KeyUsage(True, False, False, False, False, False, False, False, False)


def _cert(*extensions: x509.ExtensionType) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(KEY.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(KEY, hashes.SHA256())


@pytest.mark.parametrize("extensions", [(EK_USAGE,), (TPM_NAMES,), (EK_USAGE, ENCIPHER),
                                        (TPM_NAMES, x509.BasicConstraints(False, None))])
def test_an_ek_certificate_says_what_it_is(extensions: tuple[x509.ExtensionType, ...]) -> None:
    assert ek_profile(_cert(*extensions)) == ""


@pytest.mark.parametrize(("extensions", "why"), [
    ((), "not an EK certificate"),
    ((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), ENCIPHER),
     "not an EK certificate"),
    ((EK_USAGE, x509.BasicConstraints(True, None)), "found a CA certificate"),
    ((EK_USAGE, SIGN_ONLY), "keyEncipherment or keyAgreement"),
])
def test_anything_else_is_named_for_what_it_lacks(
        extensions: tuple[x509.ExtensionType, ...], why: str) -> None:
    assert why in ek_profile(_cert(*extensions))
