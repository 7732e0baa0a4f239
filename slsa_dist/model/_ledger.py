"""The record ledger: a job's per-rank, per-node and per-checkpoint records beside its bundle.

A large job's records do not fit in a signed statement that anyone wants to
download (65,536 ranks: hundreds of MB). They go to a ledger instead, and the
statement carries one small descriptor that binds the ledger three ways:

* ``digest.sha256``: the whole file, so ``verify`` checks every byte;
* ``annotations.merkleRoot``: an RFC 9162 (Certificate Transparency v2) Merkle
  tree hash over the lines, so ``verify --rank N`` checks ONE line with an
  inclusion proof of ~16 hashes, without reading the rest;
* ``annotations.count`` and per-kind counts, so a dropped or added line fails
  even before the hashes are compared.

The ledger is JSON Lines: one canonical JSON object per line,
``{"mediaType": ..., "name": "rank/5", "record": {...}}``, sorted strictly by
name (kind, then number or name), so a reordered line fails and a rank's
line can be found by binary search. The kinds, in order: ``checkpoint/<name>``,
``input/<n>`` (each shard any rank read, once: rank lines refer to it by
number), ``node/<id>``, ``rank/<r>``. An index file (``.idx``) holds each
line's offset and the tree's complete subtrees; it is not signed and need not
be: everything read from it is checked against the signed root.

>>> root = merkle_root([b"a", b"b", b"c"])
>>> proof = inclusion_proof_from([b"a", b"b", b"c"], 2)
>>> verify_inclusion(leaf_hash(b"c"), 2, 3, proof, root)
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from slsa_dist._internal import canonical
from slsa_dist.errors import InputError, VerificationError
from slsa_dist.model._digests import check_digest
from slsa_dist.model._records import LEDGER_KINDS, MEDIA_INPUT, MEDIA_RANK, resolve_inputs

__all__ = [
    "LEDGER_ABOVE",
    "LEDGER_NAME",
    "MEDIA_LEDGER",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerLine",
    "LedgerRecords",
    "Prover",
    "inclusion_proof_from",
    "leaf_hash",
    "merkle_root",
    "order_key",
    "prove",
    "read_ledger",
    "verify_inclusion",
    "write_ledger",
]

# Above this many ranks a coordinator writes its per-rank, per-node and per-checkpoint
# records to a ledger and the statement stays small; at or below it they are inline,
# and one file says everything.
LEDGER_ABOVE = 256
MEDIA_LEDGER = "application/vnd.slsa-dist.ledger.v1+jsonl"
LEDGER_NAME = "ledger"
# A line is found by its name near the start: canonical JSON sorts "mediaType" and
# "name" before "record", so a short prefix names it without parsing the record.
_NAME = re.compile(rb'^\{"mediaType":"[^"]*","name":"((?:[^"\\]|\\.)*)",')
_PREFIX = 512
_MAGIC = b"SLSALDX1"
_HASH = 32


class LedgerError(VerificationError):
    """The ledger does not match what the signed statement binds it to."""


def leaf_hash(line: bytes) -> bytes:
    """RFC 9162 2.1.1: ``SHA-256(0x00 || line)`` (the line without its newline)."""
    return hashlib.sha256(b"\x00" + line).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class _Root:
    """The Merkle tree hash of leaves added one at a time, in O(log n) memory."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash) of complete subtrees
        self.count = 0

    def add(self, leaf: bytes) -> None:
        height, digest = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            digest, height = _node(left, digest), height + 1
        self._stack.append((height, digest))
        self.count += 1

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty tree
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = _node(left, digest)
        return digest


