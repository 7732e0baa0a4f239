"""A signed distributed job whose final model is a real folder on disk.

The merge state machine (support/sim.py) records each rank's file with the
digest of the bytes written to ``<folder>/model``; the statement is signed with
its records inline, or (``ledger=True``) in a record ledger beside the bundle,
as a job above ``--ledger-above`` ranks writes it.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.model._ledger import write_ledger
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

from support.sim import Cluster, done, shard

FILES = {"config.json": b'{"layers": 2}', "model.safetensors": b"W" * 64}


def signed_model_job(folder: Path, signer: Signer, *, ledger: bool,
                     files: dict[str, bytes] | None = None) -> tuple[Path, Path]:
    """(bundle, model folder) of a 2-rank job ``big`` whose final artifact ``model`` holds
    ``files`` (rank 0 wrote the first, rank 1 the rest)."""
    files = dict(FILES if files is None else files)
    model = folder / "model"
    model.mkdir(parents=True)
    for name, data in files.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    cluster = Cluster(world_size=2, job_id="big")
    names = sorted(files)
    for rank, mine in ((0, names[:1]), (1, names[1:])):
        events = [pb.Event(file=pb.FileWritten(
            artifact="model", path=name, digest={"sha256": hashlib.sha256(files[name])
                                                 .hexdigest()},
            size=len(files[name]), role=pb.FINAL)) for name in mine]
        cluster.rank(rank).report(shard("data-0"), *events, done())
    cluster.state.finalize("big", "request", cluster.tick())
    if ledger:
        statement = cluster.state.statement(
            ledger=partial(write_ledger, folder / "big.ledger.jsonl"))
    else:
        statement = cluster.state.statement()
    bundle = write_bundle(folder / "big.intoto.jsonl", [sign_statement(statement, [signer])])
    return bundle, model
