"""The slsa-dist command: exit codes, one-line errors, vectors good and bad."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from slsa_dist.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_good_bundle_verifies_with_artifact(capsys, vectors: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "verify", vectors / "good.intoto.jsonl", "--key",
                       vectors / "good.pub", "--artifact", vectors / "model.bin")
    assert code == 0, out
    assert "PASS  signature" in out
    assert "PASS  artifact" in out
    assert "PASS  completeness: all 2 ranks reported" in out


def test_two_signatures_verify_with_either_key(capsys, vectors: Path) -> None:  # type: ignore[no-untyped-def]
    for key in ("good.pub", "untrusted.pub"):
        assert run(capsys, "verify", vectors / "good-two-signatures.intoto.jsonl",
                   "--key", vectors / key)[0] == 0


def test_json_output_lists_every_check(capsys, vectors: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "verify", vectors / "good.intoto.jsonl", "--key",
                       vectors / "good.pub", "--builder-id", "https://wrong.example/builder",
                       "--json")
    report = json.loads(out)
    assert code == 1
    assert report["verified"] is False
    failed = [c for c in report["checks"] if not c["ok"]]
    assert failed == [{"check": "builder.id", "ok": False,
                       "detail": "expected 'https://wrong.example/builder', found "
                                 "'https://slsa-dist.dev/builders/coordinator/v1'"}]


@pytest.mark.parametrize(("vector", "message"), [
    ("signed-by-untrusted-key", "expected 1 valid signature(s) from trusted keys"),
    ("payload-swapped-after-signing", "expected 1 valid signature(s) from trusted keys"),
    ("wrong-payload-type", "expected 'application/vnd.in-toto+json', found 'application/json'"),
    ("unknown-predicate-type", "expected 'https://slsa.dev/provenance/v1' or "
                               "'https://slsa.dev/verification_summary/v1', found "
                               "'https://example.com/unknown/v1'"),
    ("missing-subject", "statement.subject: expected a non-empty list"),
    ("malformed-json-payload", "expected a JSON in-toto Statement, found malformed JSON"),
    ("missing-rank", "ranks without a completed report: 2"),
])
def test_negative_vectors_fail_verification(capsys, vectors: Path, vector: str,  # type: ignore[no-untyped-def]
                                            message: str) -> None:
    code, out, _ = run(capsys, "verify", vectors / f"{vector}.intoto.jsonl", "--key",
                         vectors / "good.pub")
    assert code == 1
    assert message in out
    assert "NOT verified" in out


@pytest.mark.parametrize(("vector", "message"), [
    ("bad-base64-payload", "envelope.payload: expected base64, found '!!not base64!!'"),
    ("truncated-line", "envelope: expected JSON, found malformed text"),
    ("empty-signature-list", "envelope.signatures: expected a non-empty list"),
])
def test_unreadable_bundles_are_input_errors(capsys, vectors: Path, vector: str,  # type: ignore[no-untyped-def]
                                             message: str) -> None:
    code, _, err = run(capsys, "verify", vectors / f"{vector}.intoto.jsonl", "--key",
                       vectors / "good.pub")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_changed_artifact_is_rejected(capsys, vectors: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model.bin"
    model.write_bytes(b"tampered model bytes\n")
    code, out, _ = run(capsys, "verify", vectors / "good.intoto.jsonl", "--key",
                       vectors / "good.pub", "--artifact", model)
    assert code == 1
    assert "FAIL  artifact" in out
    assert "expected sha256" in out


@pytest.mark.parametrize(("args", "message"), [
    (["verify", "{v}/nope.jsonl", "--key", "{v}/good.pub"], "expected a file at"),
    (["verify", "{v}/good.intoto.jsonl", "--key", "{v}/nope.pub"], "expected a PEM file at"),
    (["verify", "{v}/good.intoto.jsonl", "--key", "{v}/model.bin"], "expected a PEM public key"),
    (["verify", "{v}/good.intoto.jsonl", "--key", "{v}/good.pub", "--artifact", "{v}/nope"],
     "expected a file or directory at"),
    (["digest", "{v}/nope"], "found nothing at that path"),
])
def test_usage_errors_exit_2_with_one_line(capsys, vectors: Path, args: list[str],  # type: ignore[no-untyped-def]
                                           message: str) -> None:
    code, _, err = run(capsys, *[a.format(v=vectors) for a in args])
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_rsa_key_is_refused_as_wrong_type(capsys, vectors: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path = tmp_path / "rsa.pub"
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    code, _, err = run(capsys, "verify", vectors / "good.intoto.jsonl", "--key", path)
    assert code == 2
    assert "expected an ECDSA P-256, P-384 or Ed25519 public key, found" in err


def test_keygen_writes_private_key_0600_and_never_prints_it(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "keygen", "--out", tmp_path / "keys")
    assert code == 0
    private = tmp_path / "keys" / "signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in out
    assert run(capsys, "keygen", "--out", tmp_path / "keys")[0] == 2  # never overwritten


def test_inspect_summarizes(capsys, vectors: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "inspect", vectors / "good.intoto.jsonl", "--key",
                       vectors / "good.pub")
    assert code == 0
    assert "(signature verified)" in out
    assert "job:         job-vector-1" in out
    assert "ranks:       2/2 completed" in out
    assert "dataset shard-00000.npz" in out


def test_digest_json_has_root_and_resources(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f").write_bytes(b"abc")
    code, out, err = run(capsys, "digest", tmp_path / "m", "--json", "--no-cache")
    doc = json.loads(out)
    assert code == 0
    assert doc["resources"] == [{"name": "f", "algorithm": "sha256",
                                 "digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
    assert len(doc["rootDigest"]["sha256"]) == 64
    assert err == ""  # no progress bar when piped


def test_real_process_exit_codes(vectors: Path, tmp_path: Path) -> None:
    exe = shutil.which("slsa-dist", path=str(Path(sys.executable).parent)) or ""
    assert exe, "the console script is installed"
    good = subprocess.run([exe, "verify", str(vectors / "good.intoto.jsonl"), "--key",
                           str(vectors / "good.pub")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert good.returncode == 0
    bad = subprocess.run([exe, "verify", "--key"], capture_output=True, text=True, timeout=60,
                         check=False, env={**os.environ})
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
