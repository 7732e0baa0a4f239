"""NVIDIA reference integrity manifests (RIMs): the golden measurements of a driver or VBIOS.

A RIM is an ISO/IEC 19770-2 SWID tag (``SoftwareIdentity``) signed with an enveloped
XML-DSig signature (ECDSA P-384, SHA-384, canonical XML 1.1) whose ``KeyInfo`` carries the
signer's certificate chain. :func:`verify_rim` checks, as of the appraisal time:

- the chain from the signing certificate up to the pinned NVIDIA CoRIM signing Root CA
  (:data:`slsa_dist.attest._roots.NVIDIA_RIM_ROOT`; the root in ``KeyInfo`` is ignored);
- the XML signature by that certificate, through ``signxml`` (only ECDSA-SHA384 and
  SHA-384 digests accepted, one reference, the whole document);
- and reads the measurements only from what the signature covers.

Each ``Resource`` of type ``Measurement`` gives an index (0-based: SPDM measurement block
``index + 1``), whether it is ``active`` (compared with the report) or not, its size and
one or more alternative SHA-384 values (``Hash0``, ``Hash1``, ...). :func:`compare`
applies NVIDIA's rules: the active entries of the driver and VBIOS RIMs together (an
index active in both is a conflict), never more of them than the report has blocks; each
active entry's block must equal one of its alternatives, size included; the entry at
index 35 is not compared when the report says NVDEC0 is disabled.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from slsa_dist.attest import _pki as pki
from slsa_dist.attest import _roots as roots
from slsa_dist.errors import InputError

__all__ = ["COMPONENTS", "SWID", "GoldenMeasurement", "Rim", "RimError", "compare",
           "parse_unverified", "verify_rim"]

COMPONENTS = ("driver", "vbios")
SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"
_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
_SHA384 = "{http://www.w3.org/2001/04/xmlenc#sha384}"
_NVDEC_INDEX = 35


class RimError(InputError):
    """A RIM did not verify; ``failure`` is the verdict's failure kind."""

    def __init__(self, failure: str, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class GoldenMeasurement:
    index: int  # the RIM's index: SPDM measurement block index + 1
    active: bool
    size: int
    values: tuple[str, ...]


@dataclass(frozen=True)
class Rim:
    """A RIM whose signature and chain verified: what its signature covers."""

    component: str
    version: str  # Meta/@colloquialVersion, lower case
    tag_id: str
    signer: str
    chain: tuple[x509.Certificate, ...]  # signer first, the pinned root last
    measurements: dict[int, GoldenMeasurement] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.component} RIM {self.version} (tagId {self.tag_id[:16]}...)"


def _parser() -> Any:
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False,
                           huge_tree=False)


def parse_unverified(data: bytes) -> tuple[Any, list[x509.Certificate]]:
    """The document and the certificates its ``KeyInfo`` carries (nothing verified yet).

    Raises:
        RimError: not XML, not a SWID tag, or no certificate.
    """
    from lxml import etree

    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise RimError("malformed", f"RIM: expected XML, found {exc}") from None
    if root.tag != f"{SWID}SoftwareIdentity":
        raise RimError("malformed", f"RIM: expected a SWID SoftwareIdentity, found {root.tag}")
    certs = []
    for element in root.iter(f"{_DSIG}X509Certificate"):
        try:
            certs.append(x509.load_der_x509_certificate(
                base64.b64decode("".join((element.text or "").split()))))
        except ValueError as exc:
            raise RimError("malformed", f"RIM KeyInfo certificate: {exc}") from None
    if not certs:
        raise RimError("malformed", "RIM: expected the signer's certificate in KeyInfo, "
                       "found none")
    return root, certs


def verify_rim(data: bytes, component: str, at: dt.datetime) -> Rim:
    """A RIM's signing chain up to the pinned NVIDIA RIM root and its XML signature, as
    of ``at``; its golden measurements read from the signed document.

    Raises:
        RimError: with the failure kind (``malformed``, ``certificate chain``,
            ``signature``) and what did not hold.
    """
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.exceptions import InvalidInput, InvalidSignature
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    _, certs = parse_unverified(data)
    root = pki.load_certificates(roots.NVIDIA_RIM_ROOT.encode())[0]
    pinned = pki.fingerprint(root)
    leaf, rest = certs[0], [c for c in certs[1:] if pki.fingerprint(c) != pinned]
    try:
        chain = _walk(leaf, rest, root, at)
    except pki.ChainError as exc:
        raise RimError("certificate chain", f"{component} RIM signing chain: {exc}") from None
    config = SignatureConfiguration(
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA384}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA384}),
        expect_references=1, verification_time=at)
    try:
        result = XMLVerifier().verify(data, x509_cert=leaf, expect_config=config)
    except InvalidSignature as exc:  # signxml's InvalidCertificate and InvalidDigest too
        raise RimError("signature", f"{component} RIM XML signature: not valid for "
                       f"{leaf.subject.rfc4514_string()} ({type(exc).__name__}: "
                       f"{str(exc)[:160]})") from None
    except InvalidInput as exc:
        raise RimError("malformed", f"{component} RIM XML signature: {exc}") from None
    except Exception as exc:  # lxml, cryptography: bad evidence is a verdict, never a crash
        raise RimError("malformed", f"{component} RIM XML signature: {type(exc).__name__}: "
                       f"{str(exc)[:160]}") from None
    signed = None if isinstance(result, list) else result.signed_xml
    if signed is None or signed.tag != f"{SWID}SoftwareIdentity":
        raise RimError("signature", f"{component} RIM: the signature does not cover the "
                       "SoftwareIdentity")
    return Rim(component=component, version=_version(signed, component),
               tag_id=str(signed.get("tagId", "")), signer=leaf.subject.rfc4514_string(),
               chain=tuple(chain), measurements=_measurements(signed, component))


