"""Chain policy files: what they accept, and the one-line error for what they do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slsa_dist.errors import InputError
from slsa_dist.sign._keys import keygen
from slsa_dist.verify._chain import ChainPolicy

TRAINING = "https://slsa-dist.dev/buildtypes/distributed-training/v1"
STEP = "https://slsa-dist.dev/buildtypes/step/v1"


def write(tmp_path: Path, policy: object) -> Path:
    keygen(tmp_path / "keys")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    return path


def test_a_policy_reads_its_rules_keys_and_allowed_roots(tmp_path: Path) -> None:
    policy = ChainPolicy.load(write(tmp_path, {
        "version": 1, "maxDepth": 3, "allowedDatasets": ["aa" * 32],
        "steps": [{"buildType": TRAINING, "keys": ["keys/signing.pub"],
                   "builderIds": ["https://b/1"], "requireAttestation": "tpm",
                   "trustedAks": ["sha256:" + "cd" * 32 + " node-0"], "slsaBuildLevel": 2},
                  {"buildType": STEP, "keys": ["keys/signing.pub"]}]}))
    assert policy.max_depth == 3
    assert policy.allowed == {"aa" * 32}
    rule = policy.rule_for(TRAINING)
    assert rule is not None
    assert (rule.level, rule.builder_ids, rule.trusted_aks) == (
        2, ("https://b/1",), {("sha256:" + "cd" * 32, "node-0")})
    assert policy.rule_for(STEP) is not None
    assert policy.rule_for("https://other") is None
    assert len(policy.digest) == 64


@pytest.mark.parametrize(("policy", "message"), [
    ({"version": 2, "steps": []}, 'expected an object with "version": 1, found 2'),
    ({"version": 1, "steps": []}, 'expected a non-empty "steps" list'),
    ({"version": 1, "steps": [{"buildType": TRAINING}]}, "steps[0]: expected buildType and keys"),
    ({"version": 1, "steps": [{"buildType": TRAINING, "keys": ["keys/signing.pub"],
                               "trustedAks": ["sha256:" + "cd" * 32]}]},
     "steps[0].trustedAks: expected it with \"requireAttestation\": \"tpm\", found None"),
])
def test_a_bad_policy_is_refused_naming_what_was_expected(tmp_path: Path, policy: object,
                                                          message: str) -> None:
    with pytest.raises(InputError) as raised:
        ChainPolicy.load(write(tmp_path, policy))
    assert message in str(raised.value)


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="policy: expected a file at .*nothing.json, found none"):
        ChainPolicy.load(tmp_path / "nothing.json")
