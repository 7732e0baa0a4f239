"""``--tcb-status`` that nothing checks: verify said "verified" anyway.

``--tcb-status STATUS`` narrows the TDX TCB statuses a policy accepts. Given with no
attestation requirement, or with one of a kind that has no TCB status (``tpm``,
``snp``, ``nvidia-cc``), it checked nothing and the bundle verified: a requirement the
verifier asked for passed unchecked. Refused now, as ``--trusted-aks`` without ``tpm``
is; and TDX evidence without a TCB status does not meet one.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.cli import main as cli_main
from slsa_dist.errors import InputError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import MEDIA_NODE, EvidenceRecord, NodeRecord
from slsa_dist.model._statement import ProvenanceBuilder, record_descriptor
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._attestation import require_attestation
from slsa_dist.verify._policy import Attestation

from support.sim import Cluster, signed


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Path]:
    """A complete, signed 2-rank job (no hardware evidence) and its public key."""
    cluster = Cluster(world_size=2)
    cluster.run_all()
    signer = Signer.generate()
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    return signed(cluster, tmp_path / "out", signer), public


@pytest.mark.parametrize("requirement", [[], ["--require-attestation", "snp"],
                                         ["--require-attestation", "nvidia-cc"]])
def test_a_tcb_status_nothing_can_check_is_refused(
        bundle: tuple[Path, Path], requirement: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    path, public = bundle
    assert cli_main(["verify", str(path), "--key", str(public), *requirement]) in (0, 1)
    capsys.readouterr()
    assert cli_main(["verify", str(path), "--key", str(public), *requirement,
                     "--tcb-status", "UpToDate"]) == 2
    assert "--tcb-status: expected it with --require-attestation tdx or any" in \
        capsys.readouterr().err


def test_the_policy_refuses_a_tcb_status_for_a_kind_without_one() -> None:
    with pytest.raises(InputError, match="TCB statuses: expected them with a tdx or any"):
        Attestation("snp", tcb_statuses=frozenset({"UpToDate"}))


def test_tdx_evidence_without_a_tcb_status_does_not_meet_one() -> None:
    cluster = Cluster(world_size=1)
    cluster.run_all()
    provenance = cluster.finalize()
    node = provenance.rank_records()[0].attempts[0].node
    record = EvidenceRecord(kind="tdx", status="verified", blob=base64.b64encode(b"q").decode(),
                            nonce="00", size=1)
    no_status = EvidenceVerdict(status="verified", root="Intel SGX Root CA (sha256:00)")

    def appraise(evidence: EvidenceRecord, job: str, node_id: str) -> EvidenceVerdict:
        return no_status

    builder = ProvenanceBuilder(invocation_id=str(provenance.invocation_id))
    for subject in provenance.statement.subjects:
        builder.add_subject(subject)
    for byproduct in provenance.byproducts:
        builder.add_byproduct(byproduct)
    builder.add_byproduct(record_descriptor(name=f"node/{node}", media_type=MEDIA_NODE,
                                            record=NodeRecord(node=node,
                                                              evidence=(record,)).to_dict()))
    with_node = Provenance.from_statement(builder.build())
    assert require_attestation(with_node, "tdx", appraise=appraise).ok
    check = require_attestation(with_node, "tdx", appraise=appraise,
                                tcb_statuses={"UpToDate"})
    assert not check.ok
    assert "carries no TCB status" in check.detail
    up_to_date = replace(no_status, tcb_status="UpToDate")
    assert require_attestation(with_node, "tdx", appraise=lambda e, j, n: up_to_date,
                               tcb_statuses={"UpToDate"}).ok
