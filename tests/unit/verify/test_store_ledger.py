"""A large job's record ledger goes into the attestation store with its bundle (issue 17):
``verify chain --store`` then checks its records, and a checkpoint's files are found by
their digests as for a small job's inline records."""

from __future__ import annotations

from pathlib import Path

import pytest

from slsa_dist.errors import InputError
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import check_bundle
from slsa_dist.verify._store import Store

from support.sim import sha, signed_ledger_job


def test_the_ledger_is_stored_and_its_checkpoint_files_indexed(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle = signed_ledger_job(tmp_path / "job", signer)
    store = Store(tmp_path / "store")
    warnings: list[str] = []
    name, digests = store.add(bundle, keys=[signer.public()], warnings=warnings)
    assert warnings == []
    # A file of the checkpoint (recorded only in the ledger) finds its producer.
    assert sha("ckpt__1_0.distcp") in digests
    assert store.find(sha("ckpt__1_0.distcp")) == [tmp_path / "store" / "bundles" / name]
    # The ledger sits beside the stored bundle by its digest, with its index; verify finds
    # it there and checks every record.
    stored = list((tmp_path / "store" / "bundles").glob("*.ledger.jsonl*"))
    assert len(stored) == 2
    result = check_bundle(tmp_path / "store" / "bundles" / name, keys=[signer.public()])
    assert result.ok, result.checks
    assert any(c.name == "ledger" for c in result.checks)
    assert not any("not beside" in n for n in result.notes)


def test_a_bundle_without_its_ledger_is_stored_and_said_so(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle = signed_ledger_job(tmp_path / "job", signer)
    (tmp_path / "job" / "big.ledger.jsonl").unlink()
    warnings: list[str] = []
    _, digests = Store(tmp_path / "store").add(bundle, keys=[signer.public()],
                                               warnings=warnings)
    assert sha("ckpt__1_0.distcp") not in digests
    (warning,) = warnings
    assert "record ledger big.ledger.jsonl not found beside it" in warning


def test_a_changed_ledger_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle = signed_ledger_job(tmp_path / "job", signer)
    ledger = tmp_path / "job" / "big.ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes().replace(b'"samples":10', b'"samples":11'))
    with pytest.raises(InputError, match="store add .*ledger: expected what the statement "
                                         "signs"):
        Store(tmp_path / "store").add(bundle, keys=[signer.public()])
    assert not list((tmp_path / "store").rglob("*.jsonl*"))  # no copy, no scrap
