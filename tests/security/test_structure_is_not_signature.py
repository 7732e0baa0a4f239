"""Item 16: a zero-filled TDX quote or SNP report with the right binding is not evidence.

It was recorded as ``verified``. Without a verified signature chain it is
``structure-only``, and ``--require-attestation`` does not count it.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from slsa_dist.attest._binding import report_data
from slsa_dist.attest._registry import verify_evidence
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_NODE, EvidenceRecord, NodeRecord
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor
from slsa_dist.verify._attestation import require_attestation

NONCE = b"\x07" * 32


def _evidence(provider: str, out: bytes) -> bytes:
    import base64
    import json

    return json.dumps({"format": "configfs-tsm", "provider": provider, "generation": "1",
                       "outblob": base64.b64encode(out).decode()}).encode()


def forged_tdx() -> bytes:
    header = struct.pack("<HHI", 4, 2, 0x81) + b"\0" * 40
    body = bytearray(584)  # every measurement zero
    body[520:584] = report_data(NONCE, "job-1", "node-0", size=64)
    return _evidence("tdx_guest", header + bytes(body) + struct.pack("<I", 0))


def forged_snp() -> bytes:
    report = bytearray(0x4A0)
    struct.pack_into("<IIQ", report, 0, 2, 1, 0x30000)
    struct.pack_into("<II", report, 0x30, 0, 1)
    report[0x50:0x90] = report_data(NONCE, "job-1", "node-0", size=64)
    return _evidence("sev_guest", bytes(report))


def test_a_zero_filled_tdx_quote_is_structure_only() -> None:
    verdict = verify_evidence("tdx", forged_tdx(), NONCE, "job-1", "node-0")
    assert verdict.status == "structure-only"


def test_an_unsigned_snp_report_is_structure_only() -> None:
    verdict = verify_evidence("snp", forged_snp(), NONCE, "job-1", "node-0")
    assert verdict.status == "structure-only"


def test_require_attestation_does_not_count_structure_only_evidence() -> None:
    blob = forged_tdx()
    builder = ProvenanceBuilder(invocation_id="job-1")
    builder.add_subject(ResourceDescriptor(name="m", digest={"sha256": hashlib.sha256().hexdigest()}))
    evidence = EvidenceRecord(kind="tdx", status="verified",  # what an older coordinator wrote
                              blob=base64.b64encode(blob).decode(), nonce=NONCE.hex(),
                              size=len(blob))
    builder.add_byproduct(record_descriptor(name="node/node-0", media_type=MEDIA_NODE, record=(
        NodeRecord(node="node-0", evidence=(evidence,)).to_dict())))
    check = require_attestation(Provenance.from_statement(builder.build()), "tdx")
    assert not check.ok
    assert "structure-only" in check.detail
