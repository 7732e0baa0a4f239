"""The record ledger: RFC 9162 Merkle trees, streaming checks, inclusion proofs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from sigstore._internal import merkle as sigstore_merkle

from slsa_dist.errors import InputError
from slsa_dist.model._ledger import (
    Ledger,
    LedgerEntry,
    LedgerError,
    inclusion_proof_from,
    leaf_hash,
    merkle_root,
    order_key,
    prove,
    read_ledger,
    verify_inclusion,
    write_ledger,
)


def _sigstore_root(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """The root Sigstore's own Rekor proof checker computes (an independent RFC 9162)."""
    inner, border = sigstore_merkle._decomp_inclusion_proof(index, size)
    assert len(proof) == inner + border
    seed = sigstore_merkle._chain_inner(leaf, proof[:inner], index)
    return sigstore_merkle._chain_border_right(seed, proof[inner:])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 65, 100])
def test_roots_and_proofs_agree_with_sigstores_rekor_checker(size: int) -> None:
    lines = [f"line {i}".encode() for i in range(size)]
    root = merkle_root(lines)
    for index in range(size):
        proof = inclusion_proof_from(lines, index)
        assert _sigstore_root(leaf_hash(lines[index]), index, size, proof) == root
        assert verify_inclusion(leaf_hash(lines[index]), index, size, proof, root)


def test_a_proof_for_another_position_or_line_fails() -> None:
    lines = [f"rank {i}".encode() for i in range(11)]
    root = merkle_root(lines)
    proof = inclusion_proof_from(lines, 3)
    assert not verify_inclusion(leaf_hash(lines[5]), 3, 11, proof, root)  # another line
    assert not verify_inclusion(leaf_hash(lines[3]), 5, 11, proof, root)  # another position
    assert not verify_inclusion(leaf_hash(lines[3]), 3, 11, proof[:-1], root)  # cut short


def _entries(count: int) -> list[LedgerEntry]:
    return [LedgerEntry(f"rank/{r}", "application/test", {"rank": r, "completed": r % 3 != 0})
            for r in range(count)]


def _written(tmp_path: Path, count: int = 37) -> tuple[Path, Ledger]:
    path = tmp_path / "job.ledger.jsonl"
    return path, write_ledger(path, _entries(count))


def test_ranks_sort_by_number_and_kinds_by_name() -> None:
    names = ["rank/10", "node/b", "rank/9", "checkpoint/final", "node/a", "rank/100"]
    assert sorted(names, key=order_key) == ["checkpoint/final", "node/a", "node/b", "rank/9",
                                            "rank/10", "rank/100"]


def test_a_written_ledger_reads_back_whole_and_line_by_line(tmp_path: Path) -> None:
    path, ledger = _written(tmp_path)
    lines = path.read_bytes().splitlines()
    assert ledger.count == 37
    assert ledger.kinds == {"rank": 37}
    assert ledger.merkle_root == merkle_root(lines).hex()
    assert [line.record["rank"] for line in read_ledger(path, ledger)] == list(range(37))
    for rank in range(37):
        found = prove(path, ledger, f"rank/{rank}")
        assert found is not None
        assert found.record["rank"] == rank
        assert found.index == rank
    assert prove(path, ledger, "rank/37") is None
    assert prove(path, ledger, "node/x") is None


def test_writing_out_of_order_is_refused_and_leaves_no_ledger(tmp_path: Path) -> None:
    entries = _entries(3)
    with pytest.raises(InputError, match=r"strictly increasing order, found 'rank/1' after "
                                         r"'rank/2'"):
        write_ledger(tmp_path / "l.jsonl", [entries[0], entries[2], entries[1]])
    assert not (tmp_path / "l.jsonl").exists()


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("tamper", ["changed", "dropped", "reordered", "added", "cut"])
def test_any_change_to_the_lines_fails_the_whole_read(tmp_path: Path, tamper: str) -> None:
    path, ledger = _written(tmp_path)
    lines = path.read_bytes().splitlines()
    if tamper == "changed":
        lines[5] = lines[5].replace(b'"completed":true', b'"completed":false')
    elif tamper == "dropped":
        del lines[6]
    elif tamper == "reordered":
        lines[7], lines[8] = lines[8], lines[7]
    elif tamper == "added":
        lines.append(lines[-1].replace(b'"rank/36"', b'"rank/37"').replace(b'"rank":36',
                                                                           b'"rank":37'))
    _rewrite(path, lines)
    if tamper == "cut":
        path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(LedgerError, match="ledger"):
        list(read_ledger(path, ledger))


