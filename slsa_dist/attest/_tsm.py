"""Intel TDX and AMD SEV-SNP reports through the Linux configfs-tsm interface.

Collection (inside a confidential VM, kernel >= 6.7): create a report entry
under ``/sys/kernel/config/tsm/report``, write the 64-byte binding of
:func:`slsa_dist.attest._binding.report_data` to ``inblob``, read ``outblob``
(the TDX quote or the SNP attestation report) and ``provider``.

Collateral (Intel's TCB info, QE identity and CRLs for TDX; the VCEK and its chain for
SNP, and AMD's CRL, ``crl``) is fetched on the node right after the report and carried
in the evidence, so that ``verify`` is offline (:mod:`._collateral`); where it could
not be fetched, the evidence says why (``collateralMissing``, ``crlMissing``).

Verification (on the coordinator, and again by ``verify``): with collateral (Intel's
TCB info, QE identity and CRLs for TDX; the VCEK, and optionally the ASK, for SNP),
carried in the evidence or supplied by the verifier, the report is verified up to
the vendor's pinned root, as of the appraisal's time (:mod:`._tdx`, :mod:`._snp`);
an SNP report without AMD's CRL is ``unverified``, its reason naming the CRL.
Without collateral only the structure and the binding are checked, and the verdict
is ``structure-only``, which no requirement counts. Not verified, and recorded as
such: the measurements against reference values.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

from slsa_dist.attest._binding import report_data
from slsa_dist.attest._verdict import Appraisal, EvidenceVerdict
from slsa_dist.errors import InputError

__all__ = ["FORMAT", "TSM_ROOT", "TsmAttester", "collect", "parse_snp", "parse_tdx",
           "report_kind", "verify"]

FORMAT = "configfs-tsm/v1"
TSM_ROOT = Path("/sys/kernel/config/tsm/report")

# TDX DCAP quote v4: 48-byte header, then the 584-byte TD report body.
_TDX_HEADER = 48
_TDX_BODY = 584
_TDX_TEE_TYPE = 0x81
_TDX_FIELDS = {  # name: (offset in the body, length)
    "teeTcbSvn": (0, 16), "mrSeam": (16, 48), "mrTd": (136, 48), "mrConfigId": (184, 48),
    "mrOwner": (232, 48), "rtmr0": (328, 48), "rtmr1": (376, 48), "rtmr2": (424, 48),
    "rtmr3": (472, 48), "reportData": (520, 64),
}
# SEV-SNP ATTESTATION_REPORT (1184 bytes), signed over bytes [0, 0x2A0).
_SNP_SIZE = 0x4A0
_SNP_SIGNED = 0x2A0
_SNP_FIELDS = {"reportData": (0x50, 64), "measurement": (0x90, 48), "hostData": (0xC0, 32),
               "chipId": (0x1A0, 64)}


def parse_tdx(quote: bytes) -> dict[str, Any]:
    """Header and TD report fields of a TDX quote v4. Raises :class:`InputError`."""
    if len(quote) < _TDX_HEADER + _TDX_BODY:
        raise InputError(f"TDX quote: expected at least {_TDX_HEADER + _TDX_BODY} bytes, "
                         f"found {len(quote)}")
    version, key_type, tee_type = struct.unpack_from("<HHI", quote, 0)
    if version not in (4, 5):
        raise InputError(f"TDX quote version: expected 4 or 5, found {version}")
    if tee_type != _TDX_TEE_TYPE:
        raise InputError(f"TDX quote tee_type: expected {_TDX_TEE_TYPE:#x}, found {tee_type:#x}")
    start = _TDX_HEADER + (6 if version == 5 else 0)  # v5: a body descriptor first
    body = quote[start:start + _TDX_BODY]
    if len(body) != _TDX_BODY:
        raise InputError(f"TDX quote: expected a {_TDX_BODY}-byte TD report body")
    fields: dict[str, Any] = {name: body[o:o + n].hex() for name, (o, n) in _TDX_FIELDS.items()}
    fields["attestationKeyType"] = key_type
    return fields


def parse_snp(report: bytes) -> dict[str, Any]:
    """Fields of an SNP attestation report. Raises :class:`InputError`."""
    if len(report) != _SNP_SIZE:
        raise InputError(f"SNP report: expected {_SNP_SIZE} bytes, found {len(report)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", report, 0)
    vmpl, signature_algorithm = struct.unpack_from("<II", report, 0x30)
    fields: dict[str, Any] = {name: report[o:o + n].hex() for name, (o, n) in _SNP_FIELDS.items()}
    fields.update(version=version, guestSvn=guest_svn, policy=f"{policy:#x}", vmpl=vmpl,
                  signatureAlgorithm=signature_algorithm)
    return fields


def report_kind(blob: bytes) -> str:
    """``tdx`` or ``snp``: which TEE wrote a configfs-tsm evidence blob (its provider).

    Raises:
        InputError: the blob is not a JSON object, or its provider is neither.
    """
    try:
        provider = str(json.loads(blob)["provider"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"TSM evidence: expected a JSON object with a provider, found "
                         f"{exc!r}") from None
    if provider.startswith("tdx"):
        return "tdx"
    if provider.startswith("sev"):
        return "snp"
    raise InputError(f"provider: expected tdx_guest or sev_guest, found {provider!r}")


def _b64(value: Any) -> bytes | None:
    return base64.b64decode(value, validate=True) if value else None


def verify(blob: bytes, nonce: bytes, job_id: str, node_id: str,
           *, vcek_pem: bytes | None = None,
           appraisal: Appraisal | None = None) -> EvidenceVerdict:
    """Check a configfs-tsm evidence blob; never raises on bad evidence.

    With collateral (the verifier's own in ``appraisal``/``vcek_pem``, else what the
    evidence carries: ``collateral`` for TDX, the ``auxblob`` certificate table or
    ``vcekPem`` for SNP) the report is verified up to the vendor's pinned root
    (:mod:`._tdx`, :mod:`._snp`): collateral is checked, never trusted, so who
    supplied it does not matter. Without any, only its structure and binding are
    checked: ``structure-only``, which no requirement counts.
    """
    appraisal = appraisal or Appraisal()
    try:
        kind = report_kind(blob)
        evidence = json.loads(blob)
        out = base64.b64decode(evidence["outblob"], validate=True)
        fields = parse_tdx(out) if kind == "tdx" else parse_snp(out)
        carried = _b64(evidence.get("collateral"))
        aux = _b64(evidence.get("auxblob"))
    except (ValueError, KeyError, TypeError, InputError) as exc:
        return EvidenceVerdict(status="failed", failure="malformed",
                               reason=f"malformed TSM evidence: {exc}")
    expected = (report_data(nonce, job_id, node_id, size=64)
                if appraisal.check_binding else None)
    at = appraisal.when()
    if kind == "tdx":
        collateral = appraisal.collateral.get("tdx") or carried
        if collateral:
            from slsa_dist.attest._tdx import verify_quote

            return verify_quote(out, collateral, at, expected)
    else:
        from slsa_dist.attest._snp import certificate_table, verify_report

        supplied = vcek_pem or appraisal.collateral.get("snp")
        table = certificate_table(aux) if aux else {}
        node_vcek = carried or (evidence.get("vcekPem") or "").encode()
        if table.get("vlek") and carried:  # the host's VLEK, its ASVK fetched from KDS
            try:
                table = {**table, "ask": (_pem(table["ask"]) if table.get("ask") else b"")
                         + _pem(carried)}
            except InputError as exc:
                return EvidenceVerdict(status="failed", failure="collateral", claims=fields,
                                       reason=f"SNP collateral: the VLEK's chain: {exc}")
        if supplied or table.get("vcek") or table.get("vlek") or node_vcek:
            source: bytes | dict[str, bytes] = supplied or (
                table if table.get("vcek") or table.get("vlek") else node_vcek)
            try:
                crl = _b64(evidence.get("crl"))
            except ValueError as exc:
                return EvidenceVerdict(status="failed", failure="malformed", claims=fields,
                                       reason=f"malformed TSM evidence: crl: {exc}")
            return verify_report(out, source, at, expected, crl=crl,
                                 crl_missing=str(evidence.get("crlMissing") or ""))
    missing = str(evidence.get("collateralMissing") or "")[:300]
    why = f"; the node could not fetch it: {missing}" if missing else ""
    not_verified = (["quote signature, PCK certificate chain and TCB status (no Intel "
                     f"collateral carried or supplied{why})",
                     "measurements against reference values (none configured)"]
                    if kind == "tdx" else
                    ["report signature and VCEK chain to AMD's root (no VCEK carried or "
                     f"supplied{why})",
                     "measurement against reference values (none configured)"])
    if expected is not None and fields["reportData"] != expected.hex():
        return EvidenceVerdict(
            status="failed", failure="binding mismatch", not_verified=not_verified,
            claims=fields,
            reason=f"nonce binding: expected report data {expected.hex()[:16]}... for this "
                   f"nonce, job and node, found {fields['reportData'][:16]}...")
    # Structure and binding alone prove nothing: anyone can write a zero-filled report
    # with the right report data. "structure-only" is counted by no requirement.
    return EvidenceVerdict(status="structure-only", not_verified=not_verified,
                           claims=fields, as_of=at.isoformat(),
                           verified=["report structure", "nonce, job and node binding"]
                           if expected is not None else ["report structure"])


def _pem(certs: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    from slsa_dist.attest._pki import load_certificates

    return b"".join(c.public_bytes(Encoding.PEM) for c in load_certificates(certs))


def available(root: Path | None = None) -> str | None:
    root = root or TSM_ROOT
    if not root.is_dir():
        return f"configfs-tsm not available ({root} absent: not a TDX/SEV-SNP guest)"
    return None


def collect(nonce: bytes, job_id: str, node_id: str, *, root: Path | None = None,
            fetch_collateral: bool = True) -> bytes:
    """Produce a report through configfs-tsm; returns the evidence blob (JSON).

    With ``fetch_collateral`` the collateral that verifies it is fetched now and
    carried in the evidence (:mod:`._collateral`), or why it could not be.
    """
    root = root or TSM_ROOT
    why = available(root)
    if why is not None:
        raise InputError(why)
    entry = root / f"slsa-dist-{uuid.uuid4().hex[:12]}"
    entry.mkdir()
    try:
        (entry / "inblob").write_bytes(report_data(nonce, job_id, node_id, size=64))
        evidence: dict[str, Any] = {"format": FORMAT,
                    "provider": (entry / "provider").read_text().strip(),
                    "generation": (entry / "generation").read_text().strip(),
                    "outblob": base64.b64encode((entry / "outblob").read_bytes()).decode()}
        aux = entry / "auxblob"
        if aux.exists():
            evidence["auxblob"] = base64.b64encode(aux.read_bytes()).decode()
    finally:
        os.rmdir(entry)
    if fetch_collateral:
        from slsa_dist.attest._collateral import attach

        out = base64.b64decode(evidence["outblob"])
        attach("tdx" if str(evidence["provider"]).startswith("tdx") else "snp", out, evidence)
    return json.dumps(evidence, sort_keys=True).encode()


class TsmAttester:
    """TDX and SEV-SNP reports through the kernel's configfs-tsm interface
    (:class:`~slsa_dist.attest.Attester`); the report says which TEE wrote it."""

    name = "tsm"
    kinds = ("tdx", "snp")
    proves = ("TDX: the quote is signed through Intel's QE and PCK chain up to the pinned "
              "Intel SGX Root CA, with its TCB status; SNP: the report is signed by a VCEK "
              "(or VLEK) chained to AMD's pinned ARK of its product; both answer this "
              "job's nonce for this node (without collateral: structure only)")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str, *,
                challenge: bytes = b"") -> tuple[str, bytes]:
        del challenge  # the nonce is all this kind answers
        blob = collect(nonce, job_id, node_id)
        return report_kind(blob), blob

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str, *, appraisal: Appraisal | None = None) -> EvidenceVerdict:
        verdict = verify(blob, nonce, job_id, node_id, appraisal=appraisal)
        if verdict.status != "failed" or verdict.failure == "binding mismatch":
            found = report_kind(blob)
            if found != kind:
                return EvidenceVerdict(status="failed", failure="kind",
                                       reason=f"kind: claimed {kind!r}, found a {found!r} report")
        return verdict
