"""Launch manifests parse and carry what they must: images, env, the coordinator address,
the secret mounts, and slsa-torchrun / the Ray callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LAUNCH = Path(__file__).parents[3] / "launch"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_coordinator_deployment_mounts_the_key_and_pki_and_listens_with_tls() -> None:
    deployment, service = load(LAUNCH / "k8s" / "coordinator.yaml")
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/")
    assert container["command"] == ["slsa-dist", "coordinator"]
    args = container["args"]
    assert "--tls=/etc/slsa-dist/pki/coordinator" in args
    assert "--key=/etc/slsa-dist/key/signing.key" in args
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["signing-key"]["secret"]["secretName"] == "slsa-signing-key"
    assert volumes["signing-key"]["secret"]["defaultMode"] == 0o400
    assert volumes["pki"]["secret"]["secretName"] == "slsa-job-pki"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["signing-key"]["readOnly"] is True
    assert service["spec"]["ports"][0]["port"] == 50051
    assert pod["automountServiceAccountToken"] is False


def test_training_jobs_run_slsa_torchrun_against_the_coordinator_service() -> None:
    (pytorchjob,) = load(LAUNCH / "k8s" / "pytorchjob.yaml")
    (trainjob,) = load(LAUNCH / "k8s" / "trainjob.yaml")
    (container,) = pytorchjob["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"]
    trainer = trainjob["spec"]["trainer"]
    for spec in (container, trainer):
        assert spec["command"] == ["slsa-torchrun"]
        assert spec["args"][:2] == ["--slsa-coordinator", "slsa-coordinator:50051"]
        assert "slsa_dist.exec" in spec["args"]
        env = env_of(spec)
        assert env["SLSA_COORDINATOR"] == "slsa-coordinator:50051"
        assert env["SLSA_TLS_DIR"] == "/etc/slsa-dist/tls"  # the pod's own node certificate
        assert spec["image"] == env["SLSA_CONTAINER_IMAGE"]
    mounts = container["volumeMounts"]
    assert mounts == [{"name": "tls", "mountPath": "/etc/slsa-dist/tls", "readOnly": True}]
    assert pytorchjob["kind"] == "PyTorchJob"
    assert trainjob["kind"] == "TrainJob"
    assert trainjob["spec"]["runtimeRef"]["name"] == "torch-distributed"


def test_ray_cluster_installs_slsa_dist_and_submit_enables_the_callback() -> None:
    (cluster,) = load(LAUNCH / "ray" / "cluster.yaml")
    assert any("slsa-dist" in c for c in cluster["setup_commands"])
    assert any("ray[train]==2.60.0" in c for c in cluster["setup_commands"])
    submit = (LAUNCH / "ray" / "submit.sh").read_text()
    assert '"RAY_TRAIN_CALLBACKS": "slsa_dist.ray.SlsaCallback"' in submit
    assert "--runtime-env-json" in submit


def test_slurm_script_starts_a_tls_coordinator_on_the_first_node() -> None:
    script = (LAUNCH / "slurm" / "train.sbatch").read_text()
    assert 'head=${nodes[0]}' in script
    assert "slsa-dist coordinator" in script
    assert '--tls "$private/coordinator"' in script  # the coordinator user's own directory
    assert "--rdzv-backend c10d" in script
    assert 'export SLSA_TLS_DIR="$pki/node-{node}"' in script  # ranks use their node's
    assert "slsa-dist verify" in script
