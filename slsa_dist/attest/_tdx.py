"""Intel TDX DCAP quotes (v4, v5) verified up to the pinned Intel SGX Root CA, offline.

What :func:`verify_quote` checks, in this order (the first that fails names the kind
of failure in the verdict):

1. the quote's structure (header, TD report body, signature data, QE report
   certification data with the PCK certificate chain);
2. the PCK certificate chain, the TCB-signing chain and the QE-identity-signing chain,
   each up to the pinned Intel SGX Root CA (:mod:`._roots`), as of the given time, none
   revoked by the root CA's and the PCK CA's CRLs in the collateral;
3. the signatures of the TCB info and the QE identity by their signing certificates,
   and that both are current (issueDate <= time <= nextUpdate);
4. the QE report's signature by the PCK key, and its report data =
   SHA-256(attestation key || QE authentication data): the QE vouches for the key;
5. the quote's signature (header and TD report) by that attestation key;
6. the QE against the QE identity (MRSIGNER, ISVPRODID, masked MISCSELECT and
   ATTRIBUTES, TCB level by ISVSVN), the TDX module against the TCB info's module
   identity (MRSIGNERSEAM, masked SEAM attributes, TCB level by its ISVSVN), and the
   platform's TCB level (FMSPC, PCE-ID, the PCK certificate's CPUSVN components and
   PCESVN, the TD report's TEE_TCB_SVN): the status and advisory IDs of the worst of
   them, as Intel's Quote Verification Library does;
7. last, the TD report's report data against this job's binding, so that a "binding
   mismatch" is reported only for a quote whose every other check passed.

The collateral is the JSON object Intel's PCS/PCCS answers are assembled into (the
format of Phala's dcap-qvl ``QuoteCollateralV3``): ``tcb_info``,
``tcb_info_signature``, ``tcb_info_issuer_chain``, ``qe_identity``,
``qe_identity_signature``, ``qe_identity_issuer_chain``, ``root_ca_crl`` and
``pck_crl`` (hex DER), ``pck_crl_issuer_chain``. Nothing in it is trusted: every
piece is checked up to the pinned root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from slsa_dist.attest._pki import (
    ChainError,
    check_crl,
    der_items,
    load_certificates,
    root_label,
    verify_chain,
)
from slsa_dist.attest._roots import INTEL_SGX_ROOT
from slsa_dist.attest._verdict import EvidenceVerdict, Failure
from slsa_dist.errors import InputError

__all__ = ["STATUSES", "Quote", "parse_quote", "verify_quote"]

_HEADER = 48
_TD10, _TD15 = 584, 648
_TEE_TDX = 0x81
_KEY_ECDSA_P256 = 2
_INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_QE_REPORT = 384
_CERT_QE_REPORT, _CERT_PCK_CHAIN = 6, 5
_SGX_EXTENSION = "1.2.840.113741.1.13.1"
_TD_FIELDS = {  # name: (offset in the TD report body, length)
    "teeTcbSvn": (0, 16), "mrSeam": (16, 48), "mrSignerSeam": (64, 48),
    "seamAttributes": (112, 8), "tdAttributes": (120, 8), "xfam": (128, 8),
    "mrTd": (136, 48), "mrConfigId": (184, 48), "mrOwner": (232, 48),
    "mrOwnerConfig": (280, 48), "rtmr0": (328, 48), "rtmr1": (376, 48),
    "rtmr2": (424, 48), "rtmr3": (472, 48), "reportData": (520, 64),
}
# Intel's TCB statuses, best first; the worst of the platform's, the QE's and the
# TDX module's is the quote's.
STATUSES = ("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
            "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded",
            "Revoked")


class _FailError(Exception):
    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure: Failure = failure
        self.reason = reason


@dataclass(frozen=True)
class Quote:
    """The parts of a TDX quote that verification needs."""

    version: int
    signed: bytes  # header and (v5: descriptor and) TD report body: what the AK signs
    body: bytes
    signature: bytes  # r || s, 64 bytes
    attestation_key: bytes  # x || y, 64 bytes
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.body[o:o + n].hex()
                               for name, (o, n) in _TD_FIELDS.items()}
        out["quoteVersion"] = self.version
        if len(self.body) == _TD15:
            out["teeTcbSvn2"] = self.body[584:600].hex()
            out["mrServiceTd"] = self.body[600:648].hex()
        return out


def _take(data: bytes, offset: int, count: int, what: str) -> bytes:
    if offset + count > len(data):
        raise InputError(f"TDX quote: {what}: expected {count} bytes at offset {offset}, "
                         f"found {max(0, len(data) - offset)}")
    return data[offset:offset + count]


def parse_quote(quote: bytes) -> Quote:
    """Parse a TDX DCAP quote v4 or v5. Raises :class:`InputError`."""
    header = _take(quote, 0, _HEADER, "header")
    version, key_type, tee_type = struct.unpack_from("<HHI", header, 0)
    if version not in (4, 5):
        raise InputError(f"TDX quote version: expected 4 or 5, found {version}")
    if tee_type != _TEE_TDX:
        raise InputError(f"TDX quote tee_type: expected {_TEE_TDX:#x}, found {tee_type:#x}")
    if key_type != _KEY_ECDSA_P256:
        raise InputError(f"TDX quote attestation key type: expected 2 (ECDSA P-256), found "
                         f"{key_type}")
    if header[12:28] != _INTEL_QE_VENDOR:
        raise InputError(f"TDX quote QE vendor: expected Intel's, found {header[12:28].hex()}")
    offset = _HEADER
    if version == 4:
        size = _TD10
    else:
        body_type, size = struct.unpack("<HI", _take(quote, offset, 6, "body descriptor"))
        if (body_type, size) not in ((2, _TD10), (3, _TD15)):
            raise InputError(f"TDX quote v5 body: expected type 2 (584 bytes) or 3 (648), "
                             f"found type {body_type} ({size} bytes)")
        offset += 6
    body = _take(quote, offset, size, "TD report body")
    offset += size
    signed = quote[:offset]
    (length,) = struct.unpack("<I", _take(quote, offset, 4, "signature data length"))
    offset += 4
    data = _take(quote, offset, length, "signature data")
    if any(quote[offset + length:]):  # quotes are often read into zero-padded buffers
        raise InputError(f"TDX quote: expected {offset + length} bytes (then only zero "
                         f"padding), found {len(quote)} with data after the signature")
    signature, key = _take(data, 0, 64, "signature"), _take(data, 64, 64, "attestation key")
    cert_type, cert_size = struct.unpack("<HI", _take(data, 128, 6, "certification data"))
    if cert_type != _CERT_QE_REPORT:
        raise InputError(f"TDX quote certification data: expected type 6 (QE report), "
                         f"found {cert_type}")
    cert = _take(data, 134, cert_size, "QE report certification data")
    qe_report = _take(cert, 0, _QE_REPORT, "QE report")
    qe_signature = _take(cert, _QE_REPORT, 64, "QE report signature")
    (auth_size,) = struct.unpack("<H", _take(cert, _QE_REPORT + 64, 2, "QE auth data size"))
    auth = _take(cert, _QE_REPORT + 66, auth_size, "QE auth data")
    at = _QE_REPORT + 66 + auth_size
    inner_type, inner_size = struct.unpack("<HI", _take(cert, at, 6, "PCK certification data"))
    if inner_type != _CERT_PCK_CHAIN:
        raise InputError(f"TDX quote: expected the PCK certificate chain (type 5), found "
                         f"type {inner_type} (fetch the PCK certificate into the collateral)")
    chain = _take(cert, at + 6, inner_size, "PCK certificate chain")
    return Quote(version=version, signed=signed, body=body, signature=signature,
                 attestation_key=key, qe_report=qe_report, qe_report_signature=qe_signature,
                 qe_auth_data=auth, pck_chain_pem=chain.rstrip(b"\0"))


def _raw_signature(raw: bytes) -> bytes:
    if len(raw) != 64:
        raise _FailError("malformed", f"ECDSA signature: expected 64 bytes (r || s), found "
                         f"{len(raw)}")
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _verify_p256(key: ec.EllipticCurvePublicKey, raw_signature: bytes, data: bytes,
                 what: str) -> None:
    try:
        key.verify(_raw_signature(raw_signature), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _FailError("signature" if "quote" in what or "QE report" in what else "collateral",
                    f"{what}: signature not valid") from None


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _FailError("certificate chain", f"{cert.subject.rfc4514_string()}: expected an "
                    "ECDSA key")
    return key


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _oid(content: bytes) -> str:
    first = content[0]
    parts, value = [str(first // 40), str(first % 40)], 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _pck_extension(cert: x509.Certificate) -> dict[str, Any]:
    """FMSPC, PCE-ID, the 16 CPUSVN components and PCESVN from the PCK's SGX extension."""
    try:
        raw = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(_SGX_EXTENSION))
        value = raw.value
        if not isinstance(value, x509.UnrecognizedExtension):
            raise _FailError("certificate chain", "PCK certificate: unexpected SGX extension type")
        out: dict[str, Any] = {}
        (_, top), = der_items(value.value)
        for _, pair in der_items(top):
            (_, oid), (_, content) = der_items(pair)[:2]
            name = _oid(oid).removeprefix(_SGX_EXTENSION + ".")
            if name == "2":  # TCB: components 1-16, PCESVN (17), CPUSVN (18)
                svns: dict[int, int] = {}
                for _, item in der_items(content):
                    (_, sub), (_, number) = der_items(item)[:2]
                    svns[int(_oid(sub).rsplit(".", 1)[1])] = int.from_bytes(number, "big")
                out["cpuSvn"] = [svns[i] for i in range(1, 17)]
                out["pceSvn"] = svns[17]
            elif name == "3":
                out["pceId"] = content.hex().upper()
            elif name == "4":
                out["fmspc"] = content.hex().upper()
        if not {"cpuSvn", "pceSvn", "pceId", "fmspc"} <= set(out):
            raise _FailError("certificate chain", "PCK certificate: SGX extension lacks "
                        "TCB, PCE-ID or FMSPC")
        return out
    except x509.ExtensionNotFound:
        raise _FailError("certificate chain", "PCK certificate: no SGX extension") from None
    except (InputError, ValueError, KeyError, IndexError) as exc:
        raise _FailError("certificate chain", f"PCK certificate: malformed SGX extension ({exc})") \
            from None


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _current(doc: dict[str, Any], what: str, at: dt.datetime) -> None:
    issued, next_update = _time(doc["issueDate"]), _time(doc["nextUpdate"])
    if not issued <= at <= next_update:
        raise _FailError("collateral", f"{what}: current from {issued.isoformat()} to "
                    f"{next_update.isoformat()}, not at {at.isoformat()}")