def merkle_root(lines: Iterable[bytes]) -> bytes:
    """The RFC 9162 Merkle tree hash of ``lines`` (each a leaf)."""
    tree = _Root()
    for line in lines:
        tree.add(leaf_hash(line))
    return tree.root()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (RFC 9162's k)."""
    return 1 << ((size - 1).bit_length() - 1)


def _path(index: int, start: int, end: int, subtree: Any) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[start:end]), with ``subtree(a, b)`` the hash of D[a:b]."""
    if end - start <= 1:
        return []
    k = _split(end - start)
    if index < start + k:
        return [*_path(index, start, start + k, subtree), subtree(start + k, end)]
    return [*_path(index, start + k, end, subtree), subtree(start, start + k)]


def _subtree(start: int, end: int, complete: Callable[[int, int], bytes]) -> bytes:
    """MTH(D[start:end]) from the hashes of complete subtrees: ``complete(height, i)`` is
    the hash of leaves ``i * 2**height`` .. ``(i + 1) * 2**height`` (as the ledger's
    index stores them). RFC 9162 splits every range into such subtrees."""
    size = end - start
    if size == 0:
        return hashlib.sha256(b"").digest()  # RFC 9162: the hash of an empty tree
    if size & (size - 1) == 0 and start % size == 0:
        return complete(size.bit_length() - 1, start // size)
    k = _split(size)
    return _node(_subtree(start, start + k, complete), _subtree(start + k, end, complete))


def inclusion_proof_from(lines: Sequence[bytes], index: int) -> list[bytes]:
    """An inclusion proof computed from every line (for tests and small ledgers)."""
    leaves = [leaf_hash(line) for line in lines]
    return _path(index, 0, len(leaves),
                 lambda a, b: merkle_root(lines[a:b]) if b - a > 1 else leaves[a])


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: whether ``leaf`` is entry ``index`` of the tree of ``size`` leaves
    whose hash is ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            digest = _node(sibling, digest)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            digest = _node(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and digest == root


# Kinds whose lines are numbered: they sort by number (``rank/10`` after ``rank/9``).
_NUMBERED = ("input", "rank")


def order_key(name: str) -> tuple[str, int, str]:
    """How ledger lines sort: by kind, then number (``rank/10`` after ``rank/9``), then
    name."""
    kind, _, rest = name.partition("/")
    if kind in _NUMBERED and rest.isdigit():
        return (kind, int(rest), "")
    return (kind, -1, rest)


@dataclass(frozen=True)
class LedgerEntry:
    """One record for the ledger: a byproduct's name, media type and record, given as a
    mapping or as its canonical JSON already written (``raw``)."""

    name: str
    media_type: str
    record: Mapping[str, Any] | None = None
    raw: bytes | None = None

    def mapping(self) -> Mapping[str, Any]:
        """The record as a mapping (parsed from ``raw`` when that is what it holds)."""
        if self.record is not None:
            return self.record
        assert self.raw is not None, "a ledger entry holds a record or its JSON"
        value: Mapping[str, Any] = orjson.loads(self.raw)
        return value

    def line(self, *, floats_refused: bool) -> bytes:
        """The ledger line: canonical JSON of {mediaType, name, record}."""
        if floats_refused and self.raw is not None:  # keys sort mediaType < name < record
            return (b'{"mediaType":' + orjson.dumps(self.media_type) + b',"name":'
                    + orjson.dumps(self.name) + b',"record":' + self.raw + b"}")
        dump = _dumps_float_free if floats_refused else canonical.dumps_bytes
        return dump({"mediaType": self.media_type, "name": self.name,
                     "record": dict(self.mapping())})


@dataclass(frozen=True, kw_only=True)
class Ledger:
    """What the signed statement says of its ledger (the descriptor's fields)."""

    uri: str
    sha256: str
    merkle_root: str
    count: int
    size: int
    kinds: Mapping[str, int] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)

    def annotations(self) -> dict[str, Any]:
        return {"count": self.count, "merkleRoot": self.merkle_root, "size": self.size,
                "kinds": dict(self.kinds), "summary": dict(self.summary),
                "treeAlgorithm": "rfc9162-sha256"}

    @classmethod
    def from_descriptor(cls, data: Mapping[str, Any]) -> Ledger:
        annotations = data.get("annotations") or {}
        digest = (data.get("digest") or {}).get("sha256")
        root = annotations.get("merkleRoot")
        count = annotations.get("count")
        uri = data.get("uri")
        if not (isinstance(digest, str) and isinstance(root, str) and isinstance(count, int)
                and isinstance(uri, str)):
            raise LedgerError("ledger descriptor: expected uri, digest.sha256, "
                              "annotations.merkleRoot and annotations.count, found "
                              f"{sorted(data)} / {sorted(annotations)}")
        try:  # the one digest rule (a statement's descriptors were held to it already)
            check_digest({"sha256": digest}, "ledger")
        except InputError as exc:
            raise LedgerError(str(exc)) from None
        if annotations.get("treeAlgorithm", "rfc9162-sha256") != "rfc9162-sha256":
            raise LedgerError(f"ledger: expected tree algorithm rfc9162-sha256, found "
                              f"{annotations.get('treeAlgorithm')!r}")
        kinds = annotations.get("kinds") or {}
        return cls(uri=uri, sha256=digest, merkle_root=root, count=count,
                   size=int(annotations.get("size") or 0),
                   kinds={str(k): int(v) for k, v in kinds.items() if isinstance(v, int)},
                   summary=dict(annotations.get("summary") or {}))

    def locate(self, bundle: str | os.PathLike[str]) -> Path:
        """The ledger file beside ``bundle``: named as its uri (a bare file name), or, where
        there is none, by its digest (:attr:`stored_name`, as an attestation store keeps
        it). The path named by the uri when neither exists."""
        if "/" in self.uri or "\\" in self.uri or self.uri in ("", ".", ".."):
            raise LedgerError(f"ledger uri: expected a file name beside the bundle, found "
                              f"{self.uri!r}")
        beside = Path(bundle).parent / self.uri
        stored = beside.with_name(self.stored_name)
        return stored if not beside.exists() and stored.exists() else beside

    @property
    def stored_name(self) -> str:
        """The ledger's name by content, ``<sha256>.ledger.jsonl``: where many jobs' bundles
        share a folder (an attestation store), their ledgers cannot clash. The digest
        is 64 lowercase hex digits (:meth:`from_descriptor`, ``write_ledger``)."""
        return f"{self.sha256}.ledger.jsonl"

    def carry(self, bundle: str | os.PathLike[str], folder: str | os.PathLike[str], *,
              what: str, warnings: list[str] | None, without: str) -> Path | None:
        """Copy the ledger beside ``bundle`` and its index into ``folder`` under
        :attr:`stored_name` (for ``what``: "store add", "push"), checking every line
        against what the statement signs as it is copied, in one pass; the copy is kept
        only when all of it matches. Returns its path; None when there is no ledger
        beside the bundle, said in ``warnings`` with ``without`` (what that costs).

        Raises:
            InputError: the ledger does not match the statement (nothing is copied).
        """
        source = self.locate(bundle)
        if not source.exists():
            if warnings is not None:
                warnings.append(f"{bundle}: record ledger {self.uri} not found beside it: "
                                f"{without}")
            return None
        target = Path(folder) / self.stored_name
        tmp, index_tmp = (path.with_name(path.name + ".tmp")
                          for path in (target, _index_path(target)))
        try:
            with tmp.open("wb") as out:
                for line in read_ledger(source, self):
                    out.write(line.line + b"\n")
            shutil.copyfile(_index_path(source), index_tmp)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            index_tmp.unlink(missing_ok=True)
            if isinstance(exc, LedgerError):
                raise InputError(f"{what} {bundle}: {exc}") from None
            raise
        os.replace(index_tmp, _index_path(target))
        os.replace(tmp, target)
        return target


