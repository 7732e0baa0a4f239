"""The 3-node demo (``make demo-cluster``, root only): one training job across three
"hosts" made of Linux namespaces, one signed provenance, its report.

Each node is a network + UTS namespace with its own address and host name and its
own software TPM; a coordinator host holds the coordinator on mutual TLS; torchrun
meets across them with c10d rendezvous. The job's bundle is verified with every
node's TPM quote re-appraised against the enrolled AKs, summarized with
``slsa-dist inspect`` and rendered with ``slsa-dist report``. Everything the demo
made in the system (namespaces, links, processes) is gone when it ends.

    sudo make demo-cluster          # writes demo-cluster-out/
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from examples.demo import data as demo_data
from support.background import signing_key
from support.cluster import Cluster, unavailable
from support.clusterjob import SLSA, ClusterJob

TRAIN = Path(__file__).parents[2] / "tests" / "assets" / "cluster_train.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-cluster-out"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    why = unavailable()
    if why is not None:
        print(f"demo-cluster: {why}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    with Cluster(out / "cluster", nodes=3) as cluster:
        print(f"3 nodes up ({time.monotonic() - started:.1f} s): " + ", ".join(
            f"{n.name} {n.address} (TPM AK {n.ak.split()[0][:19]}...)" for n in cluster.nodes))
        demo_data.main(["--out", str(out / "data")])
        key, public = signing_key(out)
        job = ClusterJob(cluster, "demo-cluster", out / "job", key, world_size=6)
        job.issue(cluster.nodes)
        job.start_coordinator()
        for node in cluster.nodes:
            job.start_node(node, TRAIN, ["--data", str(out / "data"), "--out",
                                         str(out / "job" / "train"), "--epochs",
                                         str(args.epochs)], nnodes="3")
        codes = job.wait(timeout=300)
        if any(codes.values()):
            print(f"demo-cluster: the job failed: {codes}\n{job.logs()}", file=sys.stderr)
            return 1
        print(f"trained on 3 nodes x 2 ranks in {time.monotonic() - started:.1f} s")
        trusted = cluster.trusted_aks()
        shutil.copy(trusted, out / "trusted-aks.txt")
        shutil.copy(job.bundle, out / job.bundle.name)
    bundle = out / job.bundle.name
    model = out / "job" / "train" / "model.pt"
    steps = [
        [*SLSA, "verify", str(bundle), "--key", str(public), "--artifact", str(model),
         "--builder-id", "https://slsa-dist.dev/builders/local/v1",
         "--require-attestation", "tpm", "--trusted-aks", str(out / "trusted-aks.txt")],
        [*SLSA, "inspect", str(bundle), "--key", str(public)],
        [*SLSA, "report", str(bundle), "--key", str(public), "--output", str(out / "report.html")],
    ]
    for step in steps:
        print("$ slsa-dist " + " ".join(os.path.relpath(a) if a.startswith("/") else a
                                       for a in step[3:]), flush=True)
        done = subprocess.run(step, check=False)
        if done.returncode:
            return done.returncode
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
