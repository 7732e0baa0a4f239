"""Item 7: tenant strings printed by verify, inspect and report --text cannot forge output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.model._records import MEDIA_COMPLETENESS, MEDIA_NODE, Completeness, NodeRecord
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor, record_descriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer

# A subject name that clears the line and prints a fake verdict in green.
EVIL = "model\r\x1b[2K\x1b[32mPASS  signature: all good\x1b[0m\nverified\x07"


def _bundle(tmp_path: Path) -> tuple[Path, Path]:
    signer = Signer.generate()
    builder = ProvenanceBuilder(invocation_id="job\x1b]0;owned\x07")
    builder.add_subject(ResourceDescriptor(name=EVIL, digest={"sha256": hashlib.sha256().hexdigest()}))
    builder.add_byproduct(record_descriptor(
        name="completeness", media_type=MEDIA_COMPLETENESS,
        record=Completeness(complete=False, missing_files=(f"final/{EVIL}",)).to_dict()))
    builder.add_byproduct(record_descriptor(
        name="node/n", media_type=MEDIA_NODE,
        record=NodeRecord(node="n\x1b[31m", hostname="host\rX").to_dict()))
    bundle = tmp_path / "job.intoto.jsonl"
    write_bundle(bundle, [sign_statement(builder.build(), [signer])])
    public = tmp_path / "k.pub"
    public.write_bytes(signer.public().public_pem())
    return bundle, public


def _assert_clean(text: str) -> None:
    for line in text.splitlines():
        assert not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in line), repr(line)


def test_verify_escapes_a_subject_name_built_to_forge_a_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public = _bundle(tmp_path)
    assert cli_main(["verify", str(bundle), "--key", str(public)]) == 1
    out = capsys.readouterr()
    _assert_clean(out.out)
    _assert_clean(out.err)
    assert "\\x1b[32mPASS  signature" in out.out  # shown escaped, not dropped
    assert out.out.splitlines()[-1] == "NOT verified"


def test_inspect_escapes_names_hosts_and_ids(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public = _bundle(tmp_path)
    assert cli_main(["inspect", str(bundle), "--key", str(public)]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    assert "\\x1b[32mPASS" in out
