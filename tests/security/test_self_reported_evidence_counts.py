"""Issue 25 F8: a node's own report of an outcome is not evidence.

NVIDIA's local verifier signs its token with a fixed HS256 key, so its outcome
is whatever the node says; ``nvidia.verify`` still called ``{"passed": true}``
(16 bytes, bound to no nonce, job or node) "verified", and
``--require-attestation any`` (or ``nvidia-cc``) passed on it. Only evidence
verified cryptographically counts now; a self-reported outcome is shown as
"reported by node X" and never satisfies a requirement.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest._registry import verify_evidence
from slsa_dist.cli import main as cli_main
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._attestation import require_attestation
from slsa_dist.verify._bundle import verify_bundle

from support.sim import Cluster, done

BLOB = b'{"passed": true}'


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Path]:
    """A signed 1-rank job whose one node answered its nonce with ``{"passed": true}``."""
    assert len(BLOB) == 16
    cluster = Cluster(world_size=1, job_id="job-1", evidence_verifier=verify_evidence)
    node = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    node.report(pb.Event(evidence=pb.Evidence(kind="nvidia-cc", format="nvidia-cc/v1",
                                              blob=BLOB, nonce=nonce)))
    cluster.rank(0, node="node-0").report(done())
    cluster.state.finalize("job-1", "request", cluster.tick())
    signer = Signer.generate()
    path = write_bundle(tmp_path / "job.intoto.jsonl",
                        [sign_statement(cluster.statement(), [signer])])
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    return path, public


@pytest.mark.parametrize("kind", ["any", "nvidia-cc"])
def test_a_self_reported_pass_does_not_satisfy_the_requirement(
        bundle: tuple[Path, Path], kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    path, public = bundle
    assert cli_main(["verify", str(path), "--key", str(public),
                     "--require-attestation", kind]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  attestation {kind}" in out
    assert "reported by node node-0" in out


def test_inspect_shows_it_as_reported_by_the_node(bundle: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path, public = bundle
    assert cli_main(["inspect", str(path), "--key", str(public)]) == 0
    out = capsys.readouterr().out
    assert "nvidia-cc=reported by node node-0" in out
    assert "nvidia-cc=verified" not in out


def test_the_coordinator_records_it_as_reported_not_verified(
        bundle: tuple[Path, Path]) -> None:
    path, public = bundle
    provenance = verify_bundle(path, keys=[load_verifier(public)]).provenance
    (node,) = provenance.node_records()
    (evidence,) = node.evidence
    assert evidence.status == "reported"
    assert evidence.sha256 == hashlib.sha256(BLOB).hexdigest()
    check = require_attestation(provenance, "any")
    assert not check.ok
