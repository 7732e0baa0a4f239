"""Certificate chains up to a pinned root, CRLs, and the little DER vendors' extensions need.

Chains whose certificates fit the X.509 path-validation profile of ``cryptography``
(Intel's PCK, TCB-signing and QE-identity chains; TPM EK chains) are validated with
:mod:`cryptography.x509.verification`, its end-entity extension policy relaxed to
accept the vendors' leaf certificates (no EKU or SAN). AMD's ARK -> ASK -> VCEK chain is
signed with RSASSA-PSS whose parameters that profile refuses (it allows only exact DER
encodings, and AMD's carry an explicit trailer field), so it is walked here, link by
link: each signature checked with the parameters the certificate declares, each
certificate's validity window and CA constraints checked as of the given time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from slsa_dist.errors import InputError

__all__ = ["ChainError", "check_crl", "crl_scope", "der_items", "der_spans", "fingerprint",
           "load_certificates", "root_label", "verify_chain", "verify_issued_by"]


class ChainError(InputError):
    """A certificate chain, a certificate or a CRL did not verify."""


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def root_label(name: str, cert: x509.Certificate) -> str:
    return f"{name} (sha256:{fingerprint(cert)})"


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """PEM (one or more) or one DER certificate. AMD's VCEKs carry a serial number of 0,
    which RFC 5280 forbids and ``cryptography`` only warns about; that warning is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificates(data)
            return [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise ChainError(f"certificate: expected PEM or DER, found {exc}") from None


def verify_chain(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                 root: x509.Certificate, at: dt.datetime) -> list[x509.Certificate]:
    """The chain leaf -> ... -> ``root`` valid at ``at`` (RFC 5280 path validation).

    Raises:
        ChainError: no valid path to ``root``.
    """
    builder = (PolicyBuilder().store(Store([root])).time(at)
               .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                   ee_policy=ExtensionPolicy.permit_all()))
    try:
        verified = builder.build_client_verifier().verify(leaf, list(intermediates))
    except VerificationError as exc:
        raise ChainError(f"no valid path from {leaf.subject.rfc4514_string()} to "
                         f"{root.subject.rfc4514_string()} as of {at.isoformat()}: {exc}") \
            from None
    return list(verified.chain)


