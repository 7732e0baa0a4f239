"""One TPM answers for two nodes by presenting two certificates of its one EK.

``--require-attestation tpm --ek-roots`` refuses two nodes whose counted quotes came
from the same EK (a node quoting through another machine's TPM, docs/threat-model.md).
It told EKs apart by the SHA-256 of the EK *certificate*: a second certificate the EK
CA issued for the same key (a re-issued certificate, the copy a vendor's online EK
service hands out besides the one in NV) made the one TPM two EKs, and both nodes'
quotes counted. The EK is its public key: the check compares keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from slsa_dist.attest import _credential as credential
from slsa_dist.attest import _tpm as tpm
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import EvidenceRecord
from slsa_dist.verify._attestation import require_attestation

from conftest import need
from support import swtpm
from support.attest import with_evidence

pytestmark = [pytest.mark.tpm, pytest.mark.timeout(180)]

JOB = "job-1"


def _reissue(ek: bytes, ca: swtpm.EkCa) -> bytes:
    """A second certificate of the EK's key, issued by the EK CA that issued the first
    (a new serial number, the same subject, key and extensions)."""
    first = x509.load_der_x509_certificate(ek)
    signer = serialization.load_pem_private_key(
        (ca.chain.parent / "signkey.pem").read_bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(ca.chain.read_bytes())
    builder = (x509.CertificateBuilder().subject_name(first.subject)
               .issuer_name(issuer.subject).public_key(first.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(first.not_valid_before_utc)
               .not_valid_after(first.not_valid_after_utc))
    for extension in first.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    second = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    return second.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def one_tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[swtpm.EkCa, str]]:
    need(swtpm.available() is None, f"software TPM: {swtpm.available()}")
    try:
        ca = swtpm.provision(tmp_path_factory.mktemp("tpm"))
    except Exception as exc:  # no swtpm_setup here: skipped, said why
        need(False, f"swtpm_setup: {exc}")
        raise
    with swtpm.swtpm(ca.state) as tcti:
        yield ca, tcti


def _evidence(node: str, nonce: bytes, ek: bytes, ak_public: bytes,
              monkeypatch: pytest.MonkeyPatch) -> EvidenceRecord:
    """What the node sends: its quote for ``node``, answering the coordinator's challenge
    to the EK certificate ``ek`` it presented (the node writes ``ekCertificate``)."""
    record, blob = credential.challenge(ek, ak_public)
    evidence = json.loads(tpm.collect(nonce, JOB, node, challenge=blob))
    evidence["ekCertificate"] = base64.b64encode(ek).decode()
    raw = json.dumps(evidence, sort_keys=True).encode()
    return EvidenceRecord(kind="tpm", status="verified", blob=base64.b64encode(raw).decode(),
                          nonce=nonce.hex(), size=len(raw), tpm_challenge=json.loads(record))


def _job(evidence: dict[str, EvidenceRecord]) -> Provenance:
    return with_evidence({node: (record,) for node, record in evidence.items()},
                         invocation_id=f"{JOB}/0c2f5a4e-8d1b-4f3a-9b7e-1a2b3c4d5e6f")


@pytest.mark.parametrize("second", ["the same certificate", "a re-issued certificate"])
def test_one_tpm_presenting_two_certificates_of_its_ek_does_not_count_for_two_nodes(
        one_tpm: tuple[swtpm.EkCa, str], monkeypatch: pytest.MonkeyPatch, second: str) -> None:
    ca, tcti = one_tpm
    monkeypatch.setenv("TPM2TOOLS_TCTI", tcti)
    monkeypatch.setenv(tpm.EK_CHAIN_ENV, str(ca.chain))
    tpm.enroll()
    identity = tpm.identity()
    assert identity is not None
    ek, ak_public = identity
    again = _reissue(ek, ca) if second == "a re-issued certificate" else ek
    assert (again != ek) is (second != "the same certificate")
    assert credential.ek_public_pem(again) == credential.ek_public_pem(ek)
    provenance = _job({"node-0": _evidence("node-0", bytes(range(32)), ek, ak_public,
                                           monkeypatch),
                       "node-1": _evidence("node-1", bytes(range(1, 33)), again, ak_public,
                                           monkeypatch)})
    root = Path(ca.root).read_bytes()
    alone = require_attestation(_job({"node-0": _evidence(
        "node-0", bytes(range(32)), ek, ak_public, monkeypatch)}), "tpm", ek_roots=(root,))
    assert alone.ok, alone.detail  # each quote is genuine and activated on its own
    check = require_attestation(provenance, "tpm", ek_roots=(root,))
    assert not check.ok, check.detail
    assert "also answered for" in check.detail
