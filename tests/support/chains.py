"""A three-step chain of real ``slsa-dist run`` bundles in a store, with its policy.

raw.csv -> clean (data step) -> model.bin (training step) -> model-q.bin (model step).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from slsa_dist.cli import main as cli_main

from support.background import signing_key

STEP_BUILD_TYPE = "https://slsa-dist.dev/buildtypes/step/v1"


def run_step(tmp: Path, key: Path, name: str, command: str, output: Path,
             inputs: list[str]) -> Path:
    """One ``slsa-dist run`` step; returns its bundle."""
    bundle = tmp / f"{name}.intoto.jsonl"
    args = ["run", "--output", str(output), "--key", str(key), "--bundle", str(bundle),
            "--step-id", name, *inputs, "--", sys.executable, "-c", command]
    assert cli_main(args) == 0
    return bundle


def build_chain(tmp_path: Path) -> dict[str, Path]:
    key, public = signing_key(tmp_path)
    raw = tmp_path / "raw.csv"
    raw.write_text("a,b\n1,2\n3,4\n")
    clean, model, quant = tmp_path / "clean", tmp_path / "model.bin", tmp_path / "model-q.bin"
    bundles = {
        "clean": run_step(tmp_path, key, "clean-1",
                          f"import os; os.makedirs({str(clean)!r}); "
                          f"open({str(clean / 'part-0.csv')!r}, 'w').write('1,2\\n'); "
                          f"open({str(clean / 'part-1.csv')!r}, 'w').write('3,4\\n')",
                          clean, ["--input", str(raw)]),
        "train": run_step(tmp_path, key, "train-1",
                          f"open({str(model)!r}, 'wb').write(b'weights')", model,
                          ["--input", str(clean)]),
        "quant": run_step(tmp_path, key, "quantize-1",
                          f"open({str(quant)!r}, 'wb').write(b'w8')", quant,
                          ["--input-model", str(model)]),
    }
    store = tmp_path / "store"
    assert cli_main(["store", "add", *map(str, bundles.values()), "--store", str(store),
                     "--key", str(public)]) == 0
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({
        "version": 1, "maxDepth": 4,
        "steps": [{"buildType": STEP_BUILD_TYPE, "keys": ["signing.pub"],
                   "slsaBuildLevel": 1}],
        "allowedDatasets": [hashlib.sha256(raw.read_bytes()).hexdigest()]}))
    return {"store": store, "policy": policy, "artifact": quant, "key": key, "public": public,
            **bundles}
