"""Item 1: the attestation store is untrusted, and the chain must not trust it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.model._statement import ProvenanceBuilder, ResourceDescriptor
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer

TAMPERED = b"backdoored weights"


def verify_chain(chain: dict[str, Path], artifact: Path, store: Path | None = None) -> int:
    return cli_main(["verify", "chain", str(artifact), "--store", str(store or chain["store"]),
                     "--policy", str(chain["policy"])])


def test_a_forged_index_entry_does_not_lend_a_genuine_bundle_to_a_tampered_model(
        chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = tmp_path / "evil.bin"
    tampered.write_bytes(TAMPERED)
    # any genuinely signed bundle in the store will do for the attacker
    genuine = hashlib.sha256(chain["quant"].read_bytes()).hexdigest() + ".intoto.jsonl"
    index = chain["store"] / "index" / "sha256" / hashlib.sha256(TAMPERED).hexdigest()
    index.write_text(genuine + "\n")
    assert verify_chain(chain, tampered) == 1
    assert "does not name this digest" in capsys.readouterr().out


def test_an_unsigned_envelope_appended_to_a_signed_bundle_is_not_indexed(
        chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = tmp_path / "evil.bin"
    tampered.write_bytes(TAMPERED)
    builder = ProvenanceBuilder(invocation_id="evil")
    builder.add_subject(ResourceDescriptor(name="evil.bin",
                                           digest={"sha256": hashlib.sha256(TAMPERED).hexdigest()}))
    forged = sign_statement(builder.build(), [Signer.generate()])  # not a trusted key
    bundle = tmp_path / "appended.intoto.jsonl"
    write_bundle(bundle, [*read_bundle(chain["quant"]), forged])
    store = tmp_path / "store2"
    cli_main(["store", "add", str(bundle), "--store", str(store), "--key", str(chain["public"])])
    capsys.readouterr()
    assert cli_main(["store", "find", hashlib.sha256(TAMPERED).hexdigest(),
                     "--store", str(store)]) == 1
    assert verify_chain(chain, tampered, store) == 1


def test_an_index_entry_naming_a_file_outside_the_store_is_not_followed(
        chain: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tampered = tmp_path / "evil.bin"
    tampered.write_bytes(TAMPERED)
    outside = tmp_path / "outside.intoto.jsonl"
    outside.write_bytes(chain["quant"].read_bytes())
    index = chain["store"] / "index" / "sha256" / hashlib.sha256(TAMPERED).hexdigest()
    index.write_text("../../outside.intoto.jsonl\n")
    assert cli_main(["store", "find", hashlib.sha256(TAMPERED).hexdigest(),
                     "--store", str(chain["store"])]) == 1
    assert verify_chain(chain, tampered) == 1