def _walk(leaf: x509.Certificate, pool: list[x509.Certificate], root: x509.Certificate,
          at: dt.datetime) -> list[x509.Certificate]:
    """leaf -> ... -> ``root``, link by link (:func:`pki.verify_issued_by`): NVIDIA's RIM
    certificates encode pre-2050 dates as GeneralizedTime, which RFC 5280 path validation
    in ``cryptography`` refuses, so the chain is walked here."""
    chain, cert = [leaf], leaf
    for _ in range(len(pool) + 1):
        if cert.issuer == root.subject:
            pki.verify_issued_by(cert, root, at)
            return [*chain, root]
        issuers = [c for c in pool if c.subject == cert.issuer and c not in chain]
        if not issuers:
            raise pki.ChainError(f"{cert.subject.rfc4514_string()}: its issuer "
                                 f"{cert.issuer.rfc4514_string()} is neither carried nor "
                                 f"the pinned {root.subject.rfc4514_string()}")
        pki.verify_issued_by(cert, issuers[0], at)
        chain.append(cert := issuers[0])
    raise pki.ChainError(f"no path from {leaf.subject.rfc4514_string()} to "
                         f"{root.subject.rfc4514_string()}")


def _version(signed: Any, component: str) -> str:
    meta = signed.find(f"{SWID}Meta")
    version = meta.get("colloquialVersion") if meta is not None else None
    if not version:
        raise RimError("malformed", f"{component} RIM: expected Meta/@colloquialVersion, "
                       "found none")
    return str(version).lower()


def _measurements(signed: Any, component: str) -> dict[int, GoldenMeasurement]:
    payload = signed.find(f"{SWID}Payload")
    if payload is None:
        raise RimError("malformed", f"{component} RIM: expected a Payload, found none")
    found: dict[int, GoldenMeasurement] = {}
    for resource in payload.iter(f"{SWID}Resource"):
        if resource.get("type") != "Measurement":
            continue
        try:
            index = int(resource.get("index"))
            size = int(resource.get("size"))
            count = int(resource.get("alternatives"))
            active = {"True": True, "False": False}[resource.get("active")]
            values = tuple(str(resource.get(f"{_SHA384}Hash{i}")).lower() for i in range(count))
        except (TypeError, ValueError, KeyError) as exc:
            raise RimError("malformed", f"{component} RIM measurement "
                           f"{resource.get('index')!r}: expected index, size, alternatives, "
                           f"active True/False and Hash0..n ({type(exc).__name__})") from None
        if count < 1 or any(len(v) != 2 * size or not _is_hex(v) for v in values):
            raise RimError("malformed", f"{component} RIM measurement {index}: expected "
                           f"{count} hex values of {size} bytes")
        if index in found:
            raise RimError("malformed", f"{component} RIM: measurement index {index} twice")
        found[index] = GoldenMeasurement(index, active, size, values)
    return found


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def compare(runtime: dict[str, str], driver: Rim, vbios: Rim,
            nvdec_disabled: bool) -> tuple[list[str], list[str]]:
    """The report's measurement blocks (SPDM index -> hex) against the active golden
    measurements of both RIMs: ``(mismatches, skipped)``, each naming the index and RIM.

    Raises:
        RimError: an index active in both RIMs, or more active entries than blocks.
    """
    golden: dict[int, tuple[Rim, GoldenMeasurement]] = {}
    for rim in (driver, vbios):
        for index, entry in sorted(rim.measurements.items()):
            if not entry.active:
                continue
            if index in golden:
                raise RimError("collateral", f"RIM measurement index {index} is active in "
                               f"both the {golden[index][0].label()} and the {rim.label()}")
            golden[index] = (rim, entry)
    if len(golden) > len(runtime):
        raise RimError("reference values", f"the RIMs hold {len(golden)} active measurements, "
                       f"the report only {len(runtime)} blocks")
    mismatches, skipped = [], []
    for index, (rim, entry) in sorted(golden.items()):
        if index == _NVDEC_INDEX and nvdec_disabled:
            skipped.append(f"RIM index {index} of the {rim.label()} (NVDEC0 is disabled, "
                           "says the report)")
            continue
        value = runtime.get(str(index + 1), "").lower()
        if value not in entry.values or len(value) != 2 * entry.size:
            shown = value[:16] + "..." if value else "no such block"
            mismatches.append(f"measurement index {index} (SPDM block {index + 1}) of the "
                              f"{rim.label()}: expected one of "
                              f"{', '.join(v[:16] + '...' for v in entry.values)}, found "
                              f"{shown}")
    return mismatches, skipped
