"""A file whose bytes are the digest list of an intermediate checkpoint is no checkpoint.

Found by an independent review: the OMS root of a folder is SHA-256 over its files'
raw digests in path order, so 64 bytes holding the two digests of a genuine job's
``epoch-0/`` reproduce its root. ``verify chain`` counted the root as produced by the
training step, checked file names only for folders and subjects, and signed a PASSED
VSA for the file. A file matching a multi-file checkpoint's root is now held to the
record by name, and refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.cli import main as cli_main
from slsa_dist.sign._keys import Signer

from support.sim import Cluster, done, shard, signed

FILES = {("epoch-0", "__0_0.distcp"): b"epoch0 rank0 weights",
         ("epoch-0", "__1_0.distcp"): b"epoch0 rank0 more",
         ("final", "model.safetensors"): b"final weights"}


def _job(root: Path) -> tuple[Path, Path]:
    """A genuine signed one-rank job (bundle, policy) whose files are under ``root``."""
    def written(artifact: str, path: str, data: bytes) -> pb.Event:
        target = root / "checkpoints" / artifact / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return pb.Event(file=pb.FileWritten(
            artifact=artifact, path=path, digest={"sha256": hashlib.sha256(data).hexdigest()},
            size=len(data), role=pb.FINAL if artifact == "final" else pb.CHECKPOINT))

    signer = Signer.generate()
    (root / "signing.pub").write_bytes(signer.public().public_pem())
    cluster = Cluster(world_size=1, job_id="train")
    cluster.rank(0).report(shard("data-0"), *[written(a, p, d) for (a, p), d in FILES.items()],
                           done())
    bundle = signed(cluster, root / "out", signer)
    statement = json.loads(base64.b64decode(json.loads(bundle.read_text())["payload"]))
    policy = root / "policy.json"
    policy.write_text(json.dumps({"version": 1, "steps": [
        {"buildType": statement["predicate"]["buildDefinition"]["buildType"],
         "keys": [str(root / "signing.pub")], "slsaBuildLevel": 2}],
        "allowedDatasets": [hashlib.sha256(b"data-0").hexdigest()]}))
    return bundle, policy


def test_a_file_holding_a_checkpoints_digest_list_is_no_output_of_the_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, policy = _job(tmp_path)
    store = tmp_path / "store"
    assert cli_main(["store", "add", str(bundle), "--store", str(store), "--key",
                     str(tmp_path / "signing.pub")]) == 0
    forged = tmp_path / "epoch-0.bin"
    forged.write_bytes(b"".join(hashlib.sha256(FILES[("epoch-0", name)]).digest()
                                for name in ("__0_0.distcp", "__1_0.distcp")))
    capsys.readouterr()
    code = cli_main(["verify", "chain", str(forged), "--store", str(store), "--policy",
                     str(policy)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "chain NOT verified: 1 step(s), 1 gap(s)" in out
    assert "GAP  epoch-0.bin: expected a subject with this digest, found none" in out
