"""A node that leaves out its GPUs' RIMs or an OCSP answer gets nothing counted.

nvidia-cc evidence (``nvidia-spdm/v1``) carries, per GPU, the signed SPDM report, its
certificate chain, the driver and VBIOS RIMs and OCSP answers. A verdict was
``verified`` -- and ``verify --require-attestation nvidia-cc`` passed -- when the RIMs or
some answer were missing: they were only listed as not verified. A compromised node
could drop the RIMs (whose golden values its measurements would not match) or the
answer that says its GPU certificate is revoked, and still be counted. Such evidence is
now ``unverified``, counted by no requirement, naming what is missing (NVIDIA's own
verifier refuses missing OCSP answers by default).

The GPU is synthetic (:class:`support.nvidia_pki.Gpu`): no one can sign OCSP answers for
NVIDIA's real chain, so its device root and a test RIM root are pinned in place of
NVIDIA's. With everything carried it satisfies the requirement (the control); each
piece left out, in an otherwise identical signed bundle, fails it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
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

from support.nvidia_pki import Ca, Gpu
from support.sim import T0, Cluster, done

# verify judges the evidence as of the job's time (T0 + a few seconds), the simulated
# coordinator as of now: the answers are current at both
WINDOW = {"this": T0 - dt.timedelta(days=1),
          "nxt": max(T0, dt.datetime.now(dt.timezone.utc)) + dt.timedelta(days=7)}


@dataclass
class Node:
    gpu: Gpu
    ca: Ca
    rims: dict[str, bytes]
    answers: dict[str, bytes]  # by the subject of the certificate each answers for


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Node:
    gpu, ca = Gpu(), Ca()
    monkeypatch.setattr(roots, "NVIDIA_DEVICE_ROOT", gpu.pem())
    monkeypatch.setattr(roots, "NVIDIA_RIM_ROOT", ca.pem())
    rims = ca.rims_for(gpu)
    gpu_leaf, gpu_ica = gpu.answers(**WINDOW)
    answers = {"CN=test GPU attestation": gpu_leaf, "CN=test GPU provisioner ICA": gpu_ica,
               "CN=test RIM signer": ca.answer(ca.leaf, ca.ca, ca.ca_key, **WINDOW),
               "CN=test RIM CA": ca.answer(ca.ca, ca.root, ca.root_key, **WINDOW)}
    return Node(gpu, ca, rims, answers)


def bundle(folder: Path, node: Node, *, rims: bool = True, leave_out: str = "",
           excuse: str = "") -> tuple[Path, Path]:
    """A signed 1-rank job whose node answered its nonce with the synthetic GPU's evidence,
    without its RIMs (``rims=False``, with the node's ``excuse``) or without the answer for
    the certificate ``leave_out`` names."""
    cluster = Cluster(world_size=1, job_id="job-1", evidence_verifier=verify_evidence)
    sender = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    entry: dict[str, object] = {
        "report": node.gpu.report(report_data(nonce, "job-1", "node-0")).hex(),
        "certChain": node.gpu.chain_pem().decode(),
        "ocsp": [base64.b64encode(a).decode() for who, a in node.answers.items()
                 if who != leave_out]}
    if rims:
        entry["rims"] = {c: base64.b64encode(v).decode() for c, v in node.rims.items()}
    elif excuse:
        entry["rimsUnavailable"] = excuse
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


def verify(path: Path, public: Path) -> int:
    return cli_main(["verify", str(path), "--key", str(public),
                     "--require-attestation", "nvidia-cc"])


def test_complete_evidence_satisfies_the_requirement(node: Node, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """The control: the same bundle with everything carried counts."""
    assert verify(*bundle(tmp_path / "b", node)) == 0, capsys.readouterr().out
    assert "PASS  attestation nvidia-cc" in capsys.readouterr().out


@pytest.mark.parametrize(("left_out", "named"), [
    ({"rims": False}, "the measurements against NVIDIA's driver and VBIOS RIMs (no RIMs "
                      "carried)"),
    ({"rims": False, "excuse": "RIM service unreachable"},
     "RIMs (the node: RIM service unreachable)"),
    ({"leave_out": "CN=test GPU attestation"},
     "GPU certificate chain: revocation of CN=test GPU attestation (no OCSP answer carried)"),
    ({"leave_out": "CN=test GPU provisioner ICA"},
     "GPU certificate chain: revocation of CN=test GPU provisioner ICA"),
    ({"leave_out": "CN=test RIM signer"},
     "driver RIM signing chain: revocation of CN=test RIM signer"),
], ids=["no-rims", "no-rims-with-an-excuse", "no-leaf-answer", "no-ica-answer",
        "no-rim-signer-answer"])
def test_evidence_missing_collateral_does_not_satisfy_the_requirement(
        node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        left_out: dict[str, object], named: str) -> None:
    path, public = bundle(tmp_path / "b", node, **left_out)  # type: ignore[arg-type]
    assert verify(path, public) == 1
    out = capsys.readouterr().out
    assert "FAIL  attestation nvidia-cc" in out
    assert "unverified: GPU 0: not counted: expected RIMs and OCSP answers" in out
    assert named in out
    provenance = verify_bundle(path, keys=[load_verifier(public)]).provenance
    check = require_attestation(provenance, "nvidia-cc")
    assert not check.ok
    assert named in check.detail
    assert not require_attestation(provenance, "any").ok
