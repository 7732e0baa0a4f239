"""A VSA names each input attestation by the bytes ``verify chain`` verified.

Before: a step's digest came from reading its bundle file again after verification,
so a file replaced in between (a shared store, a registry cache) was named in the VSA
although a different file had been checked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from slsa_dist.verify import _bundle, _chain
from slsa_dist.verify._chain import ChainPolicy, verify_chain
from slsa_dist.verify._store import Store


def test_the_vsa_input_digest_is_that_of_the_verified_bytes(
        chain: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    checked: dict[Path, str] = {}
    real = _bundle.check_bundle

    def check_then_replace(bundle: Path, **kwargs: object) -> _bundle.Result:
        result = real(bundle, **kwargs)  # type: ignore[arg-type]
        checked[Path(bundle)] = hashlib.sha256(Path(bundle).read_bytes()).hexdigest()
        Path(bundle).write_bytes(Path(bundle).read_bytes() + b"\n")  # swapped after the check
        return result

    monkeypatch.setattr(_chain, "check_bundle", check_then_replace)
    root = hashlib.sha256(chain["artifact"].read_bytes()).hexdigest()
    result = verify_chain(root, name="model-q.bin", store=Store(chain["store"]),
                          policy=ChainPolicy.load(chain["policy"]))
    assert result.ok, [g.reason for g in result.gaps]
    steps = result.unique_steps()
    assert len(steps) == 3
    for step in steps:
        assert step.bundle_sha256 == checked[step.bundle]
        assert step.bundle_sha256 != hashlib.sha256(step.bundle.read_bytes()).hexdigest()
