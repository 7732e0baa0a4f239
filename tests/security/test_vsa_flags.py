"""Items 3 and 4: a VSA is not a provenance, and it is checked as a VSA consumer must.

``verify`` given a VSA silently ignored --builder-id, --require-attestation and
--trusted-aks, and checked neither the verifier, the resource nor the level.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.verify._chain import ChainPolicy, levels, verify_chain
from slsa_dist.verify._store import Store
from slsa_dist.verify._vsa import VERIFIER_ID


@pytest.fixture
def vsa(chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "model.vsa.intoto.jsonl"
    assert cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"]), "--emit-vsa", str(out),
                     "--vsa-key", str(chain["key"]),
                     "--resource-uri", "https://models.example/q"]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("flag", [["--builder-id", "https://b"],
                                  ["--require-attestation", "tpm"]])
def test_provenance_only_flags_are_refused_on_a_vsa(
        vsa: Path, chain: dict[str, Path], flag: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["verify", str(vsa), "--key", str(chain["public"]), *flag]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]}: expected a provenance bundle, found a Verification Summary" in err


def test_a_vsa_for_another_resource_or_verifier_or_a_higher_level_fails(
        vsa: Path, chain: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["verify", str(vsa), "--key", str(chain["public"])]
    assert cli_main([*base, "--resource-uri", "https://models.example/q",
                     "--verifier-id", VERIFIER_ID, "--verified-level", "1"]) == 0
    capsys.readouterr()
    assert cli_main([*base, "--resource-uri", "https://models.example/other"]) == 1
    assert "resourceUri: expected 'https://models.example/other'" in capsys.readouterr().out
    assert cli_main([*base, "--verifier-id", "https://evil/verifier"]) == 1
    assert "verifier.id: expected 'https://evil/verifier'" in capsys.readouterr().out
    assert cli_main([*base, "--verified-level", "3"]) == 1
    assert "verifiedLevels: expected SLSA_BUILD_LEVEL_3 or higher" in capsys.readouterr().out


def test_verified_levels_are_the_artifact_own_step_and_dependency_levels_count_artifacts(
        chain: dict[str, Path], tmp_path: Path) -> None:
    """Item 4: the root step's level, not the lowest in the chain; dependencies are counted
    per artifact, with allowed roots at level 0."""
    policy_file = tmp_path / "policy-levels.json"
    raw_digest = hashlib.sha256((tmp_path / "raw.csv").read_bytes()).hexdigest()
    policy_file.write_text(json.dumps({
        "version": 1, "maxDepth": 4, "allowedDatasets": [raw_digest],
        "steps": [{"buildType": "https://slsa-dist.dev/buildtypes/step/v1",
                   "keys": ["signing.pub"], "slsaBuildLevel": 2}]}))
    result = verify_chain(hashlib.sha256(b"w8").hexdigest(), name="model-q.bin",
                          store=Store(chain["store"]), policy=ChainPolicy.load(policy_file))
    assert result.ok
    own, dependencies = levels(result)
    assert own == 2
    # model.bin and the clean data set (level 2 each), raw.csv (an allowed root: level 0)
    assert dependencies == {"SLSA_BUILD_LEVEL_2": 2, "SLSA_BUILD_LEVEL_0": 1}