_TCB_SIGNING = "Intel SGX TCB Signing"


def _signed_json(collateral: dict[str, Any], name: str, root: x509.Certificate,
                 at: dt.datetime, root_crl: bytes) -> tuple[dict[str, Any], x509.Certificate]:
    """Verify ``name`` (tcb_info or qe_identity): its chain to the root, its signature."""
    certs = load_certificates(str(collateral[f"{name}_issuer_chain"]).encode())
    try:
        chain = verify_chain(certs[0], certs[1:], root, at)
        check_crl(root_crl, root, [*chain[1:-1], chain[0]], at)
    except ChainError as exc:
        raise _FailError("certificate chain", f"{name} signing certificate: {exc}") from None
    # Any certificate under the root chains to it, a PCK certificate too (a key that a
    # platform holds, and an out-of-date one may leak): only Intel's TCB Signing
    # certificate, issued by the root itself, speaks for TCB levels and QE identities.
    if len(chain) != 2 or _cn(chain[0]) != _TCB_SIGNING:
        path = " -> ".join(c.subject.rfc4514_string() for c in chain)
        raise _FailError("certificate chain", f"{name} signing certificate: expected "
                         f"{_TCB_SIGNING!r} issued by the root, found {path}")
    text = str(collateral[name])
    _verify_p256(_ec_key(chain[0]), bytes.fromhex(collateral[f"{name}_signature"]),
                 text.encode(), f"{name} (collateral)")
    document = json.loads(text)
    if not isinstance(document, dict):
        raise _FailError("collateral", f"{name}: expected a JSON object")
    _current(document, name, at)
    return document, chain[0]


