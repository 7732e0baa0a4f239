"""Item 20: OMS shard mode interoperates with model_signing both ways.

model_signing writes ``shard_size`` through a protobuf Struct (a float) and
labels shard digests ``sha256-sharded-<N>``; each tool failed the other's
shard-mode signature. Tested against the real model_signing package.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from slsa_dist.sign import _oms as oms
from slsa_dist.sign._loaders import load_signer, load_verifier

from support.background import signing_key
from support.models import sharded_model


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return sharded_model(tmp_path / "model")


def test_shard_mode_signatures_verify_both_ways(model: Path, tmp_path: Path) -> None:
    """#14 item 20: model_signing writes shard_size as a float and labels shard digests
    'sha256-sharded-<N>'; each tool verifies the other's shard-mode signature."""
    from model_signing import hashing, signing, verifying

    from slsa_dist.digest._manifest import digest_path

    key, public = signing_key(tmp_path)
    shard = 100_000
    theirs = tmp_path / "theirs.sig"
    config = signing.Config().use_elliptic_key_signer(private_key=key)
    config.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=shard))
    config.sign(model, theirs)
    predicate = json.loads(base64.b64decode(
        json.loads(theirs.read_text())["dsseEnvelope"]["payload"]))["predicate"]
    assert predicate["serialization"]["shard_size"] == float(shard)  # the form they write
    manifest = oms.verify_model(model, signature=theirs, key=load_verifier(public))
    assert manifest.method == "shards"
    assert len(manifest.resources) == 9  # parts of 200,000+i bytes: 2, 3, 3 shards; config

    ours = tmp_path / "ours.sig"
    oms.sign_model(model, signer=load_signer(key), signature=ours,
                   manifest=digest_path(model, method="shards", shard_size=shard))
    check = verifying.Config().use_elliptic_key_verifier(public_key=public)
    check.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=shard))
    check.verify(model, ours)  # raises on any mismatch
