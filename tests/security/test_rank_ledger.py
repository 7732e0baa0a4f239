"""Issue 17: a job's records in a ledger beside the bundle, bound by digest and Merkle root.

A real coordinator (gRPC on loopback) with ``ledger_above=0`` writes every rank,
node and checkpoint record to ``<job>.ledger.jsonl``; the statement carries only
the ledger's descriptor. Verify reads the ledger whole; any changed, dropped,
reordered or added line fails it, and ``verify --rank N`` proves one record.
Each shard is written once, as an input line the rank lines refer to.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slsa_dist._internal import canonical
from slsa_dist.cli import main
from slsa_dist.collect._agent import Agent, NodeIdentity, RankIdentity
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.model._ledger import MEDIA_LEDGER, LedgerEntry, write_ledger
from slsa_dist.sign._dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope, write_bundle
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import VerificationFailed, check_bundle, verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete

pytestmark = pytest.mark.grpc

WORLD = 6
INPUTS = 2  # train-0.tar and train-1.tar, each read by three ranks
LINES = 1 + INPUTS + 2 + WORLD  # a checkpoint, the inputs, two nodes, the ranks


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Signer]:
    """A 6-rank job on 2 nodes with a checkpoint every rank wrote a file of."""
    tmp = tmp_path_factory.mktemp("ledger")
    signer = Signer.generate()
    checkpoint = tmp / "ckpt" / "final"
    checkpoint.mkdir(parents=True)
    with CoordinatorThread(job_id="big", signer=signer, out_dir=tmp / "out", world_size=WORLD,
                           settle=0.1, ledger_above=0) as server:
        agents = [Agent(coordinator=server.address, job_id="big", spool_dir=tmp / "spool",
                        identity=NodeIdentity(node_id=f"n{i}", hostname=f"h{i}", node_rank=i))
                  for i in range(2)]
        for rank in range(WORLD):
            agent = Agent(coordinator=server.address, job_id="big", spool_dir=tmp / "spool",
                          identity=RankIdentity(rank=rank, world_size=WORLD,
                                                node_id=f"n{rank // 3}"))
            data = f"weights of rank {rank}".encode()
            (checkpoint / f"__{rank}_0.distcp").write_bytes(data)
            agent.record_shard(f"train-{rank % 2}.tar",
                               {"sha256": hashlib.sha256(f"s{rank % 2}".encode()).hexdigest()},
                               samples=64)
            agent.record_file("final", f"__{rank}_0.distcp",
                              {"sha256": hashlib.sha256(data).hexdigest()}, size=len(data),
                              role="final")
            agent.complete()
            agents.append(agent)
        for i, node in enumerate(agents[:2]):
            node.record_attempt(attempt=0, run_id="r", ranks=range(3 * i, 3 * i + 3),
                                state="SUCCEEDED", exit_codes=dict.fromkeys(range(3 * i, 3 * i + 3), 0))
        assert all(agent.close(30) for agent in agents)
        result = server.wait_finalized(30)
        assert server.coordinator is not None
        # Sealed rank records were kept in a file beside the journal, not in memory...
        assert all(r.sealed is not None and not isinstance(r.sealed, bytes)
                   for r in server.coordinator.state._state.ranks.values())
    # ... and the file goes with the coordinator.
    assert not list((tmp / "out").glob("*.records"))
    public = tmp / "signing.pub"
    public.write_bytes(signer.public().public_pem())
    return result.bundle, public, signer


def _statement(bundle: Path) -> dict[str, object]:
    return json.loads(read_bundle(bundle)[0].payload)  # type: ignore[no-any-return]


def _ledger(bundle: Path) -> Path:
    return bundle.parent / "big.ledger.jsonl"


def test_the_statement_carries_the_ledger_not_the_records(
        job: tuple[Path, Path, Signer]) -> None:
    bundle, _, _ = job
    byproducts = _statement(bundle)["predicate"]["runDetails"]["byproducts"]  # type: ignore[index]
    names = sorted(b["name"] for b in byproducts)
    assert names == ["completeness", "ledger"]
    (ledger,) = [b for b in byproducts if b["name"] == "ledger"]
    assert ledger["mediaType"] == MEDIA_LEDGER
    assert ledger["uri"] == "big.ledger.jsonl"
    assert ledger["annotations"]["count"] == LINES
    assert ledger["annotations"]["summary"]["completedRanks"] == WORLD
    names_in_ledger = [json.loads(line)["name"]
                       for line in _ledger(bundle).read_text().splitlines()]
    assert names_in_ledger == ["checkpoint/final", "input/0", "input/1", "node/n0", "node/n1",
                               *(f"rank/{r}" for r in range(WORLD))]


def test_each_shard_and_file_digest_is_stored_once(job: tuple[Path, Path, Signer]) -> None:
    """Issue 17: a shard's digest is written once (an input line), not in every rank that
    read it; a file's digest once (its checkpoint record), not again in its rank's."""
    bundle, _, _ = job
    lines = [json.loads(line) for line in _ledger(bundle).read_text().splitlines()]
    inputs = [line["record"] for line in lines if line["name"].startswith("input/")]
    assert [i["name"] for i in inputs] == ["train-0.tar", "train-1.tar"]
    assert inputs[0]["digest"] == {"sha256": hashlib.sha256(b"s0").hexdigest()}
    ranks = [line["record"] for line in lines if line["name"].startswith("rank/")]
    for rank in ranks:
        assert rank["formatVersion"] == 3
        (shard,) = rank["shards"]
        assert shard["input"] == rank["rank"] % 2
        assert "digest" not in shard
        assert "name" not in shard
        (written,) = rank["files"]
        assert written == {"artifact": "final", "path": f"__{rank['rank']}_0.distcp"}
    text = _ledger(bundle).read_text()
    assert text.count(hashlib.sha256(b"s1").hexdigest()) == 1
    assert text.count(hashlib.sha256(b"weights of rank 5").hexdigest()) == 1


def test_records_read_from_the_ledger_name_their_shards_again(
        job: tuple[Path, Path, Signer]) -> None:
    bundle, _, signer = job
    provenance = check_bundle(bundle, keys=[signer.public()]).provenance
    assert provenance is not None
    for record in (*provenance.rank_records(), provenance.rank_record(3)):
        assert record is not None
        (shard,) = record.shards or ()
        assert shard.name == f"train-{record.rank % 2}.tar"
        assert shard.digest == {"sha256": hashlib.sha256(f"s{record.rank % 2}".encode())
                                .hexdigest()}
        assert shard.samples == 64


def test_verify_reads_the_ledger_and_matches_the_checkpoint_from_it(
        job: tuple[Path, Path, Signer]) -> None:
    bundle, _public, signer = job
    result = check_bundle(bundle, keys=[signer.public()], policy=AllOf(
        Artifacts(bundle.parent.parent / "ckpt" / "final"), Complete()))
    checks, provenance = result.checks, result.provenance
    assert result.ok, checks
    by_name = {c.name: c for c in checks}
    assert "Merkle root" in by_name["ledger"].detail
    assert f"{WORLD} file(s) by name" in next(c.detail for c in checks
                                               if c.name.startswith("artifact"))
    assert by_name["completeness"].detail == f"all {WORLD} ranks reported"
    assert provenance is not None
    assert len(provenance.rank_records()) == WORLD
    assert {n.node for n in provenance.node_records()} == {"n0", "n1"}


def _tampered(bundle: Path, tmp_path: Path, how: str) -> Path:
    """A copy of the bundle and its ledger, the ledger changed ``how``."""
    copy = tmp_path / bundle.name
    copy.write_bytes(bundle.read_bytes())
    lines = _ledger(bundle).read_bytes().splitlines()
    if how == "changed":  # rank 4 now reads another shard
        lines[-2] = lines[-2].replace(b'"samples":64', b'"samples":65')
    elif how == "dropped":
        del lines[-3]
    elif how == "reordered":
        lines[-3], lines[-2] = lines[-2], lines[-3]
    elif how == "added":
        extra = json.loads(lines[-1])
        extra["name"], extra["record"]["rank"] = f"rank/{WORLD}", WORLD
        lines.append(json.dumps(extra, sort_keys=True, separators=(",", ":")).encode())
    (tmp_path / "big.ledger.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return copy


@pytest.mark.parametrize("how", ["changed", "dropped", "reordered", "added"])
def test_a_tampered_ledger_fails_verify(job: tuple[Path, Path, Signer], tmp_path: Path,
                                        how: str) -> None:
    bundle, _, signer = job
    copy = _tampered(bundle, tmp_path, how)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(copy, keys=[signer.public()])
    (ledger,) = [c for c in failed.value.checks if c.name == "ledger"]
    assert not ledger.ok
    assert "ledger" in ledger.detail


def test_a_missing_ledger_fails_naming_it(job: tuple[Path, Path, Signer],
                                         tmp_path: Path) -> None:
    """Issue 25 item 6: verify fails closed. The ranks that completed cannot be counted
    without the ledger: completeness fails, naming it (it used to pass, with a warning)."""
    bundle, _, signer = job
    copy = tmp_path / bundle.name
    copy.write_bytes(bundle.read_bytes())
    result = check_bundle(copy, keys=[signer.public()])
    assert not result.ok
    (completeness,) = [c for c in result.checks if c.name == "completeness"]
    assert not completeness.ok
    assert "big.ledger.jsonl" in completeness.detail
    assert "not beside the bundle" in completeness.detail
    with pytest.raises(VerificationFailed, match="big.ledger.jsonl"):
        verify_bundle(copy, keys=[signer.public()])


def test_verify_rank_proves_one_record(job: tuple[Path, Path, Signer],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, _ = job
    assert main(["verify", str(bundle), "--key", str(public), "--rank", "4"]) == 0
    out = capsys.readouterr().out
    assert "PASS  rank 4: completed; attempt 0 on n1: SUCCEEDED" in out
    assert "by an inclusion proof into the signed ledger" in out
    assert "not read in full (--rank)" in out
    assert "PASS  ledger" not in out  # the ledger was not read whole


def test_verify_rank_fails_for_a_changed_record(job: tuple[Path, Path, Signer], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, _ = job
    copy = _tampered(bundle, tmp_path, "changed")
    (tmp_path / "big.ledger.jsonl.idx").write_bytes(
        (_ledger(bundle).parent / "big.ledger.jsonl.idx").read_bytes())
    assert main(["verify", str(copy), "--key", str(public), "--rank", "4"]) == 1
    assert "FAIL  rank 4: ledger: expected line 10 ('rank/4') to be included" in \
        capsys.readouterr().out
    assert main(["verify", str(copy), "--key", str(public), "--rank", "3"]) == 0


def test_verify_rank_fails_for_a_changed_input_it_refers_to(
        job: tuple[Path, Path, Signer], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The input line a rank's shard names is proven too: a swapped digest there fails
    ``--rank`` for every rank that read it, and no other."""
    bundle, public, _ = job
    copy = tmp_path / bundle.name
    copy.write_bytes(bundle.read_bytes())
    lines = _ledger(bundle).read_bytes().splitlines()
    assert b'"name":"input/1"' in lines[2]
    lines[2] = lines[2].replace(hashlib.sha256(b"s1").hexdigest().encode(),
                                hashlib.sha256(b"evil").hexdigest().encode())
    (tmp_path / "big.ledger.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    (tmp_path / "big.ledger.jsonl.idx").write_bytes(
        (_ledger(bundle).parent / "big.ledger.jsonl.idx").read_bytes())
    assert main(["verify", str(copy), "--key", str(public), "--rank", "3"]) == 1
    assert "FAIL  rank 3: ledger: expected line 3 ('input/1') to be included" in \
        capsys.readouterr().out
    assert main(["verify", str(copy), "--key", str(public), "--rank", "2"]) == 0