def test_a_changed_line_fails_its_inclusion_proof(tmp_path: Path) -> None:
    path, ledger = _written(tmp_path)
    lines = path.read_bytes().splitlines()
    lines[5] = lines[5].replace(b'"completed":true', b'"completed":null')
    _rewrite(path, lines)  # same length: the index's offsets still fit
    with pytest.raises(LedgerError, match="inclusion proof fails"):
        prove(path, ledger, "rank/5")
    assert prove(path, ledger, "rank/6") is not None  # the other lines still prove


def test_a_lying_index_never_yields_another_ranks_record(tmp_path: Path) -> None:
    path, ledger = _written(tmp_path)
    index = path.with_name(path.name + ".idx")
    raw = bytearray(index.read_bytes())
    header = 8 + 16
    offsets = list(struct.unpack_from(f"<{ledger.count + 1}Q", raw, header))
    offsets[3], offsets[4] = offsets[9], offsets[10]  # position 3 now reads rank 9's line
    struct.pack_into(f"<{ledger.count + 1}Q", raw, header, *offsets)
    index.write_bytes(bytes(raw))
    outcomes = set()
    for rank in range(ledger.count):
        try:
            found = prove(path, ledger, f"rank/{rank}")
        except LedgerError:
            outcomes.add("refused")
            continue
        if found is None:
            outcomes.add("absent")  # verify then fails unless the statement lists it missing
            continue
        assert found.record["rank"] == rank  # a proven line is always the rank asked for
        assert path.read_bytes().splitlines()[found.index] == found.line
        outcomes.add("proven")
    assert "refused" in outcomes or "absent" in outcomes


def test_a_proof_from_another_ledger_fails(tmp_path: Path) -> None:
    path, ledger = _written(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_path = other / path.name
    write_ledger(other_path, [LedgerEntry(e.name, e.media_type, {**e.record, "x": 1})
                              for e in _entries(37)])
    with pytest.raises(LedgerError, match="inclusion proof fails"):
        prove(other_path, ledger, "rank/4")  # its own proof, checked against OUR root


def test_the_fast_writer_is_byte_for_byte_canonical_json(tmp_path: Path) -> None:
    """orjson writes the coordinator's ledgers: the same bytes canonical JSON would."""
    from slsa_dist._internal import canonical

    tricky = {"z": 1, "a": ["\x00\x1f\x7f", "é", "\u2028\u2029", "😀", '"\\/'],
              "nested": {"b": [True, False, None], "a": -(2**53 - 1)}, "": "", "ü": 2**53 - 1}
    entries = [LedgerEntry(f"rank/{r}", "application/test", {**tricky, "rank": r})
               for r in range(3)]
    fast = write_ledger(tmp_path / "fast.jsonl", entries, floats_refused=True)
    checked = write_ledger(tmp_path / "checked.jsonl", entries)
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "checked.jsonl").read_bytes()
    assert fast.merkle_root == checked.merkle_root
    first = (tmp_path / "fast.jsonl").read_bytes().splitlines()[0]
    assert first == canonical.dumps_bytes({"mediaType": "application/test", "name": "rank/0",
                                           "record": {**tricky, "rank": 0}})


def test_a_descriptor_whose_digest_is_not_hex_is_refused() -> None:
    """The ledger's digest names its copy in a store (``<sha256>.ledger.jsonl``): a
    descriptor whose digest is anything but 64 hex digits never becomes a Ledger."""
    descriptor = {"uri": "j.ledger.jsonl", "digest": {"sha256": "../../escape"},
                  "annotations": {"merkleRoot": "00" * 32, "count": 1}}
    with pytest.raises(LedgerError, match=r"ledger\.digest: expected"):
        Ledger.from_descriptor(descriptor)
    descriptor["digest"] = {"sha256": "ab" * 32}
    assert Ledger.from_descriptor(descriptor).stored_name == "ab" * 32 + ".ledger.jsonl"
