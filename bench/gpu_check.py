"""The GPU check (issues: torchrun capture and NVIDIA attestation), for a machine with GPUs.

Runs the demo's training with NCCL on every local GPU through slsa-torchrun,
then asserts that NVML device identity (name, UUID, driver) and the
confidential-computing mode landed in the signed provenance, and prints them.

    PYTHONPATH=.:tests .venv/bin/python bench/gpu_check.py [--out gpu-check-out]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from slsa_dist.model._records import MEDIA_NODE
from slsa_dist.sign._loaders import load_verifier
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete

from examples.demo import data as demo_data
from support.background import signing_key
from support.localjob import run_local_job


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("gpu-check-out"))
    args = parser.parse_args()
    count = torch.cuda.device_count()
    if count == 0:
        print("no CUDA device visible: nothing to check here")
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo_data.main(["--out", str(out / "data")])
    key, public = signing_key(out)
    job = run_local_job(job_id="gpu-check", key=key, out=out, nproc=count, timeout=480,
                        script=Path(demo_data.__file__).parent / "train.py",
                        script_args=["--data", str(out / "data"), "--out", str(out / "train"),
                                     "--epochs", "2", "--backend", "nccl"])
    if job.torchrun_exit != 0:
        print(job.torchrun_log.read_text()[-3000:])
        return 1
    provenance = verify_bundle(
        job.bundle, keys=[load_verifier(public)],
        policy=AllOf(Artifacts(out / "train" / "final"), Complete())).provenance
    (node,) = provenance.records(MEDIA_NODE)
    gpus = node["gpus"]
    print(json.dumps({"driver": gpus.get("driver"), "cc": gpus.get("confidentialComputing"),
                      "devices": gpus["devices"], "torch": node["torch"],
                      "evidence": node["evidence"]}, indent=2))
    assert gpus["available"], gpus
    assert len(gpus["devices"]) >= count
    for device in gpus["devices"]:
        assert device["name"], device
        assert device["uuid"].startswith("GPU-"), device
    assert gpus["driver"]
    assert any(e["kind"] == "nvidia-cc" for e in node["evidence"])  # evidence or its reason
    print(f"OK: {count} GPU(s) with NVML identity in {job.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
