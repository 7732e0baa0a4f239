"""Issue 25 F3: the store index is a hint, never a shortcut.

``verify chain`` took any bundle the index names for a digest as that digest's
producer once the bundle had been verified for another output, without asking
whether its verified statement names the digest. One extra line in the index,
mapping an unapproved raw dataset to the step that already produced ``clean``,
closed the chain with 0 gaps and a PASSED VSA.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.verify._chain import artifact_digest

from support.chains import STEP_BUILD_TYPE


@pytest.fixture
def strict_policy(chain: dict[str, Path], tmp_path: Path) -> Path:
    """The chain's policy without the raw dataset allowed: raw.csv must be a gap."""
    policy = tmp_path / "strict.json"
    policy.write_text(json.dumps({
        "version": 1, "maxDepth": 4,
        "steps": [{"buildType": STEP_BUILD_TYPE, "keys": ["signing.pub"],
                   "slsaBuildLevel": 1}]}))
    return policy


def _forge_index_line(chain: dict[str, Path], digest: str, bundle: Path) -> None:
    """Point ``digest`` at a genuine, already verified bundle of the store."""
    stored = hashlib.sha256(bundle.read_bytes()).hexdigest() + ".intoto.jsonl"
    index = chain["store"] / "index" / "sha256" / digest
    with index.open("a") as handle:
        handle.write(stored + "\n")


def test_an_index_line_mapping_an_unapproved_dataset_to_a_verified_step_is_a_gap(
        chain: dict[str, Path], strict_policy: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    raw = hashlib.sha256((tmp_path / "raw.csv").read_bytes()).hexdigest()
    base = ["verify", "chain", str(chain["artifact"]), "--store", str(chain["store"]),
            "--policy", str(strict_policy)]
    assert cli_main(base) == 1  # honest: raw.csv has no provenance and is not allowed
    assert "GAP  dataset raw.csv" in capsys.readouterr().out

    _forge_index_line(chain, raw, chain["clean"])  # clean-1 is verified before raw.csv
    vsa = tmp_path / "forged.vsa.intoto.jsonl"
    assert cli_main([*base, "--emit-vsa", str(vsa), "--vsa-key", str(chain["key"])]) == 1
    out = capsys.readouterr().out
    assert "GAP  dataset raw.csv" in out
    assert "the verified statement does not name this digest" in out
    assert "0 gap(s)" not in out
    statement = json.loads(base64.b64decode(json.loads(vsa.read_text().splitlines()[0])
                                            ["payload"]))
    assert statement["predicate"]["verificationResult"] == "FAILED"


def test_a_step_already_verified_still_counts_for_a_digest_it_names(
        chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The honest chain is untouched by the re-check; a redundant index line naming the
    right step for a digest it did produce changes nothing."""
    clean = artifact_digest(tmp_path / "clean")
    _forge_index_line(chain, clean, chain["clean"])
    assert cli_main(["verify", "chain", str(chain["artifact"]), "--store",
                     str(chain["store"]), "--policy", str(chain["policy"])]) == 0
    assert "0 gap(s)" in capsys.readouterr().out
