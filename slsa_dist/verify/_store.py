"""An attestation store: bundles of every step, found by the digest of what they produced.

Layout (plain files, easy to sync to object storage)::

    STORE/bundles/<sha256 of the bundle file>.intoto.jsonl
    STORE/bundles/<sha256 of the ledger>.ledger.jsonl (and .idx)   a large job's records
    STORE/index/sha256/<digest>      one bundle file name per line

A bundle is indexed under every subject digest, every per-file digest of its
artifacts (a checkpoint directory's files, a data step's shards) and every
checkpoint folder's root (as its signed files reproduce it), so a dependency
recorded as one shard, or a run resumed from an intermediate checkpoint, still
finds the step that wrote it. Only
envelopes that verify against the keys given to :meth:`Store.add` are
indexed (an unsigned envelope appended to a signed bundle indexes nothing).
A large job's record ledger (ADR 0011) is copied in beside its bundle, named by
its digest, once every line checked against the signed statement; ``verify``
finds it there, and its checkpoints' files are indexed like inline ones.

The store is untrusted all the same: anyone who can write it can edit the
index. :meth:`Store.find` follows only index entries that name a bundle file
inside the store (``<64 hex>.intoto.jsonl``), and ``verify chain`` accepts a
producer only when its *verified* statement names the digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from slsa_dist.digest._manifest import Manifest
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._ledger import LedgerRecords
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._records import Checkpoint
from slsa_dist.model._statement import Statement
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, verify_envelope
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Verifier

__all__ = ["Store", "checkpoint_roots"]

# The only index entries followed: a bundle file directly inside STORE/bundles.
_BUNDLE_NAME = re.compile(r"[0-9a-f]{64}\.intoto\.jsonl")


class Store:
    """A directory of bundles indexed by subject digest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _index(self, digest: str) -> Path:
        if len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise InputError(f"digest: expected 64 lowercase hex digits, found {digest!r}")
        return self.root / "index" / "sha256" / digest

    def add(self, bundle: str | os.PathLike[str], *, keys: Sequence[Verifier],
            warnings: list[str] | None = None) -> tuple[str, list[str]]:
        """Copy ``bundle`` (and its record ledger) in and index what its envelopes signed by
        ``keys`` produced. What could not be indexed is appended to ``warnings``.

        Returns its stored name and the digests indexed.

        Raises:
            InputError: the bundle cannot be read, or no envelope verifies with ``keys``.
        """
        source = Path(bundle)
        envelopes = []
        for envelope in read_bundle(source):
            try:
                verify_envelope(envelope, keys, payload_type=IN_TOTO_PAYLOAD_TYPE)
            except VerificationError:
                continue  # signed by nobody we were told to trust: indexes nothing
            envelopes.append(envelope)
        if not envelopes:
            raise InputError(f"store add {source}: expected an envelope signed by one of "
                             f"{len(keys)} key(s), found none that verifies")
        name = hashlib.sha256(source.read_bytes()).hexdigest() + ".intoto.jsonl"
        (self.root / "bundles").mkdir(parents=True, exist_ok=True)
        digests: list[str] = []
        for envelope in envelopes:
            try:
                statement = Statement.from_dict(json.loads(envelope.payload))
            except (ValueError, InputError):
                continue  # not a statement we can index; verification will say more
            digests += [s.digest["sha256"] for s in statement.subjects if "sha256" in s.digest]
            try:
                provenance: Provenance | None = Provenance.from_statement(statement)
            except InputError:
                provenance = None  # not a provenance: its subjects are indexed all the same
            checkpoints = [] if provenance is None else \
                self._with_ledger(provenance, source, warnings).checkpoints()
            for checkpoint in checkpoints:
                if checkpoint.serialization.get("hash_type") == "sha256":
                    digests += [str(r.get("digest")) for r in checkpoint.resources]
                digests += sorted(checkpoint_roots(checkpoint))  # a folder a later run loads
        target = self.root / "bundles" / name  # once its ledger, if any, checked out
        if not target.exists():
            shutil.copyfile(source, target)
        for digest in dict.fromkeys(digests):
            index = self._index(digest)
            index.parent.mkdir(parents=True, exist_ok=True)
            known = index.read_text().split() if index.exists() else []
            if name not in known:
                with index.open("a") as handle:
                    handle.write(name + "\n")
        return name, list(dict.fromkeys(digests))

    def _with_ledger(self, provenance: Provenance, bundle: Path,
                     warnings: list[str] | None) -> Provenance:
        """The provenance with its ledger attached, copied into the store; as it was when
        it has none, or its ledger is not beside the bundle (said in ``warnings``)."""
        ledger = provenance.ledger()
        stored = None if ledger is None else ledger.carry(
            bundle, self.root / "bundles", what="store add", warnings=warnings,
            without=f"stored without it, so its {ledger.count} records (and the "
                    "checkpoints' files) are neither indexed nor checked by verify chain")
        return provenance if stored is None or ledger is None else \
            provenance.with_records(LedgerRecords(stored, ledger))

    def find(self, digest: str) -> list[Path]:
        """Bundles that claim to have produced ``digest`` (unverified)."""
        index = self._index(digest)
        if not index.exists():
            return []
        return [self.root / "bundles" / name for name in index.read_text().split()
                if _BUNDLE_NAME.fullmatch(name) and (self.root / "bundles" / name).is_file()]


def checkpoint_roots(checkpoint: Checkpoint) -> set[str]:
    """The digests a signed checkpoint record's files reproduce (its folder's OMS root, by
    which a later run that loads the folder names it), computed from the files, never
    taken from the record's own ``root_digest``."""
    if not checkpoint.serialization:
        return set()
    try:
        manifest = Manifest.from_oms(name=checkpoint.name,
                                     serialization=checkpoint.serialization,
                                     resources=list(checkpoint.resources))
    except InputError:
        return set()
    return set(manifest.subject_digests) if manifest.algorithm == "sha256" else set()
