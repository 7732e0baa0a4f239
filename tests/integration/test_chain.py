"""The whole supply chain: store, verify --chain, VSA, and the report (in real Chromium)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.errors import InputError
from slsa_dist.verify._chain import ChainPolicy

from conftest import need


def test_store_finds_the_bundle_that_produced_a_digest(chain: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    digest = hashlib.sha256(b"weights").hexdigest()
    assert cli_main(["store", "find", digest, "--store", str(chain["store"])]) == 0
    (found,) = capsys.readouterr().out.split()
    assert Path(found).read_bytes() == chain["train"].read_bytes()
    assert cli_main(["store", "find", "0" * 64, "--store", str(chain["store"])]) == 1


def test_the_chain_verifies_back_to_an_allowed_raw_dataset(chain: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    code = cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"])])
    out = capsys.readouterr().out
    assert code == 0, out
    for step_name in ("quantize-1", "train-1", "clean-1"):
        assert f"<- {step_name}" in out
    assert "root dataset raw.csv" in out
    assert "chain verified: 3 step(s), 0 gap(s)" in out


def test_a_removed_link_fails_naming_the_step(chain: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for bundle in (chain["store"] / "bundles").iterdir():
        if bundle.read_bytes() == chain["clean"].read_bytes():
            bundle.unlink()
    code = cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"])])
    out = capsys.readouterr().out
    assert code == 1
    assert "GAP  dataset clean" in out
    assert "(input of train-1): no provenance in the store produced this digest" in out


def test_a_link_signed_by_an_untrusted_key_fails_naming_the_step(
        chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from slsa_dist.sign._dsse import sign_envelope, write_bundle
    from slsa_dist.sign._formats import read_bundle
    from slsa_dist.sign._keys import Signer

    (envelope,) = read_bundle(chain["train"])
    forger = Signer.generate()
    forged = write_bundle(tmp_path / "forged.intoto.jsonl", [sign_envelope(
        envelope.payload, payload_type=envelope.payload_type, signers=[forger])])
    forger_pub = tmp_path / "forger.pub"
    forger_pub.write_bytes(forger.public().public_pem())
    store = tmp_path / "store2"
    # the store indexes what either key signed; the policy decides whom to trust
    cli_main(["store", "add", str(chain["clean"]), str(forged), str(chain["quant"]),
              "--store", str(store), "--key", str(chain["public"]), "--key", str(forger_pub)])
    capsys.readouterr()
    code = cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(store),
                     "--policy", str(chain["policy"])])
    out = capsys.readouterr().out
    assert code == 1
    assert "(input of quantize-1): step train-1 (name as claimed, unverified) is signed by a " \
           "key not trusted" in out


def test_vsa_is_emitted_and_verifies(chain: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    vsa = tmp_path / "model-q.vsa.intoto.jsonl"
    assert cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"]), "--emit-vsa", str(vsa),
                     "--vsa-key", str(chain["key"])]) == 0
    capsys.readouterr()
    from slsa_dist.sign._formats import read_bundle

    predicate = json.loads(read_bundle(vsa)[0].payload)["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_1"]  # a list, per the spec
    # integers; artifacts, not bundles: model.bin and clean/ at level 1, raw.csv allowed (0)
    assert predicate["dependencyLevels"] == {"SLSA_BUILD_LEVEL_1": 2, "SLSA_BUILD_LEVEL_0": 1}
    assert predicate["verifier"]["version"] == {"slsa-dist": "0.1.0"}
    assert len(predicate["inputAttestations"]) == 3
    assert predicate["policy"]["digest"]["sha256"] == hashlib.sha256(
        chain["policy"].read_bytes()).hexdigest()
    code = cli_main(["verify", str(vsa), "--key", str(chain["public"]), "--artifact",
                     str(chain["artifact"])])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  verificationResult" in out


def test_a_failed_vsa_claims_no_dependency_levels(chain: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """#27 item 8: a FAILED VSA carried ``dependencyLevels: {}``, which reads as "no
    dependencies"; a failed verification says nothing about them."""
    store = tmp_path / "partial"
    cli_main(["store", "add", str(chain["quant"]), "--store", str(store), "--key",
              str(chain["public"])])  # the training step is missing: the chain has a gap
    vsa = tmp_path / "failed.vsa.intoto.jsonl"
    assert cli_main(["verify", "chain", str(chain["artifact"]), "--store", str(store),
                     "--policy", str(chain["policy"]), "--emit-vsa", str(vsa),
                     "--vsa-key", str(chain["key"])]) == 1
    capsys.readouterr()
    from slsa_dist.sign._formats import read_bundle

    predicate = json.loads(read_bundle(vsa)[0].payload)["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert "dependencyLevels" not in predicate


@pytest.mark.parametrize(("content", "message"), [
    ("{", "expected JSON"),
    ('{"version": 2}', 'expected an object with "version": 1, found 2'),
    ('{"version": 1, "steps": []}', 'expected a non-empty "steps" list'),
    ('{"version": 1, "steps": [{"buildType": "x"}]}', "steps[0]: expected buildType and keys"),
    ('{"version": 1, "steps": [{"buildType": "x", "keys": ["k.pub"], "trustedAks": ["sha256:'
     + "ab" * 32 + '"]}]}',
     'steps[0].trustedAks: expected it with "requireAttestation": "tpm", found None'),
    ('{"version": 1, "steps": [{"buildType": "x", "keys": ["k.pub"], "requireAttestation": '
     '"tpm", "trustedAks": ["node-a"]}]}',
     "steps[0].trustedAks: expected 'sha256:<64 lowercase hex>', found 'node-a'"),
    ('{"version": 1, "steps": [{"buildType": "x", "keys": ["k.pub"], "requireAttestation": '
     '"tpm", "trustedAks": []}]}',
     "steps[0].trustedAks: expected a non-empty list of 'sha256:<hex> NODE-ID', found []"),
])
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(content)
    with pytest.raises(InputError, match=re.escape(message)):
        ChainPolicy.load(path)


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_the_report_renders_in_headless_chromium(chain: dict[str, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need(chromium is not None, "chromium is not installed")
    assert chromium is not None
    report = tmp_path / "report.html"
    assert cli_main(["report", str(chain["clean"]), str(chain["train"]), str(chain["quant"]),
                     "-o", str(report), "--key", str(chain["public"])]) == 0
    text = report.read_text().lower()
    for loader in ("src=", "<link", "<script", "@import", "url(http", "href=\"http"):
        assert loader not in text  # self-contained: nothing is fetched at view time
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", f"--screenshot={shot}", "--window-size=1200,900", report.as_uri()],
        capture_output=True, text=True, timeout=90, check=False)
    assert shot.exists(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []  # no console messages at all, errors included
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []
    # The graph draws steps blue, datasets green and models orange: look for each.
    def present(test) -> bool:  # type: ignore[no-untyped-def]
        return any(test(rgb) for _, rgb in colors)

    assert present(lambda c: c[2] > 150 and c[0] < 120)  # blue step boxes
    assert present(lambda c: c[1] > 120 and c[0] < 100 and c[2] < 120)  # green datasets
    assert present(lambda c: c[0] > 180 and 100 < c[1] < 160 and c[2] < 90)  # orange models
    assert len(colors) > 50  # text, lines and shapes, not a blank page


def test_chain_json_output_names_the_root_steps_and_gaps(chain: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert cli_main(["verify", "--chain", str(chain["artifact"]), "--store", str(chain["store"]),
                     "--policy", str(chain["policy"]), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    # the old spelling still works for a release, and says what replaces it
    assert "deprecated: `slsa-dist verify --chain ARTIFACT` is now `slsa-dist verify chain " \
        "ARTIFACT`" in captured.err
    assert report["verified"] is True
    assert report["root"] == hashlib.sha256(b"w8").hexdigest()
    assert sorted(report["steps"]) == ["clean-1", "quantize-1", "train-1"]
    assert report["gaps"] == []
