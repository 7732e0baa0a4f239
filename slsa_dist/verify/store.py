"""An attestation store: bundles of every step, found by the digest of what they produced.

Layout (plain files, easy to sync to object storage)::

    STORE/bundles/<sha256 of the bundle file>.intoto.jsonl
    STORE/index/sha256/<digest>      one bundle file name per line

A bundle is indexed under every subject digest and every per-file digest of
its artifacts (a checkpoint directory's files, a data step's shards), so a
dependency recorded as one shard still finds the step that wrote it. The
store is untrusted: nothing here verifies; ``verify --chain`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from slsa_dist.errors import InputError
from slsa_dist.provenance import Provenance, Statement
from slsa_dist.sign.dsse import read_bundle

__all__ = ["Store"]


class Store:
    """A directory of bundles indexed by subject digest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _index(self, digest: str) -> Path:
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise InputError(f"digest: expected 64 lowercase hex digits, found {digest!r}")
        return self.root / "index" / "sha256" / digest

    def add(self, bundle: str | os.PathLike[str]) -> tuple[str, list[str]]:
        """Copy ``bundle`` in and index it. Returns its stored name and the digests."""
        source = Path(bundle)
        envelopes = read_bundle(source)
        name = hashlib.sha256(source.read_bytes()).hexdigest() + ".intoto.jsonl"
        target = self.root / "bundles" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(source, target)
        digests: list[str] = []
        for envelope in envelopes:
            try:
                statement = Statement.from_dict(json.loads(envelope.payload))
            except (ValueError, InputError):
                continue  # not a statement we can index; verification will say more
            digests += [s.digest["sha256"] for s in statement.subjects if "sha256" in s.digest]
            try:
                checkpoints = Provenance.from_statement(statement).checkpoints()
            except InputError:
                checkpoints = []  # not a provenance: its subjects are indexed all the same
            for checkpoint in checkpoints:
                if checkpoint.serialization.get("hash_type") == "sha256":
                    digests += [str(r.get("digest")) for r in checkpoint.resources]
        for digest in dict.fromkeys(digests):
            index = self._index(digest)
            index.parent.mkdir(parents=True, exist_ok=True)
            known = index.read_text().split() if index.exists() else []
            if name not in known:
                with index.open("a") as handle:
                    handle.write(name + "\n")
        return name, list(dict.fromkeys(digests))

    def find(self, digest: str) -> list[Path]:
        """Bundles that claim to have produced ``digest`` (unverified)."""
        index = self._index(digest)
        if not index.exists():
            return []
        return [self.root / "bundles" / name for name in index.read_text().split()
                if (self.root / "bundles" / name).exists()]
