"""Item 2: the policy rule comes from the verified provenance, under any hash seed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from slsa_dist.cli import main as cli_main
from slsa_dist.model._statement import BUILD_TYPE, ProvenanceBuilder, ResourceDescriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.sign._loaders import load_signer

STEP = "https://slsa-dist.dev/buildtypes/step/v1"
MODEL = b"trained without attestation"


def _statement(build_type: str) -> ProvenanceBuilder:
    builder = ProvenanceBuilder(invocation_id="job-1", build_type=build_type)
    builder.add_subject(ResourceDescriptor(name="model.bin",
                                           digest={"sha256": hashlib.sha256(MODEL).hexdigest()}))
    return builder


def test_an_unsigned_envelope_claiming_a_weaker_build_type_does_not_select_its_rule(
        chain: dict[str, Path], tmp_path: Path) -> None:
    signed = sign_statement(_statement(BUILD_TYPE).build(), [load_signer(chain["key"])])
    unsigned = sign_statement(_statement(STEP).build(), [Signer.generate()])  # no trusted key
    bundle = tmp_path / "train.intoto.jsonl"
    write_bundle(bundle, [signed, unsigned])
    model = tmp_path / "model.bin"
    model.write_bytes(MODEL)
    store = tmp_path / "store-2"
    assert cli_main(["store", "add", str(bundle), "--store", str(store),
                     "--key", str(chain["public"])]) == 0
    policy = tmp_path / "policy-2.json"
    policy.write_text(json.dumps({"version": 1, "steps": [
        {"buildType": BUILD_TYPE, "keys": ["signing.pub"], "requireAttestation": "tpm",
         "slsaBuildLevel": 2},
        {"buildType": STEP, "keys": ["signing.pub"], "slsaBuildLevel": 1}]}))
    for seed in range(8):
        done = subprocess.run(
            [sys.executable, "-m", "slsa_dist.cli", "verify", "chain", str(model),
             "--store", str(store), "--policy", str(policy)],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "PYTHONHASHSEED": str(seed)})
        assert done.returncode == 1, (seed, done.stdout, done.stderr)
        assert "attestation tpm" in done.stdout, (seed, done.stdout)