def _masked(actual: bytes, expected: str, mask: str) -> bool:
    want, bits = bytes.fromhex(expected), bytes.fromhex(mask)
    return len(want) == len(bits) == len(actual) and all(
        a & m == w & m for a, w, m in zip(actual, want, bits, strict=True))


def _worst(*levels: tuple[str, list[str]]) -> tuple[str, list[str]]:
    status = max((s for s, _ in levels), key=STATUSES.index)
    advisories: list[str] = []
    for _, ids in levels:
        advisories += [i for i in ids if i not in advisories]
    return status, advisories


def _level(entry: dict[str, Any]) -> tuple[str, list[str]]:
    status = str(entry["tcbStatus"])
    if status not in STATUSES:
        raise _FailError("collateral", f"TCB status: unknown {status!r}")
    return status, [str(i) for i in entry.get("advisoryIDs", [])]


def _qe_status(qe: bytes, identity: dict[str, Any]) -> tuple[str, list[str]]:
    if identity.get("id") != "TD_QE" or identity.get("version") not in (2, 3):
        raise _FailError("collateral", f"QE identity: expected TD_QE version 2 or 3, found "
                    f"{identity.get('id')} version {identity.get('version')}")
    if qe[128:160] != bytes.fromhex(identity["mrsigner"]):
        raise _FailError("tcb", "QE identity: the QE's MRSIGNER is not Intel's TD QE signer")
    if int.from_bytes(qe[256:258], "little") != int(identity["isvprodid"]):
        raise _FailError("tcb", "QE identity: ISVPRODID does not match")
    if not _masked(qe[16:20], identity["miscselect"], identity["miscselectMask"]):
        raise _FailError("tcb", "QE identity: MISCSELECT does not match under its mask")
    if not _masked(qe[48:64], identity["attributes"], identity["attributesMask"]):
        raise _FailError("tcb", "QE identity: ATTRIBUTES do not match under their mask")
    svn = int.from_bytes(qe[258:260], "little")
    for entry in identity["tcbLevels"]:
        if svn >= int(entry["tcb"]["isvsvn"]):
            return _level(entry)
    raise _FailError("tcb", f"QE identity: ISVSVN {svn} is below every TCB level")


