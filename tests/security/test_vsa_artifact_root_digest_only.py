"""Issue 25 F5: a VSA's artifact check compared the root digest only.

The OMS root hashes the per-file digests in name order, not the names, so a
model folder with a file renamed in order, or one plain file whose bytes are
the raw digest list, reproduced it: ``verify VSA --artifact`` passed. A VSA now
carries what its artifact check needs (``annotations.slsadist_files``: the OMS
serialization and a digest over every file's name and digest, in manifest
order), the check recomputes it from the disk, and a VSA subject without it is
refused. ``verify chain`` checks the requested folder's names against the
signed record before it signs a PASSED VSA.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.model._statement import ResourceDescriptor, Statement
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._loaders import load_signer
from slsa_dist.verify._bundle import VSA_PREDICATE_TYPE

from support.background import signing_key
from support.chains import STEP_BUILD_TYPE, run_step

A, M = b"A" * 10, b"M" * 10


@pytest.fixture
def folder_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """A one-step chain whose artifact is a folder, in a store, with a policy."""
    key, public = signing_key(tmp_path)
    model = tmp_path / "model"
    bundle = run_step(tmp_path, key, "step-1",
                      f"import os; os.makedirs({str(model)!r}); "
                      f"open({str(model / 'a.bin')!r}, 'wb').write({A!r}); "
                      f"open({str(model / 'm.bin')!r}, 'wb').write({M!r})", model, [])
    store = tmp_path / "store"
    assert cli_main(["store", "add", str(bundle), "--store", str(store), "--key",
                     str(public)]) == 0
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "steps": [
        {"buildType": STEP_BUILD_TYPE, "keys": ["signing.pub"], "slsaBuildLevel": 1}]}))
    capsys.readouterr()
    return {"key": key, "public": public, "model": model, "store": store, "policy": policy,
            "bundle": bundle}


def _chain(chain: dict[str, Path], artifact: Path, vsa: Path | None = None) -> int:
    extra = [] if vsa is None else ["--emit-vsa", str(vsa), "--vsa-key", str(chain["key"])]
    return cli_main(["verify", "chain", str(artifact), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"]), *extra])


@pytest.fixture
def vsa(folder_chain: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "model.vsa.intoto.jsonl"
    assert _chain(folder_chain, folder_chain["model"], out) == 0
    capsys.readouterr()
    return out


def _verify_vsa(chain: dict[str, Path], vsa: Path, artifact: Path) -> int:
    return cli_main(["verify", str(vsa), "--key", str(chain["public"]), "--artifact",
                     str(artifact)])


def test_the_untouched_folder_verifies_against_its_vsa(
        folder_chain: dict[str, Path], vsa: Path) -> None:
    assert _verify_vsa(folder_chain, vsa, folder_chain["model"]) == 0


def test_a_file_renamed_in_order_fails_against_the_vsa(
        folder_chain: dict[str, Path], vsa: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = folder_chain["model"]
    (model / "m.bin").rename(model / "n.bin")
    assert _verify_vsa(folder_chain, vsa, model) == 1
    assert "file names" in capsys.readouterr().out


def test_a_file_moved_into_a_folder_that_sorts_the_same_fails_against_the_vsa(
        folder_chain: dict[str, Path], vsa: Path) -> None:
    model = folder_chain["model"]
    (model / "a").mkdir()
    (model / "a.bin").rename(model / "a" / "a.bin")
    assert _verify_vsa(folder_chain, vsa, model) == 1


def test_a_plain_file_holding_the_digest_list_does_not_pass_as_the_folder(
        folder_chain: dict[str, Path], vsa: Path, tmp_path: Path) -> None:
    forged = tmp_path / "forged.bin"
    forged.write_bytes(hashlib.sha256(A).digest() + hashlib.sha256(M).digest())
    assert _verify_vsa(folder_chain, vsa, forged) == 1


def test_a_vsa_without_the_file_list_is_refused_for_a_folder(
        folder_chain: dict[str, Path], vsa: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A VSA (of an older verifier, or another one) naming only the root digest: the
    names cannot be checked, so the check fails and says what is missing."""
    statement = json.loads(read_bundle(vsa)[0].payload)
    for subject in statement["subject"]:
        subject.pop("annotations", None)
    bare = Statement(subjects=tuple(ResourceDescriptor.from_dict(s, where="subject")
                                    for s in statement["subject"]),
                     predicate_type=VSA_PREDICATE_TYPE, predicate=statement["predicate"])
    old = write_bundle(tmp_path / "old.vsa.intoto.jsonl",
                       [sign_statement(bare, [load_signer(folder_chain["key"])])])
    assert _verify_vsa(folder_chain, old, folder_chain["model"]) == 1
    assert "slsadist_files" in capsys.readouterr().out
    forged = tmp_path / "forged.bin"
    forged.write_bytes(hashlib.sha256(A).digest() + hashlib.sha256(M).digest())
    assert _verify_vsa(folder_chain, old, forged) == 1


def test_verify_chain_checks_the_folder_names_before_it_signs_a_passed_vsa(
        folder_chain: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    renamed = tmp_path / "copy" / "model"
    shutil.copytree(folder_chain["model"], renamed)
    (renamed / "m.bin").rename(renamed / "n.bin")
    out = tmp_path / "renamed.vsa.intoto.jsonl"
    assert _chain(folder_chain, renamed, out) == 1
    assert "missing: m.bin" in capsys.readouterr().out
    payload = json.loads(read_bundle(out)[0].payload)
    assert payload["predicate"]["verificationResult"] == "FAILED"


def test_the_vsa_carries_the_names_digest_a_verifier_can_recompute(vsa: Path) -> None:
    (subject,) = json.loads(read_bundle(vsa)[0].payload)["subject"]
    files = subject["annotations"]["slsadist_files"]
    pairs = [["a.bin", hashlib.sha256(A).hexdigest()], ["m.bin", hashlib.sha256(M).hexdigest()]]
    assert files["count"] == 2
    assert files["sha256"] == hashlib.sha256(
        json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()
    assert files["serialization"]["method"] == "files"

