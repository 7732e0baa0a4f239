"""What each node adds: a real 3-node job against the same job on one node (#16 targets).

Root only (nodes are network namespaces, each with its own software TPM; see
tests/support/cluster.py). The same 6-rank job (tests/assets/cluster_train.py,
one epoch) runs alternately as 1 node x 6 ranks and 3 nodes x 2 ranks, each with
its own coordinator on mutual TLS. From the coordinator's journal (the time it
accepted each message):

- **start, job**: first node registration -> last rank registration; the 3-node
  job's excess over the 1-node job, divided by the 2 extra nodes: what a node
  adds to the job's start. Target <= 1 s per node.
- **start, per node**: node registration -> its inventory and TPM evidence
  accepted (inventory, a nonce, a quote). This runs beside the workers' start,
  off the training's path; shown for what it costs.
- **finalize**: last rank completion -> bundle written (the coordinator waits for
  every node's final report, merges, signs). The excess per extra node.
  Target <= 0.5 s per node.

    sudo PYTHONPATH=.:tests .venv/bin/python bench/bench_nodes.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
from pathlib import Path

from slsa_dist._pb.v1 import journal_pb2

from examples.demo import data as demo_data
from support.background import signing_key
from support.cluster import Cluster, unavailable
from support.clusterjob import ClusterJob

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "tests" / "assets" / "cluster_train.py"
START_TARGET_S = 1.0
FINALIZE_TARGET_S = 0.5


def measure(job: ClusterJob) -> dict[str, float]:
    with sqlite3.connect(job.root / "out" / f"{job.job_id}.journal.sqlite") as db:
        rows = db.execute("SELECT data FROM entries ORDER BY id").fetchall()
    entries = [journal_pb2.JournalEntry.FromString(bytes(data)) for (data,) in rows]
    registered: dict[str, int] = {}
    attested: dict[str, int] = {}
    ranks_registered: list[int] = []
    completed: list[int] = []
    finalized = 0
    for entry in entries:
        which = entry.WhichOneof("entry")
        if which == "node":
            registered[entry.node.node_id] = entry.time_unix_nanos
        elif which == "rank":
            ranks_registered.append(entry.time_unix_nanos)
        elif which == "batch":
            kinds = {e.WhichOneof("kind") for e in entry.batch.events}
            sender = entry.batch.sender
            if sender.startswith("node/") and "evidence" in kinds:
                attested.setdefault(sender.split("/", 1)[1], entry.time_unix_nanos)
            if "completed" in kinds:
                completed.append(entry.time_unix_nanos)
        elif which == "finalize":
            finalized = entry.time_unix_nanos
    written = job.bundle.stat().st_mtime_ns
    per_node = [(attested[n] - registered[n]) / 1e9 for n in registered]
    return {"attest_per_node": statistics.median(per_node),
            "start": (max(ranks_registered) - min(registered.values())) / 1e9,
            "finalize": (max(written, finalized) - max(completed)) / 1e9}


def run(cluster: Cluster, key: Path, name: str, nodes: int, port: int) -> dict[str, float]:
    job = ClusterJob(cluster, name, cluster.workdir / name, key, world_size=6,
                     nproc=6 // nodes, port=port, rdzv_port=port - 20000)
    members = cluster.nodes[:nodes]
    job.issue(members)
    job.start_coordinator()
    for node in members:
        job.start_node(node, TRAIN, ["--data", str(cluster.workdir / "data"), "--out",
                                     str(job.root / "train"), "--epochs", "1"],
                       nnodes=str(nodes))
    codes = job.wait(timeout=300)
    if any(codes.values()):
        raise SystemExit(f"{name} failed: {codes}\n{job.logs()}")
    return measure(job)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    why = unavailable()
    if why is not None:  # `make bench` as a user: say so, run the others
        print(f"bench_nodes: not run: {why}")
        return 0
    results: dict[int, list[dict[str, float]]] = {1: [], 3: []}
    with Cluster(ROOT / "bench-out" / "nodes", nodes=3) as cluster:
        demo_data.main(["--out", str(cluster.workdir / "data")])
        key, _ = signing_key(cluster.workdir)
        port = 50200
        for index in range(args.rounds):
            for nodes in ((1, 3) if index % 2 == 0 else (3, 1)):
                port += 1
                found = run(cluster, key, f"r{index}-{nodes}n", nodes, port)
                results[nodes].append(found)
                print(f"  round {index}, {nodes} node(s): node attested "
                      f"{found['attest_per_node']:.2f} s after registering; ranks registered "
                      f"{found['start']:.2f} s after the first node; bundle "
                      f"{found['finalize']:.2f} s after the last rank", flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
           for n, rs in results.items()}
    extra = 2  # nodes the 3-node job has beyond the 1-node job
    start_per_node = (med[3]["start"] - med[1]["start"]) / extra
    finalize_per_node = (med[3]["finalize"] - med[1]["finalize"]) / extra
    print(f"{'':28s}{'1 node':>10s}{'3 nodes':>10s}")
    for label, key_ in (("attest per node (s)", "attest_per_node"),
                        ("first node -> all ranks (s)", "start"),
                        ("last rank -> bundle (s)", "finalize")):
        print(f"{label:28s}{med[1][key_]:10.2f}{med[3][key_]:10.2f}")
    print(f"start: {start_per_node:+.2f} s per extra node (target <= {START_TARGET_S} s) "
          f"{'MET' if start_per_node <= START_TARGET_S else 'NOT MET'}; each node's own "
          f"registration, inventory and quote: {med[3]['attest_per_node']:.2f} s, beside "
          f"its workers' start")
    met = finalize_per_node <= FINALIZE_TARGET_S
    print(f"finalize: {finalize_per_node:+.2f} s per extra node (target <= "
          f"{FINALIZE_TARGET_S} s) {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