def _module_status(body: bytes, info: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The TDX module against the TCB info's module identity (MRSIGNERSEAM, attributes)."""
    module = info.get("tdxModule")
    if not isinstance(module, dict):
        raise _FailError("collateral", "TCB info: no tdxModule")
    svn, version = body[0], body[1]
    identity, levels = module, None
    if version > 0 and info.get("tdxModuleIdentities"):
        wanted = f"TDX_{version:02X}"
        found = [i for i in info["tdxModuleIdentities"] if str(i["id"]).upper() == wanted]
        if not found:
            raise _FailError("tcb", f"TCB info: no TDX module identity {wanted}")
        identity, levels = found[0], found[0]["tcbLevels"]
    if body[64:112] != bytes.fromhex(identity["mrsigner"]):
        raise _FailError("tcb", "TDX module: MRSIGNERSEAM is not the TCB info's module signer")
    if not _masked(body[112:120], identity["attributes"], identity["attributesMask"]):
        raise _FailError("tcb", "TDX module: SEAM attributes do not match under their mask")
    if levels is None:
        return None
    for entry in levels:
        if svn >= int(entry["tcb"]["isvsvn"]):
            return _level(entry)
    raise _FailError("tcb", f"TDX module: ISVSVN {svn} is below every TCB level")


def _platform_status(body: bytes, info: dict[str, Any], pck: dict[str, Any]) \
        -> tuple[str, list[str]]:
    if info.get("id") != "TDX" or int(info.get("version", 0)) < 3:
        raise _FailError("collateral", f"TCB info: expected TDX version 3, found {info.get('id')} "
                    f"version {info.get('version')}")
    if str(info["fmspc"]).upper() != pck["fmspc"]:
        raise _FailError("collateral", f"TCB info is for FMSPC {info['fmspc']}, the PCK "
                    f"certificate's is {pck['fmspc']}")
    if str(info["pceId"]).upper() != pck["pceId"]:
        raise _FailError("collateral", f"TCB info is for PCE-ID {info['pceId']}, the PCK "
                    f"certificate's is {pck['pceId']}")
    tee_svn = body[0:16]
    # Intel's QVL: with a TDX module version (TEE_TCB_SVN[1] > 0), the first two
    # components are the module's, judged by its identity's levels instead.
    first = 2 if tee_svn[1] > 0 else 0
    for entry in info["tcbLevels"]:  # highest first, as Intel publishes them
        tcb = entry["tcb"]
        sgx = [int(c["svn"]) for c in tcb["sgxtcbcomponents"]]
        tdx = [int(c["svn"]) for c in tcb["tdxtcbcomponents"]]
        behind = any(a < b for a, b in zip(pck["cpuSvn"], sgx, strict=True))
        if pck["pceSvn"] < int(tcb["pcesvn"]) or behind:
            continue
        if any(tee_svn[i] < tdx[i] for i in range(first, 16)):
            continue
        return _level(entry)
    raise _FailError("tcb", "TCB info: no TCB level matches the platform (PCK CPUSVN/PCESVN, "
                "TEE_TCB_SVN): its TCB is not supported")


def verify_quote(quote: bytes, collateral: bytes, at: dt.datetime,
                 expected_report_data: bytes | None) -> EvidenceVerdict:
    """Appraise a TDX quote with its collateral, as of ``at``; never raises on bad input.

    ``expected_report_data``: this job's 64-byte binding, or None when there is no job to
    bind to (the binding is then listed as not checked).
    """
    root = x509.load_pem_x509_certificate(INTEL_SGX_ROOT.encode())
    label = root_label("Intel SGX Root CA", root)
    as_of = at.isoformat()
    verified: list[str] = []
    not_verified = ["TD measurements (MRTD, RTMRs, MRCONFIGID) against reference values "
                    "(none configured)"]
    if expected_report_data is None:
        not_verified.append("report data binding (no job, node and nonce to bind to)")
    fields: dict[str, Any] = {}

    def fail(failure: Failure, reason: str) -> EvidenceVerdict:
        return EvidenceVerdict(status="failed", failure=failure, reason=reason,
                               verified=verified, not_verified=not_verified, claims=fields,
                               root=label if failure in ("binding mismatch", "tcb") else "",
                               as_of=as_of)

    try:
        parsed = parse_quote(quote)
    except InputError as exc:
        return fail("malformed", str(exc))
    fields.update(parsed.fields())
    try:
        data = json.loads(collateral)
        root_crl = bytes.fromhex(data["root_ca_crl"])
        pck_crl = bytes.fromhex(data["pck_crl"])
    except (ValueError, KeyError, TypeError) as exc:
        return fail("collateral", f"TDX collateral: expected the JSON object of TCB info, "
                    f"QE identity and CRLs, found {exc!r}")
    try:
        try:
            check_crl(root_crl, root, [], at)
            pck_certs = load_certificates(parsed.pck_chain_pem)
            chain = verify_chain(pck_certs[0], pck_certs[1:], root, at)
            check_crl(root_crl, root, chain[1:-1], at)
            check_crl(pck_crl, chain[1], [chain[0]], at)
        except ChainError as exc:
            raise _FailError("certificate chain", f"PCK certificate chain: {exc}") from None
        pck = _pck_extension(chain[0])
        names = " -> ".join(_cn(c) for c in chain[:-1])
        verified.append(f"PCK certificate chain ({names}) to the pinned {label}, none "
                        "revoked (root CA and PCK CA CRLs)")
        info, _ = _signed_json(data, "tcb_info", root, at, root_crl)
        verified.append(f"TCB info (FMSPC {info['fmspc']}, issued {info['issueDate']}, "
                        f"next update {info['nextUpdate']}) signed by Intel SGX TCB Signing, "
                        "chained to the pinned root")
        identity, _ = _signed_json(data, "qe_identity", root, at, root_crl)
        verified.append(f"QE identity (issued {identity['issueDate']}, next update "
                        f"{identity['nextUpdate']}) signed by Intel SGX TCB Signing, chained "
                        "to the pinned root")
        _verify_p256(_ec_key(chain[0]), parsed.qe_report_signature, parsed.qe_report,
                     "QE report (by the PCK key)")
        verified.append("QE report signed by the PCK key")
        bound = hashlib.sha256(parsed.attestation_key + parsed.qe_auth_data).digest()
        if parsed.qe_report[320:352] != bound or any(parsed.qe_report[352:384]):
            raise _FailError("signature", "QE report data: expected SHA-256(attestation key || "
                        "QE auth data): the QE does not vouch for this attestation key")
        verified.append("QE report data = SHA-256(attestation key || QE auth data)")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b"\x04" + parsed.attestation_key)
        except ValueError:
            raise _FailError("signature", "attestation key: not a point on P-256") from None
        _verify_p256(key, parsed.signature, parsed.signed, "quote (by the attestation key)")
        verified.append("quote (header and TD report) signed by the attestation key")
        qe_status = _qe_status(parsed.qe_report, identity)
        verified.append(f"QE matches Intel's TD QE identity (QE TCB: {qe_status[0]})")
        module = _module_status(parsed.body, info)
        platform = _platform_status(parsed.body, info, pck)
        verified.append(f"platform TCB level for FMSPC {pck['fmspc']} (PCESVN {pck['pceSvn']}, "
                        f"TEE_TCB_SVN {parsed.body[:16].hex()}): {platform[0]}")
        if module is not None:
            verified.append(f"TDX module identity and TCB level: {module[0]}")
        status, advisories = _worst(platform, qe_status, *([module] if module else []))
        if status == "Revoked":
            raise _FailError("tcb", "TCB status: Revoked")
    except _FailError as exc:
        return fail(exc.failure, exc.reason)
    except (ValueError, KeyError, TypeError, IndexError, InputError) as exc:
        return fail("collateral", f"TDX collateral: malformed ({exc!r})")
    fields["fmspc"] = pck["fmspc"]
    # Intel raises it at each TCB recovery: an older TCB info, still inside its window,
    # judges the platform by the levels before the recovery (reference values can ask
    # for a minimum, docs/attestation.md)
    numbers = [n for n in (info.get("tcbEvaluationDataNumber"),
                           identity.get("tcbEvaluationDataNumber")) if type(n) is int]
    if numbers:
        fields["tcbEvaluationDataNumber"] = min(numbers)
    fields["debug"] = bool(parsed.body[120] & 0x01)
    if fields["debug"]:
        not_verified.append("confidentiality: the TD is debuggable (TD_ATTRIBUTES.DEBUG), "
                            "its memory is open to the host")
    result = {"root": label, "as_of": as_of, "tcb_status": status, "advisory_ids": advisories,
              "claims": fields, "not_verified": not_verified}
    if expected_report_data is not None:
        if parsed.body[520:584] != expected_report_data:
            return EvidenceVerdict(
                status="failed", failure="binding mismatch", verified=verified,
                reason=f"binding mismatch: the quote verifies up to the {label}, but its "
                       f"report data {parsed.body[520:536].hex()}... is not this job's "
                       f"binding {expected_report_data[:16].hex()}... (evidence for another "
                       "job, node or nonce)", **result)  # type: ignore[arg-type]
        verified.append("report data is this job's binding (nonce, job, node)")
    return EvidenceVerdict(status="verified", verified=verified,
                           **result)  # type: ignore[arg-type]
