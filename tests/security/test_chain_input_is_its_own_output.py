"""An input a step names as its own output too has no provenance in the chain.

Found by a second review: a job read an unvetted base model and wrote a copy of its
bytes (or named it its subject); ``verify chain`` skipped the input's digest as
already visited (the step itself produced it) and passed with 0 gaps, for the job's
model and for the base model alike.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.model._statement import BUILD_TYPE
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._chain import ChainPolicy, StepRule, verify_chain
from slsa_dist.verify._store import Store

from support.sim import Cluster, done, sha, shard, written


def test_an_input_copied_to_an_output_is_a_gap_not_its_own_provenance(tmp_path: Path) -> None:
    signer = Signer.generate()
    base = hashlib.sha256(b"an unvetted base model").hexdigest()
    cluster = Cluster(world_size=1, job_id="finetune")
    cluster.rank(0).report(
        shard("data-0"),
        pb.Event(dependency=pb.Dependency(kind="input", name="base.bin",
                                          uri="file:///data/base.bin", digest={"sha256": base})),
        pb.Event(file=pb.FileWritten(artifact="ckpt", path="base.bin", digest={"sha256": base},
                                     size=22, role=pb.CHECKPOINT)),
        written("model", "weights.bin", role=pb.FINAL), done())
    cluster.state.finalize("finetune", "request", cluster.tick())
    bundle = write_bundle(tmp_path / "finetune.intoto.jsonl",
                          [sign_statement(cluster.statement(), [signer])])
    store = Store(tmp_path / "store")
    store.add(bundle, keys=[signer.public()])
    policy = ChainPolicy(rules=(StepRule(build_type=BUILD_TYPE, keys=(signer.public(),)),),
                         allowed=frozenset({sha("data-0")}))
    (model,) = cluster.statement().subjects
    for root, name in ((model.digest["sha256"], "model"), (base, "base.bin")):
        result = verify_chain(root, name=name, store=store, policy=policy)
        assert not result.ok, name
        assert [g.reason for g in result.gaps] == [
            "the step names this input as its own output too: no provenance for it"], name