def _index_path(path: Path) -> Path:
    return path.with_name(path.name + ".idx")


def write_ledger(path: str | os.PathLike[str], entries: Iterable[LedgerEntry],
                 summary: Mapping[str, Any] | None = None, *,
                 floats_refused: bool = False) -> Ledger:
    """Write ``entries`` (sorted strictly by :func:`order_key` of their names) as a ledger
    and its index, atomically; one entry is in memory at a time (the index keeps 32
    bytes per line per tree level, about 64 bytes per line).

    Lines are canonical JSON; ``floats_refused`` says the records cannot hold a float
    (the coordinator's: every JSON a sender sent was parsed with floats refused), which
    spares the second pass that looks for one.
    """
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    digest = hashlib.sha256()
    offsets: list[int] = []
    levels: list[list[bytes]] = [[]]
    kinds: dict[str, int] = {}
    previous: tuple[str, int, str] | None = None
    previous_name = ""
    offset = 0
    with tmp.open("wb") as out:
        for entry in entries:
            key = order_key(entry.name)
            if previous is not None and key <= previous:
                raise InputError(f"ledger: expected names in strictly increasing order, "
                                 f"found {entry.name!r} after {previous_name!r}")
            previous, previous_name = key, entry.name
            line = entry.line(floats_refused=floats_refused)
            out.write(line + b"\n")
            digest.update(line + b"\n")
            offsets.append(offset)
            offset += len(line) + 1
            kind = entry.name.partition("/")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            levels[0].append(leaf_hash(line))
            height = 0
            while len(levels[height]) % 2 == 0:  # a subtree just completed: keep its hash
                if len(levels) == height + 1:
                    levels.append([])
                levels[height + 1].append(_node(*levels[height][-2:]))
                height += 1
        out.flush()
        os.fsync(out.fileno())
    offsets.append(offset)
    count = len(offsets) - 1
    _write_index(_index_path(target), offsets, levels)
    os.replace(tmp, target)
    root = _subtree(0, count, lambda height, i: levels[height][i]).hex()
    return Ledger(uri=target.name, sha256=digest.hexdigest(), merkle_root=root, count=count,
                  size=offset, kinds=kinds, summary=dict(summary or {}))


