"""Item 18: launchers hand out only what each party needs.

The Slurm script wrote the job CA key and every rank's key under the submit
directory, readable by the tenant; the Kubernetes manifests mounted every
worker's key into every pod. (The coordinator side, a node certificate acting
only for its own node's ranks, is tested with real certificates in
tests/integration/test_tls.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LAUNCH = Path(__file__).parents[2] / "launch"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_slurm_keeps_the_ca_key_journal_and_output_with_the_coordinator_user() -> None:
    """#14 item 18: the CA key and every rank's key were written under the submit
    directory, readable by the tenant."""
    script = (LAUNCH / "slurm" / "train.sbatch").read_text()
    assert 'coord install -d -m 0700 "$private"' in script
    assert 'ca init --job-id "$job" --out "$private/ca"' in script
    assert "--role rank" not in script  # no rank keys at all
    assert '--journal "$private/journal.sqlite"' in script
    assert '--out "$private/out"' in script
    # only the issued node certificates reach the job's directory
    assert 'coord tar -C "$private/issued" -cf - . | tar -C "$pki" -xf -' in script
    assert "$pki/ca" not in script


def test_worker_pods_get_one_certificate_each_and_no_shared_key_secret() -> None:
    """#14 item 18: every worker's key was mounted into every pod from one Secret."""
    (pytorchjob,) = load(LAUNCH / "k8s" / "pytorchjob.yaml")
    (trainjob,) = load(LAUNCH / "k8s" / "trainjob.yaml")
    pod = pytorchjob["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    (patch,) = trainjob["spec"]["runtimePatches"]
    (node_job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    volume_sets = [pod["volumes"], node_job["template"]["spec"]["template"]["spec"]["volumes"]]
    for volumes in volume_sets:
        assert not [v for v in volumes if "secret" in v], volumes  # no key Secret at all
        (tls,) = volumes
        attributes = tls["csi"]["volumeAttributes"]
        assert tls["csi"]["driver"] == "csi.cert-manager.io"
        assert attributes["csi.cert-manager.io/uri-sans"] == \
            "slsa-dist://job/train-1/node/${POD_NAME}"
        assert "client auth" in attributes["csi.cert-manager.io/key-usages"].split(",")
        assert attributes["csi.cert-manager.io/issuer-name"] == "slsa-job-ca"
    assert pod["automountServiceAccountToken"] is False
    (issuer,) = load(LAUNCH / "k8s" / "issuer.yaml")
    assert (issuer["kind"], issuer["spec"]["ca"]["secretName"]) == ("Issuer", "slsa-job-ca")
    deployment, _ = load(LAUNCH / "k8s" / "coordinator.yaml")
    mounted = {v["secret"]["secretName"] for v in
               deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert "slsa-job-ca" not in mounted  # the CA key is cert-manager's, not the coordinator's
