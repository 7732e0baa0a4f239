"""OCSP answers carried with evidence, checked offline (RFC 6960) as of the appraisal time.

An answer counts for a certificate when its CertID names that certificate (serial, and the
hashes of its issuer's name and key, in the hash the answer uses), it is signed by that
issuer or by a responder certificate the issuer signed for OCSP signing (extended key
usage ``id-kp-OCSPSigning``), it was current at the appraisal time (thisUpdate <= at <=
nextUpdate; an answer without nextUpdate is refused: nothing would bound how stale it
is), and its status is good. A revoked certificate is named, with the reason and time.
Of several answers naming one certificate, every one is judged: an authentic, current
"revoked" fails it whatever else is carried; otherwise one authentic, current "good"
clears it (others, badly signed or stale, are passed over).
Nothing here fetches anything: nodes fetch the answers at job time and carry them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from slsa_dist.attest._pki import ChainError, verify_issued_by

__all__ = ["answers_for", "check", "load"]


def load(der: bytes) -> ocsp.OCSPResponse:
    """One DER OCSP response. Raises :class:`ChainError`."""
    try:
        return ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise ChainError(f"OCSP answer: expected a DER OCSPResponse, found {exc}") from None


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _single(cert: x509.Certificate, issuer: x509.Certificate,
            response: ocsp.OCSPResponse) -> ocsp.OCSPSingleResponse | None:
    """The response's single answer whose CertID names ``cert`` as issued by ``issuer``."""
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return None
    key = _spki_bits(issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    for single in response.responses:
        algorithm = single.hash_algorithm
        name_hash, key_hash = hashes.Hash(algorithm), hashes.Hash(algorithm)
        name_hash.update(issuer.subject.public_bytes())
        key_hash.update(key)  # over the subjectPublicKey BIT STRING's contents, not the SPKI
        if (single.serial_number == cert.serial_number
                and single.issuer_name_hash == name_hash.finalize()
                and single.issuer_key_hash == key_hash.finalize()):
            return single
    return None


def _spki_bits(spki: bytes) -> bytes:
    from slsa_dist.attest._pki import der_items

    (_, body), = der_items(spki)
    _, bits = der_items(body)[1]
    return bits[1:]  # the unused-bits octet


def answers_for(cert: x509.Certificate, issuer: x509.Certificate,
                answers: Sequence[ocsp.OCSPResponse]) -> list[ocsp.OCSPResponse]:
    """The carried answers whose CertID names ``cert`` (issued by ``issuer``)."""
    return [a for a in answers if _single(cert, issuer, a) is not None]


def _verify_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                       algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _responder(response: ocsp.OCSPResponse, issuer: x509.Certificate,
               at: dt.datetime) -> x509.Certificate:
    """The certificate whose key signed ``response``: the issuer itself, or a delegated
    responder the issuer certified for OCSP signing, valid at ``at``."""
    if _verify_signature(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _verify_signature(response, candidate):
            continue
        try:
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise ChainError(f"OCSP answer signed by {_name(candidate)}, which is not "
                             "certified for OCSP signing (no id-kp-OCSPSigning)")
        try:
            verify_issued_by(candidate, issuer, at)
        except ChainError as exc:
            raise ChainError(f"OCSP responder {_name(candidate)}: not a delegate of "
                             f"{_name(issuer)} ({exc})") from None
        return candidate
    raise ChainError(f"OCSP answer: signature not valid for {_name(issuer)} nor for a "
                     "responder certificate it carries")


class _RevokedError(ChainError):
    """An authentic answer, current at the appraisal time, says the certificate is revoked."""


def check(cert: x509.Certificate, issuer: x509.Certificate,
          answers: Sequence[ocsp.OCSPResponse], at: dt.datetime) -> str:
    """``cert`` is not revoked, by the carried answers current at ``at``; returns who signed
    the one that clears it.

    Raises:
        ChainError: no answer names ``cert``; an authentic answer current at ``at``
            says it is revoked; or none of those naming it is authentic, current and good.
    """
    found = answers_for(cert, issuer, answers)
    if not found:
        raise ChainError(f"no OCSP answer for {_name(cert)} (serial {cert.serial_number:#x})")
    # Every answer naming the certificate is judged, not the first the node listed: an
    # authentic, current "revoked" fails it, even beside an older "good" one still
    # current; otherwise one authentic, current "good" answer clears it.
    cleared, refused = "", []
    for response in found:
        try:
            cleared = _judge(cert, issuer, response, at) or cleared
        except _RevokedError:
            raise
        except ChainError as exc:
            refused.append(exc)
    if not cleared:
        raise refused[0]
    return cleared



def _judge(cert: x509.Certificate, issuer: x509.Certificate, response: ocsp.OCSPResponse,
           at: dt.datetime) -> str:
    """One answer naming ``cert``: who signed it when it holds. Raises ChainError."""
    signer = _responder(response, issuer, at)
    single = _single(cert, issuer, response)
    if single is None:  # found above: cannot happen
        raise ChainError(f"no OCSP answer for {_name(cert)}")
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if next_update is None:
        raise ChainError(f"OCSP answer for {_name(cert)}: no nextUpdate (refused: its "
                         "freshness is unbounded)")
    if not this_update <= at <= next_update:
        raise ChainError(f"OCSP answer for {_name(cert)}: current from "
                         f"{this_update.isoformat()} to {next_update.isoformat()}, not at "
                         f"{at.isoformat()}")
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        when = single.revocation_time_utc
        raise _RevokedError(f"{_name(cert)} (serial {cert.serial_number:#x}) is revoked"
                            f"{f' since {when.isoformat()}' if when else ''}"
                            f"{f' ({reason.name})' if reason else ''}, says {_name(signer)}")
    if status != ocsp.OCSPCertStatus.GOOD:
        raise ChainError(f"OCSP answer for {_name(cert)}: status {status.name.lower()}, "
                         "expected good")
    return _name(signer)


def check_chain(what: str, chain: Sequence[x509.Certificate],
                answers: Sequence[ocsp.OCSPResponse], at: dt.datetime) -> tuple[str, str]:
    """Each certificate of a verified ``chain`` (leaf first, the pinned root last) against
    the carried answers: ``(verified, not verified)`` lines, either may be empty. A
    certificate no answer names is listed as not verified; a bad answer raises.

    Raises:
        ChainError: an answer naming a certificate of the chain does not hold.
    """
    checked, missing = [], []
    for cert, issuer in itertools.pairwise(chain):
        if answers_for(cert, issuer, answers):
            check(cert, issuer, answers, at)
            checked.append(cert.subject.rfc4514_string())
        else:
            missing.append(cert.subject.rfc4514_string())
    done = (f"{what}: not revoked, by OCSP answers current at {at.isoformat()} "
            f"({'; '.join(checked)})") if checked else ""
    left = (f"{what}: revocation of {'; '.join(missing)} (no OCSP answer carried)"
            if missing else "")
    return done, left