def _dumps_float_free(value: Any) -> bytes:
    """Canonical JSON (as ``canonical.dumps_bytes``: sorted keys, compact, UTF-8) of a
    value known to hold no float, by orjson."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _write_index(path: Path, offsets: list[int], levels: list[list[bytes]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(_MAGIC + struct.pack("<QQ", len(offsets) - 1, len(levels)))
        out.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        for level in levels:
            out.write(struct.pack("<Q", len(level)))
            out.write(b"".join(level))
    os.replace(tmp, path)


@dataclass(frozen=True)
class LedgerLine:
    """One line read back: where it stands, its bytes, and what it says."""

    index: int
    line: bytes
    name: str
    media_type: str
    record: Mapping[str, Any]


def _parse(line: bytes, index: int) -> LedgerLine:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LedgerError(f"ledger line {index + 1}: expected a JSON object, found {exc}") \
            from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) \
            or not isinstance(value.get("mediaType"), str) \
            or not isinstance(value.get("record"), dict):
        raise LedgerError(f"ledger line {index + 1}: expected an object with name, mediaType "
                          f"and record, found {line[:80]!r}")
    return LedgerLine(index, line, value["name"], value["mediaType"], value["record"])


def read_ledger(path: str | os.PathLike[str], expected: Ledger) -> Iterator[LedgerLine]:
    """Every line of the ledger at ``path``, checked as it streams; raises
    :class:`LedgerError` at the first line out of order, and after the last line when
    the count, digest, Merkle root or per-kind counts differ from ``expected``.

    A consumer acts on what it read only once the iteration finished without error.
    """
    digest = hashlib.sha256()
    tree = _Root()
    kinds: dict[str, int] = {}
    previous: tuple[str, int, str] | None = None
    previous_name = ""
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 -- closed by the with below
    except OSError as exc:
        raise InputError(f"ledger: expected a readable file at {path}, found {exc.strerror}") \
            from None
    with handle:
        for index, raw in enumerate(handle):
            digest.update(raw)
            if not raw.endswith(b"\n"):
                raise LedgerError(f"ledger line {index + 1}: expected a line ending in a "
                                  "newline, found the file cut short")
            entry = _parse(raw[:-1], index)
            key = order_key(entry.name)
            if previous is not None and key <= previous:
                raise LedgerError(f"ledger line {index + 1}: expected a name after "
                                  f"{previous_name!r}, found {entry.name!r} (reordered or "
                                  "repeated)")
            previous, previous_name = key, entry.name
            kind = entry.name.partition("/")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            tree.add(leaf_hash(entry.line))
            yield entry
    problems = []
    if tree.count != expected.count:
        problems.append(f"{expected.count} line(s) signed, found {tree.count}")
    if expected.kinds and kinds != dict(expected.kinds):
        problems.append(f"lines per kind {dict(sorted(expected.kinds.items()))} signed, found "
                        f"{dict(sorted(kinds.items()))}")
    if digest.hexdigest() != expected.sha256:
        problems.append(f"sha256 {expected.sha256[:16]}... signed, found "
                        f"{digest.hexdigest()[:16]}...")
    if tree.root().hex() != expected.merkle_root:
        problems.append(f"Merkle root {expected.merkle_root[:16]}... signed, found "
                        f"{tree.root().hex()[:16]}...")
    if problems:
        raise LedgerError("ledger: expected what the statement signs, found it changed: "
                          + "; ".join(problems))


class _Index:
    """The untrusted index: line offsets and complete-subtree hashes, read by seeking."""

    def __init__(self, handle: BinaryIO, count: int) -> None:
        self._handle = handle
        header = handle.read(len(_MAGIC) + 16)
        if len(header) < len(_MAGIC) + 16 or not header.startswith(_MAGIC):
            raise LedgerError("ledger index: expected an slsa-dist ledger index, found "
                              "another file")
        stored, height = struct.unpack("<QQ", header[len(_MAGIC):])
        if stored != count:
            raise LedgerError(f"ledger index: expected {count} line(s) as signed, found "
                              f"{stored}")
        self.count = count
        self._offsets_at = len(_MAGIC) + 16
        self._levels: list[tuple[int, int]] = []  # (file position, length) per level
        position = self._offsets_at + 8 * (count + 1)
        for _ in range(height):
            handle.seek(position)
            (length,) = struct.unpack("<Q", handle.read(8))
            self._levels.append((position + 8, length))
            position += 8 + _HASH * length

    def offset(self, index: int) -> int:
        self._handle.seek(self._offsets_at + 8 * index)
        (value,) = struct.unpack("<Q", self._handle.read(8))
        return int(value)

    def subtree(self, start: int, end: int) -> bytes:
        return _subtree(start, end, self._complete)

    def _complete(self, height: int, index: int) -> bytes:
        if height < len(self._levels):
            position, length = self._levels[height]
            if index < length:
                self._handle.seek(position + _HASH * index)
                value = self._handle.read(_HASH)
                if len(value) == _HASH:
                    return value
        raise LedgerError("ledger index: expected the tree's hashes, found it cut short")


def _line_at(ledger: BinaryIO, index: _Index, position: int) -> bytes:
    start, end = index.offset(position), index.offset(position + 1)
    if not 0 <= start < end or end - start > 1 << 30:
        raise LedgerError(f"ledger index: expected line {position + 1}'s offsets, found "
                          f"{start}..{end}")
    ledger.seek(start)
    raw = ledger.read(end - start)
    if not raw.endswith(b"\n"):
        raise LedgerError(f"ledger line {position + 1}: expected a whole line at the "
                          "indexed offset, found none")
    return raw[:-1]


def _name_of(line: bytes) -> str:
    found = _NAME.match(line[:_PREFIX])
    if found is None:
        return _parse(line, -1).name
    return str(json.loads(b'"' + found.group(1) + b'"'))


def prove(path: str | os.PathLike[str], expected: Ledger, name: str) -> LedgerLine | None:
    """The line named ``name``, proven to be in the signed ledger by an inclusion proof
    from the index; reads O(log n) lines and hashes, never the whole ledger. None when
    the ledger has no such line: its neighbours where it would stand, each proven into
    the signed root, sort around it (a proof of absence).

    Raises:
        LedgerError: the line found, the index or the proof does not match the signed root.
    """
    with Prover(path, expected) as prover:
        return prover.prove(name)


class Prover:
    """Lines of a ledger proven one at a time (:func:`prove`), its files opened once."""

    def __init__(self, path: str | os.PathLike[str], expected: Ledger) -> None:
        ledger_path = Path(path)
        try:
            self._ledger = ledger_path.open("rb")
        except OSError as exc:
            raise InputError(f"ledger: expected {ledger_path}, found {exc.strerror}") from None
        try:
            raw_index = _index_path(ledger_path).open("rb")
        except OSError as exc:
            self._ledger.close()
            raise InputError(f"ledger: expected its index {exc.filename}, found "
                             f"{exc.strerror}") from None
        self._raw_index = raw_index
        self._expected = expected
        try:
            self._index = _Index(raw_index, expected.count)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Prover:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ledger.close()
        self._raw_index.close()

    def prove(self, name: str) -> LedgerLine | None:
        """The line named ``name``, proven into the signed root; None when absent."""
        target = order_key(name)
        count = self._expected.count
        low, high = 0, count
        while low < high:  # the first line whose name sorts at or after ``name``
            middle = (low + high) // 2
            if order_key(_name_of(_line_at(self._ledger, self._index, middle))) < target:
                low = middle + 1
            else:
                high = middle
        entry = self._proven(low, name) if low < count else None
        if entry is not None and entry.name == name:
            return entry
        # Absent only when proven so: the signed lines on either side of where it would
        # stand (each proven into the root) sort strictly around it. A line renamed or
        # changed there fails its proof instead of passing for an absence.
        before = self._proven(low - 1, name) if low > 0 else None
        if (before is not None and order_key(before.name) >= target) \
                or (entry is not None and order_key(entry.name) <= target):
            raise LedgerError(f"ledger: expected the signed lines around where {name!r} "
                              f"would stand (line {low + 1}) to sort around it, found "
                              f"{before.name if before else None!r} and "
                              f"{entry.name if entry else None!r}")
        return None

    def _proven(self, position: int, name: str) -> LedgerLine:
        """The line at ``position``, proven into the signed root (looked up for ``name``)."""
        count = self._expected.count
        line = _line_at(self._ledger, self._index, position)
        entry = _parse(line, position)
        proof = _path(position, 0, count, self._index.subtree)
        if not verify_inclusion(leaf_hash(line), position, count, proof,
                                bytes.fromhex(self._expected.merkle_root)):
            shown = repr(entry.name) if entry.name == name else \
                f"{entry.name!r}, read to look up {name!r}"
            raise LedgerError(f"ledger: expected line {position + 1} ({shown}) to be "
                              f"included in the signed Merkle root "
                              f"{self._expected.merkle_root[:16]}..., found the inclusion "
                              "proof fails")
        return entry


def _resolved(record: Mapping[str, Any], inputs: Callable[[int], Mapping[str, Any] | None],
              count: int) -> dict[str, Any]:
    """A ledger's rank record with its shards' input references resolved."""
    try:
        return resolve_inputs(record, lambda ref: inputs(ref) if 0 <= ref < count else None)
    except ValueError as exc:
        raise LedgerError(f"ledger: {exc}") from None


@dataclass(frozen=True)
class LedgerRecords:
    """A provenance's records from its ledger file (a :class:`~slsa_dist.model.RecordSource`).

    Every read checks what it reads against ``expected``, the ledger the statement
    signs: :meth:`records` streams the whole file (its digest and Merkle root again),
    :meth:`record` proves one line by inclusion (a few lines read, never the whole).
    """

    path: Path
    expected: Ledger

    def records(self, media_type: str) -> list[Mapping[str, Any]]:
        kind = LEDGER_KINDS.get(media_type)
        if kind is None or not self.expected.kinds.get(kind, 1):
            return []
        found: list[Mapping[str, Any]] = []
        inputs: list[Mapping[str, Any]] = []  # input lines come before rank lines
        for line in read_ledger(self.path, self.expected):
            if line.media_type == MEDIA_INPUT and media_type == MEDIA_RANK:
                inputs.append(line.record)
            elif line.media_type == media_type:
                found.append(_resolved(line.record, inputs.__getitem__, len(inputs))
                             if media_type == MEDIA_RANK else line.record)
        return found

    def record(self, name: str, media_type: str) -> Mapping[str, Any] | None:
        with Prover(self.path, self.expected) as prover:
            line = prover.prove(name)
            if line is None or line.media_type != media_type:
                return None
            if media_type != MEDIA_RANK:
                return line.record

            def proven_input(ref: int) -> Mapping[str, Any] | None:
                entry = prover.prove(f"input/{ref}")
                return entry.record if entry is not None \
                    and entry.media_type == MEDIA_INPUT else None

            return _resolved(line.record, proven_input, self.expected.kinds.get("input", 0))
