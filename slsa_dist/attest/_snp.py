"""AMD SEV-SNP attestation reports verified up to AMD's pinned root of each product, offline.

What :func:`verify_report` checks, in this order (the first that fails names the kind
of failure in the verdict):

1. the report's structure (1184 bytes, version >= 2, ECDSA P-384 with SHA-384, signed
   by a VCEK or a VLEK, as its SIGNING_KEY field says);
2. the signer's chain VCEK -> ASK -> ARK (VLEK -> ASVK -> ARK), where the ARK is AMD's
   pinned root of one product (Milan, Genoa, Turin: :mod:`._roots`) and the ASK is one
   carried with the collateral or the pinned one (an ASVK must be carried: none is
   pinned), each link's RSASSA-PSS signature and validity checked
   as of the given time; the product is the one whose ARK the chain reaches, and a
   version-3 report's CPUID family and model must be that product's;
   then, when a CRL is given, revocation: AMD's CRL of that product (KDS
   ``/vcek/v1/{product}/crl``, for a VLEK ``/vlek/v1/{product}/crl``) must be issued and
   signed (RSASSA-PSS) by the pinned ARK and current at the given time (thisUpdate <=
   time <= nextUpdate), else the verdict fails (``collateral``); the ASK (ASVK) or the
   VCEK (VLEK) listed in it fails the chain (``certificate chain``), naming it;
3. the report's signature by the VCEK's key;
4. the VCEK was issued for this chip and this TCB: its hwID extension equals the
   report's CHIP_ID (a VLEK names no chip, but its cloud provider, recorded), and its
   SPL extensions (boot loader, TEE, SNP, microcode, and FMC
   on Turin) equal the report's REPORTED_TCB;
5. last, the report data against this job's binding.

Recorded, not judged (no reference values are configured): the measurement, host
data, the guest policy (decoded: debug, migration agent, SMT, single socket), the
current, committed and launch TCBs and the VMPL.

Without a CRL nothing shows the ASK and VCEK were not revoked, so a report that passes
every other check is ``unverified`` (counted by no requirement), never ``verified``:
its reason names the missing CRL, and its ``verified`` lines, root and time stay.

Collateral: the VCEK certificate (DER or PEM, optionally followed by the ASK and ARK
in PEM, and AMD's CRL in PEM or DER), or the configfs-tsm ``auxblob`` the host fills
with its certificate table (GUID-indexed VCEK, ASK and ARK); the CRL the node fetched
is passed on its own (``crl``). A CRL in the collateral (the verifier's own) wins over
the one passed on its own.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import uuid
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from slsa_dist.attest._pki import (
    ChainError,
    crl_scope,
    der_items,
    der_spans,
    load_certificates,
    root_label,
    verify_issued_by,
)
from slsa_dist.attest._roots import AMD_ARK, AMD_ASK
from slsa_dist.attest._verdict import EvidenceVerdict, Failure
from slsa_dist.errors import InputError

__all__ = ["PRODUCTS", "certificate_table", "parse_report", "product_of", "split_collateral",
           "vcek_matches", "verify_report"]

_SIZE, _SIGNED = 0x4A0, 0x2A0
_AMD = "1.3.6.1.4.1.3704.1"
# The CPUID family and model of each product (version-3 reports carry them).
PRODUCTS = {"Milan": (0x19, {0x01}), "Genoa": (0x19, {0x11}), "Turin": (0x1A, {0x02})}
_GUIDS = {"vcek": uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"),
          "ask": uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"),
          "ark": uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"),
          "vlek": uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")}


class _FailError(Exception):
    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure: Failure = failure
        self.reason = reason


def _tcb(raw: bytes, product: str) -> dict[str, int]:
    if product == "Turin":
        return {"fmc": raw[0], "bootLoader": raw[1], "tee": raw[2], "snp": raw[3],
                "microcode": raw[7]}
    return {"bootLoader": raw[0], "tee": raw[1], "snp": raw[6], "microcode": raw[7]}


def parse_report(report: bytes) -> dict[str, Any]:
    """Fields of an SNP attestation report. Raises :class:`InputError`."""
    if len(report) != _SIZE:
        raise InputError(f"SNP report: expected {_SIZE} bytes, found {len(report)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", report, 0)
    vmpl, algorithm = struct.unpack_from("<II", report, 0x30)
    (flags,) = struct.unpack_from("<I", report, 0x48)
    if version < 2:
        raise InputError(f"SNP report version: expected 2 or later, found {version}")
    if algorithm != 1:
        raise InputError(f"SNP report signature algorithm: expected 1 (ECDSA P-384 with "
                         f"SHA-384), found {algorithm}")
    fields: dict[str, Any] = {
        "version": version, "guestSvn": guest_svn, "vmpl": vmpl,
        "policy": {"raw": f"{policy:#x}", "abiMajor": (policy >> 8) & 0xFF,
                   "abiMinor": policy & 0xFF, "smt": bool(policy >> 16 & 1),
                   "migrateMa": bool(policy >> 18 & 1), "debug": bool(policy >> 19 & 1),
                   "singleSocket": bool(policy >> 20 & 1)},
        "signingKey": ("vcek", "vlek")[flags >> 2 & 7] if (flags >> 2 & 7) < 2 else "none",
        "reportData": report[0x50:0x90].hex(), "measurement": report[0x90:0xC0].hex(),
        "hostData": report[0xC0:0xE0].hex(), "idKeyDigest": report[0xE0:0x110].hex(),
        "chipId": report[0x1A0:0x1E0].hex(),
    }
    if version >= 3:
        fields["cpuid"] = {"family": report[0x188], "model": report[0x189],
                           "stepping": report[0x18A]}
    return fields


def certificate_table(aux: bytes) -> dict[str, bytes]:
    """The certificates of an SNP extended-report certificate table (configfs-tsm auxblob)."""
    found, offset = {}, 0
    names = {guid.bytes_le: name for name, guid in _GUIDS.items()}
    while offset + 24 <= len(aux):
        guid, start, length = aux[offset:offset + 16], *struct.unpack_from("<II", aux,
                                                                           offset + 16)
        if guid == bytes(16):
            break
        if guid in names and start + length <= len(aux):
            found[names[guid]] = aux[start:start + length]
        offset += 24
    return found


def _extensions(vcek: x509.Certificate) -> dict[str, bytes]:
    return {e.oid.dotted_string.removeprefix(_AMD + "."): e.value.value
            for e in vcek.extensions if isinstance(e.value, x509.UnrecognizedExtension)
            and e.oid.dotted_string.startswith(_AMD)}


def _integer(raw: bytes) -> int:
    (tag, content), = der_items(raw)
    if tag != 0x02:
        raise InputError("VCEK extension: expected an INTEGER")
    return int.from_bytes(content, "big")


def _chain(certs: list[x509.Certificate], at: dt.datetime, signer: str = "vcek") \
        -> tuple[str, x509.Certificate, x509.Certificate, x509.Certificate]:
    """(product, VCEK or VLEK, ASK or ASVK, ARK): the signer's certificate chained
    through an ASK (ASVK for a VLEK) to a pinned ARK."""
    cn = {"vcek": "SEV-VCEK", "vlek": "SEV-VLEK"}[signer]
    leaves = [c for c in certs if _cn(c) == cn] or certs[:1]
    if not leaves:
        raise _FailError("collateral", f"SNP collateral: no {signer.upper()} certificate")
    leaf = leaves[0]
    if _cn(leaf) in ("SEV-VCEK", "SEV-VLEK") and _cn(leaf) != cn:
        raise _FailError("certificate chain", f"SNP report signed by its {signer.upper()}, "
                         f"but the certificate given is a {_cn(leaf)}")
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca or _cn(leaf).startswith(("SEV-VLEK-", "ARK-", "SEV-Milan", "SEV-Genoa",
                                      "SEV-Turin")):
        raise _FailError("certificate chain", f"{signer.upper()}: expected the signer's own "
                         f"certificate, found the CA certificate {_cn(leaf)!r}")
    asks = [c for c in certs if c is not leaf]
    errors = []
    for product, ark_pem in AMD_ARK.items():
        ark = x509.load_pem_x509_certificate(ark_pem.encode())
        pinned = [x509.load_pem_x509_certificate(AMD_ASK[product].encode())] \
            if signer == "vcek" else []
        for ask in [*asks, *pinned]:
            if ask.issuer != ark.subject:  # another product's: its error would hide this one's
                continue
            try:
                verify_issued_by(ark, ark, at)
                verify_issued_by(ask, ark, at)
                verify_issued_by(leaf, ask, at)
            except ChainError as exc:
                errors.append(f"{product}: {exc}")
                continue
            return product, leaf, ask, ark
    via = "an ASK" if signer == "vcek" else "an ASVK (carried: none is pinned)"
    if not errors:
        issuers = sorted({c.issuer.rfc4514_string() for c in asks}) or ["none"]
        errors.append(f"no ASK or ASVK issued by a pinned ARK, found issuers {issuers}")
    raise _FailError("certificate chain", f"{signer.upper()}: no chain through {via} to a "
                     f"pinned AMD ARK (Milan, Genoa, Turin): {'; '.join(errors[:3])}")


def _der_objects(data: bytes) -> list[bytes]:
    """The whole DER encodings of concatenated top-level items (certificates, CRLs);
    white space between items is skipped."""
    return [data[start:end] for _, start, _, end in der_spans(data, skip=b" \t\r\n")]


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def split_collateral(data: bytes) -> tuple[list[x509.Certificate], list[bytes]]:
    """(certificates, CRLs as DER) of SNP collateral: PEM blocks of both and DER
    certificates and CRLs, one after another (files concatenated, in any encoding).
    Raises :class:`InputError`."""
    certs: list[x509.Certificate] = []
    crls: list[bytes] = []
    for block in _PEM.finditer(data):
        try:
            if block[1] == b"X509 CRL":
                crls.append(x509.load_pem_x509_crl(block[0]).public_bytes(Encoding.DER))
            elif block[1] == b"CERTIFICATE":
                certs += load_certificates(block[0])
        except ValueError as exc:
            raise InputError(f"SNP collateral: a PEM {block[1].decode()} that does not "
                             f"parse ({exc})") from None
    # Between PEM blocks: DER items, or text (openssl's comments), which is passed over.
    gaps = [gap for gap in _PEM.sub(b"\0PEM\0", data).split(b"\0PEM\0")
            if gap.lstrip()[:1] == b"\x30" or (gap.strip() and gap == data)]
    for item in (item for gap in gaps for item in _der_objects(gap)):
        try:
            certs += load_certificates(item)
        except InputError:
            try:
                x509.load_der_x509_crl(item)
            except ValueError:
                raise InputError("SNP collateral: expected DER certificates or CRLs, found "
                                 "an item that is neither") from None
            crls.append(item)
    return certs, crls


def _check_revocation(crls: list[bytes], chain: tuple[str, x509.Certificate,
                                                     x509.Certificate, x509.Certificate],
                      at: dt.datetime, signer: str) -> None:
    """AMD's CRL of ``product``: issued and signed by the pinned ``ark``, current at
    ``at``, and listing neither the ASK (ASVK) nor the VCEK (VLEK). Raises
    :class:`_FailError`."""
    product, leaf, ask, ark = chain
    what = f"AMD CRL of ARK-{product}"
    loaded = []
    for der in crls:
        try:
            loaded.append(x509.load_der_x509_crl(der))
        except ValueError as exc:
            raise _FailError("collateral", f"{what}: expected a DER X.509 CRL, found "
                             f"{exc}") from None
    mine = [crl for crl in loaded if crl.issuer == ark.subject]
    if not mine:
        raise _FailError("collateral", f"{what}: the CRL given is issued by "
                         f"{loaded[0].issuer.rfc4514_string()}, not by the pinned ARK "
                         f"{ark.subject.rfc4514_string()}")
    key = ark.public_key()
    for crl in mine:
        algorithm = crl.signature_hash_algorithm
        try:
            params = crl.signature_algorithm_parameters
            if not isinstance(key, rsa.RSAPublicKey) or algorithm is None \
                    or not isinstance(params, padding.PSS):
                raise ValueError(f"expected RSASSA-PSS, found {crl.signature_algorithm_oid}")
            key.verify(crl.signature, crl.tbs_certlist_bytes, params, algorithm)
        except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise _FailError("collateral", f"{what}: signature not valid for the pinned "
                             f"ARK-{product} ({detail})") from None
        start, end = crl.last_update_utc, crl.next_update_utc
        if at < start or end is None or at > end:
            raise _FailError("collateral", f"{what}: current from {start.isoformat()} to "
                             f"{end.isoformat() if end else '(no nextUpdate)'}, not at "
                             f"{at.isoformat()} (a CRL current then is needed)")
        for cert, name in ((ask, "ASK" if signer == "vcek" else "ASVK"),
                           (leaf, signer.upper())):
            partial = crl_scope(crl, cert)  # not listed in a partial CRL is not "not revoked"
            if partial:
                raise _FailError("collateral", f"{what}: expected a complete CRL for the "
                                 f"{name}, found {partial}")
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise _FailError("certificate chain", f"{name} {_cn(cert)!r} (serial "
                                 f"{cert.serial_number:#x}) is revoked: listed in the {what}")


def product_of(cert: x509.Certificate) -> str | None:
    """The product (Milan, Genoa, Turin) a VCEK, VLEK, ASK or ASVK names in its issuer or
    subject (``SEV-Milan``, ``SEV-VLEK-Genoa``, ``ARK-Turin``), or None. A hint for
    fetching collateral: verification finds the product by the ARK the chain reaches."""
    for name in (cert.issuer, cert.subject):
        names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        last = str(names[0].value).rsplit("-", 1)[-1] if names else ""
        if last in PRODUCTS:
            return last
    return None


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


_SPL = {"bootLoader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}


def _issued_for(cert: x509.Certificate, report: bytes, product: str,
                signer: str) -> dict[str, int]:
    """The REPORTED_TCB, once the certificate is shown issued for it (and, for a VCEK, for
    the report's chip: hwID = CHIP_ID). Raises :class:`_FailError`."""
    ext = _extensions(cert)
    what = signer.upper()
    if signer == "vcek":
        hwid = ext.get("4", b"")
        chip = report[0x1A0:0x1E0]
        if not hwid or chip[:len(hwid)] != hwid or any(chip[len(hwid):]):
            raise _FailError("certificate chain", "VCEK: issued for another chip (hwID is "
                             "not the report's CHIP_ID)")
    reported = _tcb(report[0x180:0x188], product)
    for name, value in reported.items():
        if name not in _SPL or _SPL[name] not in ext:
            raise _FailError("certificate chain", f"{what}: no {name} SPL extension")
        if _integer(ext[_SPL[name]]) != value:
            raise _FailError("certificate chain", f"{what}: issued for {name} SPL "
                             f"{_integer(ext[_SPL[name]])}, the report's REPORTED_TCB has "
                             f"{value}")
    return reported


def vcek_matches(cert: x509.Certificate, report: bytes) -> bool:
    """Whether ``cert`` is a VCEK issued for this report's chip and REPORTED_TCB (the
    node picks its VCEK from a directory with it; verification checks it again)."""
    if _cn(cert) != "SEV-VCEK":
        return False
    named = _extensions(cert).get("2", b"")
    for name in PRODUCTS:
        if name.encode() in named or not named:
            try:
                _issued_for(cert, report, name, "vcek")
            except (_FailError, InputError, ValueError):
                continue
            return True
    return False


def verify_report(report: bytes, collateral: bytes | dict[str, bytes], at: dt.datetime,
                  expected_report_data: bytes | None, *, crl: bytes | None = None,
                  crl_missing: str = "") -> EvidenceVerdict:
    """Appraise an SNP report with its VCEK (and ASK) as of ``at``; never raises on bad input.

    ``collateral``: certificate bytes (DER, or PEM with the VCEK first; AMD's CRL may
    follow, PEM or DER), or a certificate table as :func:`certificate_table` returns it.
    ``expected_report_data``: this job's 64-byte binding, or None when there is no job to
    bind to. ``crl``: AMD's CRL of the product (DER or PEM), used when the collateral
    holds none; ``crl_missing``: why the node has none, named in the verdict. Without
    any CRL the verdict is at best ``unverified``.
    """
    as_of = at.isoformat()
    verified: list[str] = []
    not_verified = ["measurement and host data against reference values (none configured)"]
    if expected_report_data is None:
        not_verified.append("report data binding (no job, node and nonce to bind to)")
    fields: dict[str, Any] = {}
    label = revocation = ""

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               verified=verified, not_verified=not_verified, claims=fields,
                               root=label if failure == "binding mismatch" else "",
                               as_of=as_of)

    try:
        fields.update(parse_report(report))
    except InputError as exc:
        return fail("malformed", str(exc))
    try:
        signer = fields["signingKey"]
        if signer not in ("vcek", "vlek"):
            raise _FailError("malformed", "SNP report signed by no VCEK or VLEK "
                             "(SIGNING_KEY): nothing to verify it with")
        if isinstance(collateral, dict):
            certs = [c for name in ("vcek", "vlek", "ask", "ark") if name in collateral
                     for c in load_certificates(collateral[name])]
            crls = split_collateral(collateral["crl"])[1] if collateral.get("crl") else []
        else:
            certs, crls = split_collateral(collateral)
        if not crls and crl:
            crls = split_collateral(crl)[1] if b"-----BEGIN" in crl else [crl]
        chain = _chain(certs, at, signer)
        product, vcek, _, ark = chain
        label = root_label(f"AMD ARK-{product}", ark)
        intermediate = "ASK" if signer == "vcek" else "ASVK"
        verified.append(f"{signer.upper()} -> {intermediate} -> pinned {label}, each "
                        "link's signature and validity")
        if crls:
            _check_revocation(crls, chain, at, signer)
            verified.append(f"neither the {intermediate} nor the {signer.upper()} is revoked "
                            f"(AMD's CRL of ARK-{product}, signed by the pinned ARK, current "
                            "at the appraisal time)")
        else:
            kds = "vcek" if signer == "vcek" else "vlek"
            why = f"; the node could not fetch it: {crl_missing[:300]}" if crl_missing else ""
            revocation = (f"revocation of the {intermediate} and the {signer.upper()} (no AMD "
                          f"CRL of ARK-{product}, KDS /{kds}/v1/{product}/crl, carried or "
                          f"supplied{why})")
            not_verified.append(revocation)
        cpuid = fields.get("cpuid")
        family, models = PRODUCTS[product]
        if cpuid and (cpuid["family"], cpuid["model"] in models) != (family, True):
            raise _FailError("certificate chain", f"report CPUID family {cpuid['family']:#x} model "
                        f"{cpuid['model']:#x} is not a {product}")
        key = vcek.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise _FailError("certificate chain", f"{signer.upper()}: expected an ECDSA P-384 "
                             "key")
        r = int.from_bytes(report[_SIGNED:_SIGNED + 72], "little")
        s = int.from_bytes(report[_SIGNED + 72:_SIGNED + 144], "little")
        try:
            key.verify(encode_dss_signature(r, s), report[:_SIGNED],
                       ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            raise _FailError("signature", f"SNP report: signature not valid for the "
                             f"{signer.upper()}") from None
        verified.append(f"report signed by the {signer.upper()}")
        reported = _issued_for(vcek, report, product, signer)
        if signer == "vlek":
            csp = _extensions(vcek).get("5", b"")
            fields["cspId"] = der_items(csp)[0][1].decode("utf-8", "replace") if csp else ""
            verified.append(f"VLEK issued for the reported TCB {reported} (to cloud "
                            f"provider {fields['cspId']!r}; a VLEK names no chip)")
        else:
            verified.append(f"VCEK issued for this chip and the reported TCB {reported}")
        if fields["policy"]["debug"]:
            not_verified.append("confidentiality: the guest policy allows debugging "
                                "(POLICY.DEBUG), its memory is open to the host")
        fields.update(product=product, reportedTcb=reported,
                      currentTcb=_tcb(report[0x38:0x40], product),
                      committedTcb=_tcb(report[0x1E0:0x1E8], product),
                      launchTcb=_tcb(report[0x1F8:0x200], product))
    except _FailError as exc:
        return fail(exc.failure, exc.reason)
    except (InputError, ValueError, KeyError, TypeError) as exc:
        return fail("collateral", f"SNP collateral: malformed ({exc})")
    result: dict[str, Any] = {"root": label, "as_of": as_of, "claims": fields,
                              "not_verified": not_verified}
    if expected_report_data is not None:
        if report[0x50:0x90] != expected_report_data:
            return EvidenceVerdict(
                status="failed", failure="binding mismatch", verified=verified,
                reason=f"binding mismatch: the report verifies up to the {label}, but its "
                       f"report data {report[0x50:0x60].hex()}... is not this job's binding "
                       f"{expected_report_data[:16].hex()}... (evidence for another job, "
                       "node or nonce)", **result)
        verified.append("report data is this job's binding (nonce, job, node)")
    if revocation:
        # Everything else held, but nothing shows the ASK and VCEK were not revoked:
        # counted by no requirement until a CRL is carried or supplied.
        return EvidenceVerdict(status="unverified", verified=verified,
                               reason=f"not verified: {revocation}", **result)
    return EvidenceVerdict(status="verified", verified=verified, **result)
