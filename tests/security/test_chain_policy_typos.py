"""A misspelt chain policy key weakened the policy without a word.

``ChainPolicy.load`` read the keys it knew and ignored the rest: a step rule spelt
``"requireAttestaton": "tpm"`` or ``"builderIDs": [...]`` required neither, and
``verify chain`` passed (and signed a PASSED VSA) a chain the intended policy fails.
Reference values already refuse a name they do not know ("a typo is not a register
nobody checks"); a chain policy now does too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slsa_dist.errors import InputError
from slsa_dist.sign._keys import keygen
from slsa_dist.verify._chain import ChainPolicy

TRAINING = "https://slsa-dist.dev/buildtypes/distributed-training/v1"


def _load(tmp_path: Path, policy: dict[str, object]) -> ChainPolicy:
    keygen(tmp_path / "keys")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    return ChainPolicy.load(path)


@pytest.mark.parametrize(("where", "key"), [
    ("step", "requireAttestaton"), ("step", "builderIDs"), ("step", "trusted_aks"),
    ("top", "allowedDataset"), ("top", "maxdepth")])
def test_a_key_the_policy_does_not_know_is_refused(tmp_path: Path, where: str,
                                                   key: str) -> None:
    step: dict[str, object] = {"buildType": TRAINING, "keys": ["keys/signing.pub"]}
    policy: dict[str, object] = {"version": 1, "steps": [step]}
    (step if where == "step" else policy)[key] = "x"
    with pytest.raises(InputError, match=f"found unknown key.*'{key}'"):
        _load(tmp_path, policy)


def test_the_documented_keys_still_load(tmp_path: Path) -> None:
    policy = _load(tmp_path, {
        "version": 1, "maxDepth": 3, "allowedDatasets": [], "allowedModels": [],
        "allowedInputs": [],
        "steps": [{"buildType": TRAINING, "keys": ["keys/signing.pub"],
                   "builderIds": ["https://b/1"], "requireAttestation": "tpm",
                   "trustedAks": ["sha256:" + "cd" * 32 + " node-0"], "slsaBuildLevel": 2}]})
    assert policy.rules[0].require_attestation == "tpm"