def test_verify_rank_fails_when_the_index_hides_a_rank(
        job: tuple[Path, Path, Signer], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, _ = job
    copy = tmp_path / bundle.name
    copy.write_bytes(bundle.read_bytes())
    (tmp_path / "big.ledger.jsonl").write_bytes(_ledger(bundle).read_bytes())
    raw = bytearray((bundle.parent / "big.ledger.jsonl.idx").read_bytes())
    offsets = list(struct.unpack_from(f"<{LINES + 1}Q", raw, 24))
    four = LINES - WORLD + 4
    offsets[four] = offsets[four - 1]  # rank 4's line now "is" rank 3's
    struct.pack_into(f"<{LINES + 1}Q", raw, 24, *offsets)
    (tmp_path / "big.ledger.jsonl.idx").write_bytes(bytes(raw))
    assert main(["verify", str(copy), "--key", str(public), "--rank", "4"]) == 1
    assert "FAIL  rank 4" in capsys.readouterr().out


def test_verify_rank_outside_the_job_is_a_usage_error(job: tuple[Path, Path, Signer],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bundle, public, _ = job
    assert main(["verify", str(bundle), "--key", str(public), "--rank", str(WORLD)]) == 2
    assert f"rank: expected a rank in 0..{WORLD - 1} (the job's world size is {WORLD}), " \
        f"found {WORLD}" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["ranks", "completedRanks", "nodes"])
def test_a_signed_summary_the_ledger_does_not_bear_out_fails(
        job: tuple[Path, Path, Signer], tmp_path: Path, field: str) -> None:
    """The statement's ledger summary is re-counted from the ledger, not taken on trust
    (a coordinator bug, or a key holder's forgery, with the real ledger beside it)."""
    bundle, _, signer = job
    statement = _statement(bundle)
    (ledger,) = [b for b in statement["predicate"]["runDetails"]["byproducts"]  # type: ignore[index]
                 if b["name"] == "ledger"]
    ledger["annotations"]["summary"][field] += 1
    envelope = sign_envelope(canonical.dumps_bytes(statement),
                             payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    forged = write_bundle(tmp_path / bundle.name, [envelope])
    (tmp_path / "big.ledger.jsonl").write_bytes(_ledger(bundle).read_bytes())
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(forged, keys=[signer.public()])
    (check,) = [c for c in failed.value.checks if c.name == "ledger"]
    assert f"{field} {ledger['annotations']['summary'][field]} signed vs" in check.detail


def _reforged(bundle: Path, tmp_path: Path, signer: Signer,
              change: Callable[[list[dict[str, Any]]], None]) -> Path:
    """The bundle and ledger as the key holder could sign them: the ledger's lines
    changed, written and bound again (digest, Merkle root, counts), the statement
    re-signed. What verify must still catch is what no signature can vouch for."""
    lines = [json.loads(line) for line in _ledger(bundle).read_text().splitlines()]
    change(lines)
    written = write_ledger(tmp_path / "big.ledger.jsonl",
                           [LedgerEntry(line["name"], line["mediaType"], line["record"])
                            for line in lines])
    statement = _statement(bundle)
    byproducts = statement["predicate"]["runDetails"]["byproducts"]  # type: ignore[index]
    (ledger,) = [b for b in byproducts if b["name"] == "ledger"]
    ledger["digest"] = {"sha256": written.sha256}
    ledger["annotations"] = {**written.annotations(),
                             "summary": ledger["annotations"]["summary"]}
    envelope = sign_envelope(canonical.dumps_bytes(statement),
                             payload_type=IN_TOTO_PAYLOAD_TYPE, signers=[signer])
    return write_bundle(tmp_path / bundle.name, [envelope])


def test_an_input_the_statement_does_not_declare_fails(
        job: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    """Every shard a rank read is a resolved dependency of the signed statement: an input
    line naming other data (the ledger bound and signed all the same) fails verify."""
    bundle, _, signer = job

    def swap(lines: list[dict[str, Any]]) -> None:
        lines[2]["record"]["digest"] = {"sha256": hashlib.sha256(b"evil").hexdigest()}

    forged = _reforged(bundle, tmp_path, signer, swap)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(forged, keys=[signer.public()])
    (check,) = [c for c in failed.value.checks if c.name == "ledger"]
    assert "ledger input/1: expected the digest of a resolved dependency" in check.detail


def test_a_reference_to_no_input_fails(job: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    bundle, _, signer = job

    def dangle(lines: list[dict[str, Any]]) -> None:
        lines[-1]["record"]["shards"][0]["input"] = INPUTS

    forged = _reforged(bundle, tmp_path, signer, dangle)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(forged, keys=[signer.public()])
    (check,) = [c for c in failed.value.checks if c.name == "ledger"]
    assert f"ledger rank/{WORLD - 1}: expected shards to refer to input lines 0..1, found 2" \
        in check.detail


def test_a_file_left_to_a_checkpoint_that_does_not_list_it_fails(
        job: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    """A rank line names a file without its digest, leaving it to the checkpoint's line:
    verify checks that line lists the file, so a re-signed ledger cannot give a rank a
    file whose digest nothing records."""
    bundle, _, signer = job

    def unlisted(lines: list[dict[str, Any]]) -> None:
        lines[-1]["record"]["files"][0]["path"] = "__99_0.distcp"

    forged = _reforged(bundle, tmp_path, signer, unlisted)
    with pytest.raises(VerificationFailed) as failed:
        verify_bundle(forged, keys=[signer.public()])
    (check,) = [c for c in failed.value.checks if c.name == "ledger"]
    assert f"ledger rank/{WORLD - 1}: expected file '__99_0.distcp' of checkpoint 'final'" \
        in check.detail
