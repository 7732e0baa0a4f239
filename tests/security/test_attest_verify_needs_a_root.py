"""``slsa-dist attest verify --kind tpm`` exited 0 for a quote no TPM made.

A TPM quote whose AK was never tied to a TPM (no ``--ek-roots`` with the
coordinator's ``--challenge``) proves only that *some* key signed it: anyone makes
the key, the TPMS_ATTEST and the PCR values in software. ``verify
--require-attestation`` counts such a quote for nothing, but ``attest verify``
printed ``status: verified`` and exited 0, with ``--reference-values`` holding the
golden PCRs too. It exits 0 now only for evidence verified up to a pinned root.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from slsa_dist.attest._binding import report_data
from slsa_dist.cli import main as cli_main

NONCE, JOB, NODE = bytes(range(32)), "job-1", "node-0"
GOLDEN = {str(i): hashlib.sha256(f"golden PCR {i}".encode()).hexdigest() for i in range(8)}


def _software_quote() -> bytes:
    """A TPM evidence blob made without a TPM: PCRs 0-7 at the golden values, bound to
    this job's nonce and node, signed by a P-256 key made here."""
    ak = ec.generate_private_key(ec.SECP256R1())
    name = b"\x00\x0b" + bytes(32)
    extra = report_data(NONCE, JOB, NODE)
    digest = hashlib.sha256(b"".join(bytes.fromhex(GOLDEN[str(i)]) for i in range(8))).digest()
    attest = struct.pack(">IH", 0xFF544347, 0x8018) + struct.pack(">H", len(name)) + name
    attest += struct.pack(">H", len(extra)) + extra + struct.pack(">QIIBQ", 1, 0, 0, 1, 0)
    attest += struct.pack(">IHB", 1, 0x000B, 3) + bytes([0xFF, 0, 0])
    attest += struct.pack(">H", 32) + digest
    r, s = decode_dss_signature(ak.sign(attest, ec.ECDSA(hashes.SHA256())))
    signature = struct.pack(">HHH", 0x0018, 0x000B, 32) + r.to_bytes(32, "big") \
        + struct.pack(">H", 32) + s.to_bytes(32, "big")
    pem = ak.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"format": "tpm2-quote/v1", "attest": base64.b64encode(attest).decode(),
                       "signature": base64.b64encode(signature).decode(),
                       "akPublicPem": pem.decode(), "akEnrolled": True,
                       "pcrs": {"sha256": GOLDEN}}).encode()


@pytest.mark.parametrize("reference", [False, True])
def test_a_quote_no_root_vouches_for_does_not_exit_0(
        tmp_path: Path, reference: bool, capsys: pytest.CaptureFixture[str]) -> None:
    quote = tmp_path / "quote.json"
    quote.write_bytes(_software_quote())
    values = tmp_path / "reference.json"
    values.write_text(json.dumps({"version": 1, "tpm": {"pcrs": GOLDEN}}))
    code = cli_main(["attest", "verify", str(quote), "--kind", "tpm", "--nonce", NONCE.hex(),
                     "--job", JOB, "--node", NODE,
                     *(["--reference-values", str(values)] if reference else [])])
    out = capsys.readouterr().out
    assert "status: verified" in out  # the signature, digest and binding hold
    assert code == 1
    assert "not counted: verified up to no pinned root" in out
