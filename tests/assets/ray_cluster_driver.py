"""A Ray Train V2 driver for a multi-node Ray cluster: 2 workers on 2 nodes, gloo,
a checkpoint from each worker; the slsa-dist callback reports to a TLS coordinator.

    python ray_cluster_driver.py RAY_ADDRESS STORAGE_PATH

Settings come from the environment: SLSA_COORDINATOR, SLSA_JOB_ID, SLSA_TLS_DIR,
TPM2TOOLS_TCTI (handed to every worker through the runtime environment).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import ray
import ray.train
import torch
import torch.distributed as dist
from ray.train import Checkpoint, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from slsa_dist.ray import SlsaCallback


def train_fn(config: dict) -> None:  # type: ignore[type-arg]
    context = ray.train.get_context()
    total = torch.tensor([float(context.get_world_rank() + 1)])
    dist.all_reduce(total)  # a real collective across the two nodes
    for epoch in range(config["epochs"]):
        with tempfile.TemporaryDirectory() as directory:
            weights = torch.full((4,), float(epoch) + total.item())
            torch.save(weights, Path(directory) / f"model-rank{context.get_world_rank()}.pt")
            ray.train.report({"epoch": epoch}, checkpoint=Checkpoint.from_directory(directory))


def main() -> int:
    address, storage = sys.argv[1], sys.argv[2]
    passed = {k: os.environ[k] for k in ("SLSA_TLS_DIR", "TPM2TOOLS_TCTI", "GLOO_SOCKET_IFNAME",
                                         "OMP_NUM_THREADS") if k in os.environ}
    ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": passed})
    trainer = TorchTrainer(
        train_fn, train_loop_config={"epochs": 2},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False,
                                     placement_strategy="STRICT_SPREAD"),
        run_config=RunConfig(name="slsa-ray-cluster", storage_path=storage,
                             callbacks=[SlsaCallback()]))
    result = trainer.fit()
    print(f"ray train finished: error={result.error!r}", flush=True)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