def _in_window(cert: x509.Certificate, at: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ChainError(f"{cert.subject.rfc4514_string()}: valid from "
                         f"{cert.not_valid_before_utc.isoformat()} to "
                         f"{cert.not_valid_after_utc.isoformat()}, not at {at.isoformat()}")


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate,
                     at: dt.datetime) -> None:
    """One link: ``issuer`` signed ``cert`` (RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA, as the
    certificate declares), ``cert`` is valid at ``at``, and ``issuer`` is a CA.

    Raises:
        ChainError: the link does not hold.
    """
    _in_window(cert, at)
    _in_window(issuer, at)
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ChainError(f"{issuer.subject.rfc4514_string()}: expected a CA certificate "
                         "(basicConstraints CA:TRUE)")
    if cert.issuer != issuer.subject:
        raise ChainError(f"{cert.subject.rfc4514_string()}: issued by "
                         f"{cert.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}")
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise ChainError(f"{cert.subject.rfc4514_string()}: no signature hash algorithm")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            params = cert.signature_algorithm_parameters
            pad = params if isinstance(params, (padding.PSS, padding.PKCS1v15)) \
                else padding.PKCS1v15()
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            raise ChainError(f"{issuer.subject.rfc4514_string()}: unsupported key type "
                             f"{type(key).__name__}")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise ChainError(f"{cert.subject.rfc4514_string()}: signature not valid for "
                         f"{issuer.subject.rfc4514_string()} ({type(exc).__name__})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def crl_scope(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> str:
    """Why ``crl`` is not its issuer's complete list for ``cert``, "" when it is.

    A delta CRL (RFC 5280 5.2.4) lists only what changed since a base CRL; an issuing
    distribution point (5.2.5) may limit a CRL to CA or end-entity certificates, some
    reasons, or one distribution point. Not listed in such a CRL is not "not revoked".
    """
    extensions = crl.extensions
    try:
        extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        return "a delta CRL (only the changes since a base CRL)"
    except x509.ExtensionNotFound:
        pass
    try:
        point = extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return ""
    if point.only_some_reasons:
        return "a CRL of some revocation reasons only"
    if point.indirect_crl or point.only_contains_attribute_certs:
        return "an indirect or attribute-certificate CRL"
    if point.only_contains_ca_certs and not _is_ca(cert):
        return "a CRL of CA certificates only"
    if point.only_contains_user_certs and _is_ca(cert):
        return "a CRL of end-entity certificates only"
    if point.full_name or point.relative_name:
        try:
            named = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            named = None
        mine = {name for dp in named or () for name in dp.full_name or ()}
        if not mine & set(point.full_name or ()):
            return "a CRL of another distribution point than the certificate's"
    return ""


def check_crl(crl_der: bytes, issuer: x509.Certificate, certs: Sequence[x509.Certificate],
              at: dt.datetime) -> None:
    """The CRL is signed by ``issuer``, current at ``at``, a complete CRL for each of
    ``certs`` (:func:`crl_scope`), and revokes none of them.

    Raises:
        ChainError: a bad, stale or partial CRL, or a revoked certificate.
    """
    try:
        crl = (x509.load_pem_x509_crl(crl_der) if crl_der.lstrip().startswith(b"-----")
               else x509.load_der_x509_crl(crl_der))
    except ValueError as exc:
        raise ChainError(f"CRL: expected DER or PEM, found {exc}") from None
    if crl.issuer != issuer.subject:
        raise ChainError(f"CRL issued by {crl.issuer.rfc4514_string()}, expected "
                         f"{issuer.subject.rfc4514_string()}")
    for cert in certs:
        partial = crl_scope(crl, cert)
        if partial:
            raise ChainError(f"CRL of {issuer.subject.rfc4514_string()}: expected a complete "
                             f"CRL for {cert.subject.rfc4514_string()}, found {partial}")
    key = issuer.public_key()
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) \
            or not crl.is_signature_valid(key):
        raise ChainError(f"CRL of {issuer.subject.rfc4514_string()}: signature not valid")
    next_update = crl.next_update_utc
    if next_update is None:  # RFC 5280 5.1.2.5: it would be current forever
        raise ChainError(f"CRL of {issuer.subject.rfc4514_string()}: no nextUpdate (refused: "
                         "nothing bounds how stale it is)")
    if not crl.last_update_utc <= at <= next_update:
        raise ChainError(f"CRL of {issuer.subject.rfc4514_string()}: current from "
                         f"{crl.last_update_utc.isoformat()} to "
                         f"{next_update.isoformat()}, "
                         f"not at {at.isoformat()}")
    for cert in certs:
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise ChainError(f"{cert.subject.rfc4514_string()} (serial "
                             f"{cert.serial_number:#x}) is revoked")


def der_spans(data: bytes, *, skip: bytes = b"") -> list[tuple[int, int, int, int]]:
    """(tag, start, content start, end) of each top-level DER item in ``data``, in
    order; bytes in ``skip`` between items (white space) are passed over.

    Raises:
        InputError: truncated or indefinite-length DER.
    """
    spans, offset = [], 0
    while offset < len(data):
        if data[offset] in skip:
            offset += 1
            continue
        start = offset
        if offset + 2 > len(data):
            raise InputError("DER: truncated item")
        tag, length = data[offset], data[offset + 1]
        offset += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or offset + count > len(data):
                raise InputError("DER: unsupported length")
            length = int.from_bytes(data[offset:offset + count], "big")
            offset += count
        if offset + length > len(data):
            raise InputError("DER: item runs past the end")
        spans.append((tag, start, offset, offset + length))
        offset += length
    return spans


def der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) items of a DER SEQUENCE's contents, or of concatenated items.

    Raises:
        InputError: truncated or indefinite-length DER.
    """
    return [(tag, data[content:end]) for tag, _, content, end in der_spans(data)]


