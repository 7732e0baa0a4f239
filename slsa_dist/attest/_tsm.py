"""Intel TDX and AMD SEV-SNP reports through the Linux configfs-tsm interface.

Collection (inside a confidential VM, kernel >= 6.7): create a report entry
under ``/sys/kernel/config/tsm/report``, write the 64-byte binding of
:func:`slsa_dist.attest._binding.report_data` to ``inblob``, read ``outblob``
(the TDX quote or the SNP attestation report) and ``provider``.

Verification (on the coordinator): parse the structure from the published
layouts (TDX DCAP quote v4 header and TD report body; SNP ATTESTATION_REPORT)
and check that its report data equals the expected binding. With an SNP
VCEK certificate supplied as offline collateral, the report's ECDSA P-384
signature is checked against it. Not verified, and recorded as such: the
TDX quote's signature and PCK chain (needs Intel collateral), the VCEK's chain
to AMD's root, and the measurements against reference values.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_pem_x509_certificate

from slsa_dist.attest._binding import report_data
from slsa_dist.attest._verdict import EvidenceVerdict
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
    if version != 4:
        raise InputError(f"TDX quote version: expected 4, found {version}")
    if tee_type != _TDX_TEE_TYPE:
        raise InputError(f"TDX quote tee_type: expected {_TDX_TEE_TYPE:#x}, found {tee_type:#x}")
    body = quote[_TDX_HEADER:_TDX_HEADER + _TDX_BODY]
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


def _snp_signature(report: bytes) -> bytes:
    """The report's ECDSA P-384 signature as DER (r and s are little-endian, 72 bytes)."""
    r = int.from_bytes(report[_SNP_SIGNED:_SNP_SIGNED + 72], "little")
    s = int.from_bytes(report[_SNP_SIGNED + 72:_SNP_SIGNED + 144], "little")
    return encode_dss_signature(r, s)


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


def verify(blob: bytes, nonce: bytes, job_id: str, node_id: str,
           *, vcek_pem: bytes | None = None) -> EvidenceVerdict:
    """Check a configfs-tsm evidence blob; never raises on bad evidence."""
    try:
        kind = report_kind(blob)
        evidence = json.loads(blob)
        out = base64.b64decode(evidence["outblob"], validate=True)
        fields = parse_tdx(out) if kind == "tdx" else parse_snp(out)
    except (ValueError, KeyError, TypeError, InputError) as exc:
        return EvidenceVerdict(status="failed", reason=f"malformed TSM evidence: {exc}")
    not_verified = (["quote signature and PCK certificate chain (needs Intel collateral)",
                     "measurements against reference values (none configured)"]
                    if kind == "tdx" else
                    ["VCEK certificate chain to AMD's root key",
                     "measurement against reference values (none configured)"])
    expected = report_data(nonce, job_id, node_id, size=64).hex()
    if fields["reportData"] != expected:
        return EvidenceVerdict(
            status="failed", not_verified=not_verified, claims=fields,
            reason=f"nonce binding: expected report data {expected[:16]}... for this "
                   f"nonce, job and node, found {fields['reportData'][:16]}...")
    verified = ["report structure", "nonce, job and node binding"]
    # The verifier's own VCEK (offline collateral) is evidence; one the node sent along
    # only shows the report matches the certificate the node chose, and is named so.
    from_node = vcek_pem is None and bool(evidence.get("vcekPem"))
    collateral = vcek_pem or (evidence.get("vcekPem") or "").encode() or None
    if kind == "snp" and collateral:
        key = load_pem_x509_certificate(collateral).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return EvidenceVerdict(status="failed", reason="VCEK: expected an ECDSA key")
        try:
            key.verify(_snp_signature(out), out[:_SNP_SIGNED], ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            return EvidenceVerdict(status="failed", not_verified=not_verified,
                                   claims=fields, reason="SNP report signature: not "
                                   "valid for the VCEK")
        verified.append("report signature by the node's VCEK certificate (sent with the "
                        "report)" if from_node else
                        "report signature by the VCEK certificate supplied to the verifier")
    elif kind == "snp":
        not_verified.insert(0, "report signature (no VCEK certificate supplied)")
    # Structure and binding alone prove nothing: anyone can write a zero-filled report
    # with the right report data. Only a signature by a key the verifier was given (an
    # SNP VCEK as offline collateral) makes it evidence; everything else is
    # "structure-only", which --require-attestation does not count.
    signed = kind == "snp" and vcek_pem is not None
    return EvidenceVerdict(status="verified" if signed else "structure-only",
                           verified=verified, not_verified=not_verified,
                           claims=fields)


def available(root: Path = TSM_ROOT) -> str | None:
    if not root.is_dir():
        return f"configfs-tsm not available ({root} absent: not a TDX/SEV-SNP guest)"
    return None


def collect(nonce: bytes, job_id: str, node_id: str, *, root: Path = TSM_ROOT) -> bytes:
    """Produce a report through configfs-tsm; returns the evidence blob (JSON)."""
    why = available(root)
    if why is not None:
        raise InputError(why)
    entry = root / f"slsa-dist-{uuid.uuid4().hex[:12]}"
    entry.mkdir()
    try:
        (entry / "inblob").write_bytes(report_data(nonce, job_id, node_id, size=64))
        evidence = {"format": FORMAT,
                    "provider": (entry / "provider").read_text().strip(),
                    "generation": (entry / "generation").read_text().strip(),
                    "outblob": base64.b64encode((entry / "outblob").read_bytes()).decode()}
        aux = entry / "auxblob"
        if aux.exists():
            evidence["auxblob"] = base64.b64encode(aux.read_bytes()).decode()
    finally:
        os.rmdir(entry)
    return json.dumps(evidence, sort_keys=True).encode()


class TsmAttester:
    """TDX and SEV-SNP reports through the kernel's configfs-tsm interface
    (:class:`~slsa_dist.attest.Attester`); the report says which TEE wrote it."""

    name = "tsm"
    kinds = ("tdx", "snp")
    proves = ("the report answers this job's nonce for this node (TDX: structure only; "
              "SNP: signed by the VCEK given)")

    def available(self) -> str | None:
        return available()

    def collect(self, nonce: bytes, job_id: str, node_id: str) -> tuple[str, bytes]:
        blob = collect(nonce, job_id, node_id)
        return report_kind(blob), blob

    def verify(self, kind: str, blob: bytes, nonce: bytes, job_id: str,
               node_id: str) -> EvidenceVerdict:
        verdict = verify(blob, nonce, job_id, node_id)
        if verdict.status in ("verified", "structure-only"):
            found = report_kind(blob)
            if found != kind:
                return EvidenceVerdict(status="failed",
                                       reason=f"kind: claimed {kind!r}, found a {found!r} report")
        return verdict
