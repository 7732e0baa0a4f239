"""Evidence answering a nonce the coordinator never issued does not count at verify time.

The nonce is what makes hardware evidence fresh: the coordinator issues one to a node,
the node's quote or report binds it (with the job and the node), and evidence made
before the nonce existed cannot bind it. The coordinator refuses evidence whose nonce it
did not issue to that node ("nonce: expected one issued to node ..."), but recorded it
anyway -- the blob *and the node's nonce* -- and ``verify --require-attestation``
re-appraises every record from its blob and recorded nonce without trusting (so
without reading) the coordinator's verdict. A node could thus bind evidence to a nonce
of its own choosing: collected at any earlier time (before the machine was
compromised, for a job id known in advance, or from an earlier run of the same job)
and replayed, it counted as this job's evidence.

A synthetic GPU (:class:`support.nvidia_pki.Gpu`) stands in for NVIDIA's, its roots
pinned, as in ``test_nvidia_missing_collateral_counts_nothing.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest import _roots as roots
from slsa_dist.attest._binding import report_data
from slsa_dist.attest._nvidia_spdm import SPDM_FORMAT
from slsa_dist.attest._registry import verify_evidence
from slsa_dist.cli import main as cli_main
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._attestation import require_attestation
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._result import VerificationFailed

from support.nvidia_pki import Ca, Gpu
from support.sim import T0, Cluster, done

WINDOW = {"this": T0 - dt.timedelta(days=1),
          "nxt": max(T0, dt.datetime.now(dt.timezone.utc)) + dt.timedelta(days=7)}


def _bundle(folder: Path, gpu: Gpu, ca: Ca, *, issued: bool) -> tuple[Path, Path]:
    """A signed 1-rank job whose node sent its GPU's evidence bound to the nonce the
    coordinator issued (``issued``) or to one of its own."""
    cluster = Cluster(world_size=1, job_id="job-1", evidence_verifier=verify_evidence)
    sender = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    if not issued:
        nonce = bytes(range(32))  # the node's own: its evidence made whenever it liked
    answers = [*gpu.answers(**WINDOW), ca.answer(ca.leaf, ca.ca, ca.ca_key, **WINDOW),
               ca.answer(ca.ca, ca.root, ca.root_key, **WINDOW)]
    entry = {"report": gpu.report(report_data(nonce, "job-1", "node-0")).hex(),
             "certChain": gpu.chain_pem().decode(),
             "ocsp": [base64.b64encode(a).decode() for a in answers],
             "rims": {c: base64.b64encode(rim).decode() for c, rim in ca.rims_for(gpu).items()}}
    blob = json.dumps({"format": SPDM_FORMAT, "gpus": [entry]}).encode()
    sender.report(pb.Event(evidence=pb.Evidence(kind="nvidia-cc", format=SPDM_FORMAT,
                                                blob=blob, nonce=nonce)))
    cluster.rank(0, node="node-0").report(done())
    cluster.state.finalize("job-1", "request", cluster.tick())
    signer = Signer.generate()
    folder.mkdir()
    path = write_bundle(folder / "job.intoto.jsonl",
                        [sign_statement(cluster.statement(), [signer])])
    public = folder / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    return path, public


@pytest.mark.parametrize("kind", ["nvidia-cc", "any"])
def test_evidence_for_a_nonce_never_issued_does_not_count(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], kind: str) -> None:
    gpu, ca = Gpu(), Ca()
    monkeypatch.setattr(roots, "NVIDIA_DEVICE_ROOT", gpu.pem())
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())

    def verify(path: Path, public: Path) -> int:
        return cli_main(["verify", str(path), "--key", str(public),
                         "--require-attestation", kind])

    # the control: the same evidence bound to the issued nonce counts
    assert verify(*_bundle(tmp_path / "issued", gpu, ca, issued=True)) == 0, \
        capsys.readouterr().out
    capsys.readouterr()
    path, public = _bundle(tmp_path / "own", gpu, ca, issued=False)
    code = verify(path, public)
    out = capsys.readouterr().out
    # the job is incomplete (the coordinator's refusal is listed as failed evidence)...
    assert code == 1, out
    assert "FAIL  completeness: failed evidence: node-0: nvidia-cc: nonce: expected one " \
           "issued to node 'node-0'" in out
    # ...and the attestation requirement must not count the refused evidence either (a
    # policy of Attestation alone, through the library, has no completeness rule)
    assert f"FAIL  attestation {kind}" in out, out
    with pytest.raises(VerificationFailed) as failed:  # incomplete, as above
        verify_bundle(path, keys=[load_verifier(public)])
    provenance = failed.value.result.provenance
    assert provenance is not None
    check = require_attestation(provenance, kind)
    assert not check.ok, check.detail
    assert "nonce" in check.detail
