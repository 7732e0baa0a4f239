"""The merge contract, scenario by scenario, on the in-memory cluster."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.collect._merge import EvidenceVerdict, Limits
from slsa_dist.errors import SenderError
from slsa_dist.model._records import MEDIA_CHECKPOINT, MEDIA_COMPLETENESS, MEDIA_NODE, MEDIA_RANK

from support.sim import Cluster, done, sha, shard, written


@contextlib.contextmanager
def refused(code: str, match: str) -> Iterator[None]:
    """The block raises SenderError with this gRPC status name and message."""
    with pytest.raises(SenderError, match=match) as info:
        yield
    assert info.value.code == code


def test_4_ranks_complete_gives_one_complete_provenance() -> None:
    cluster = Cluster(world_size=4)
    cluster.run_all()
    provenance = cluster.finalize("all-ranks-complete")
    assert [s.name for s in provenance.statement.subjects] == ["ckpt"]
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["complete"] is True
    assert completeness["finalizedBy"] == "all-ranks-complete"
    assert sorted(r["rank"] for r in provenance.records(MEDIA_RANK)) == [0, 1, 2, 3]
    assert provenance.world_size == 4


def test_shards_read_by_many_ranks_are_one_dependency_each() -> None:
    cluster = Cluster(world_size=4)
    cluster.run_all(shards_per_rank=3)
    deps = cluster.finalize().dependencies
    assert sorted(d.name or "" for d in deps) == ["shard-0", "shard-1", "shard-2", "shard-3"]
    assert {d.digest["sha256"] for d in deps} == {sha(f"shard-{i}") for i in range(4)}


def test_byproducts_say_which_rank_read_which_shard() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(shard("a", samples=5), shard("a", samples=7, epoch=1), done())
    cluster.rank(1).report(shard("b", samples=3), done())
    ranks = {r["rank"]: r for r in cluster.finalize().records(MEDIA_RANK)}
    assert [(s["name"], s["samples"], s["epochs"]) for s in ranks[0]["shards"]] == [("a", 12, [[0, 1]])]
    assert [s["name"] for s in ranks[1]["shards"]] == ["b"]


def test_checkpoint_subject_digest_is_the_manifest_root_of_its_files() -> None:
    from slsa_dist.digest._manifest import Manifest, Resource

    cluster = Cluster(world_size=2)
    cluster.run_all()
    provenance = cluster.finalize()
    expected = Manifest(name="ckpt", algorithm="sha256", method="files", resources=tuple(sorted(
        (Resource(path=f"__{r}_0.distcp", digest=sha(f"ckpt__{r}_0.distcp"), algorithm="sha256")
         for r in range(2)), key=Resource.sort_key)))
    assert provenance.statement.subjects[0].digest == {"sha256": expected.root_digest}
    (record,) = provenance.records(MEDIA_CHECKPOINT)
    assert record["writtenBy"] == {"__0_0.distcp": 0, "__1_0.distcp": 1}


def test_the_final_artifact_is_the_subject_and_earlier_checkpoints_are_byproducts() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(written("step-1", "a"), written("step-2", "a"),
                           written("final", "model.pt", role=pb.FINAL), done())
    provenance = cluster.finalize()
    assert [s.name for s in provenance.statement.subjects] == ["final"]
    roles = {r["name"]: r["role"] for r in provenance.records(MEDIA_CHECKPOINT)}
    assert roles == {"step-1": "intermediate", "step-2": "intermediate", "final": "final"}


def test_without_a_final_artifact_the_last_checkpoint_is_the_subject() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(written("step-1", "a"), written("step-2", "a"), done())
    assert [s.name for s in cluster.finalize().statement.subjects] == ["step-2"]


# --- registration ------------------------------------------------------------------------


def test_unknown_job_is_not_found() -> None:
    cluster = Cluster(world_size=2)
    with refused("NOT_FOUND", "job id: expected 'job-1', found 'other'"):
        cluster.state.register_rank(pb.RegisterRankRequest(job_id="other", rank=0, world_size=2),
                                    cluster.tick())


def test_8_ranks_rank_8_is_out_of_range() -> None:
    with refused("OUT_OF_RANGE", "rank: expected 0..7, found 8"):
        Cluster(world_size=8).rank(8, world_size=8)


def test_world_size_disagreeing_is_refused() -> None:
    cluster = Cluster(world_size=4)
    cluster.rank(0, world_size=4)
    with refused("FAILED_PRECONDITION", "world size: expected 4, found 8"):
        cluster.rank(1, world_size=8)


def test_same_rank_attempt_twice_with_same_identity_is_the_same_registration() -> None:
    cluster = Cluster(world_size=2)
    first = cluster.rank(0)
    first.report(shard("a"))
    again = cluster.state.register_rank(pb.RegisterRankRequest(
        job_id="job-1", rank=0, world_size=2, node_id="node-0", run_id="run", pid=100),
        cluster.tick())
    assert (again.sender, again.next_sequence, again.new) == (first.key, 2, False)


def test_same_rank_attempt_from_another_node_is_refused() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0, node="node-0")
    with refused("ALREADY_EXISTS", r"registered as \(node, run id, pid\) \('node-0'"):
        cluster.rank(0, node="node-1")


def test_a_restart_registers_a_new_attempt_and_both_are_recorded() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0, attempt=0).report(done(exit_code=1))
    cluster.rank(0, attempt=1, pid=200).report(done())
    (rank,) = cluster.finalize().records(MEDIA_RANK)
    assert [(a["attempt"], a["exitCode"]) for a in rank["attempts"]] == [(0, 1), (1, 0)]
    assert rank["completed"] is True


def _reads(name: str, indices: list[str], epochs: list[int]) -> list[pb.Event]:
    return [pb.Event(shard=pb.ShardConsumed(
        name=name, digest={"sha256": sha(name)}, samples=4, epoch=epoch, index_digest=index,
        sampler_json='{"num_replicas":2,"seed":7}')) for index, epoch in zip(indices, epochs,
                                                                             strict=True)]


def test_a_completed_rank_reopened_by_a_new_attempt_keeps_everything_it_recorded() -> None:
    """A rank's record is written when its last sender completes (and its details let
    go of); a later attempt takes it up again from that record, losing nothing."""
    cluster = Cluster(world_size=1)
    first = cluster.rank(0, attempt=0)
    first.report(*_reads("a", ["i1", "i2"], [0, 2]), written("ckpt", "__0_0.distcp"),
                 pb.Event(inventory=pb.Inventory(json='{"gpu":"none"}')),
                 pb.Event(annotation=pb.Annotation(key="lr", value_json='"3e-4"')),
                 done(exit_code=1))
    rank = cluster.state._state.ranks[0]
    assert rank.sealed is not None
    assert not rank.shards  # written, details let go of
    cluster.rank(0, attempt=1, pid=200).report(*_reads("a", ["i3"], [1]),
                                                *_reads("b", ["j1"], [0]), done())
    (record,) = cluster.finalize().records(MEDIA_RANK)
    chain = b""
    for index in ("i1", "i2", "i3"):  # the index digests in order, across both attempts
        chain = hashlib.sha256(chain + index.encode()).digest()
    shards = {s["name"]: s for s in record["shards"]}
    assert shards["a"]["indexDigest"] == chain.hex()
    assert shards["a"]["samples"] == 12
    assert shards["a"]["reads"] == 3
    assert shards["a"]["epochs"] == [[0, 2]]  # 0, 2, then 1: one span
    assert shards["a"]["sampler"] == {"num_replicas": 2, "seed": 7}
    assert shards["b"]["epochs"] == [[0, 0]]
    assert [f["path"] for f in record["files"]] == ["__0_0.distcp"]
    assert record["inventory"] == {"gpu": "none"}
    assert record["reported"] == {"lr": "3e-4"}
    assert [(a["attempt"], a["exitCode"]) for a in record["attempts"]] == [(0, 1), (1, 0)]
    assert record["completed"] is True
    assert record["events"] == 9


def test_a_sealed_record_round_trips_through_the_details_it_restores() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(*_reads("a", ["i1", "i2"], [0, 3]), *_reads("b", [""], [1]),
                           written("ckpt", "__0_0.distcp"),
                           pb.Event(annotation=pb.Annotation(key="k", value_json="[1,2]")),
                           done())
    rank = cluster.state._state.ranks[0]
    assert rank.sealed is not None
    sealed = cluster.state._state.records.get(rank.sealed)
    cluster.state._state.unseal(rank)
    assert rank.sealed is None
    assert set(rank.shards) == {sha("a"), sha("b")}
    assert orjson.dumps(cluster.state._state.rank_record(rank, True, refs=True),
                        option=orjson.OPT_SORT_KEYS) == sealed


def _ledger_lines(path: Path) -> dict[str, dict[str, Any]]:
    return {line["name"]: line["record"]
            for line in map(orjson.loads, path.read_bytes().splitlines())}


def test_a_ledger_names_each_shard_once_and_keeps_a_rank_s_own_sampler(tmp_path: Path) -> None:
    """Issue 17: a shard's name, digest and sampler are one input line; a rank whose
    sampler differs from the first reader's keeps its own, and records read back from
    the ledger give every rank its shards in full again."""
    cluster = Cluster(world_size=3)
    for rank, seed in ((0, 7), (1, 7), (2, 8)):
        sampler = orjson.dumps({"num_replicas": 3, "seed": seed}).decode()
        cluster.rank(rank).report(pb.Event(shard=pb.ShardConsumed(
            name="a", digest={"sha256": sha("a")}, samples=4, sampler_json=sampler)), done())
    provenance = cluster.finalize_to_ledger(tmp_path / "job.ledger.jsonl")
    lines = _ledger_lines(tmp_path / "job.ledger.jsonl")
    assert lines["input/0"] == {"name": "a", "digest": {"sha256": sha("a")},
                                "sampler": {"num_replicas": 3, "seed": 7}}
    assert [lines[f"rank/{r}"]["shards"][0].get("sampler") for r in range(3)] == \
        [None, None, {"num_replicas": 3, "seed": 8}]
    assert [(r.shards or ())[0].sampler["seed"] for r in provenance.rank_records()] == \
        [7, 7, 8]
    assert provenance.dependencies[0].digest == {"sha256": sha("a")}


def test_a_file_another_rank_overwrote_keeps_its_own_digest_in_its_record(
        tmp_path: Path) -> None:
    """A rank's record leaves out a file's digest only where its checkpoint record holds
    the same one: rank 0, sealed, is reopened when rank 1 writes other bytes to its
    path, so rank 0's record names the digest it reported."""
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(written("ckpt", "shared.bin"), written("ckpt", "own-0.bin"), done())
    assert cluster.state._state.ranks[0].sealed is not None
    other = pb.Event(file=pb.FileWritten(artifact="ckpt", path="shared.bin",
                                         digest={"sha256": sha("other")}, size=1,
                                         role=pb.CHECKPOINT))
    cluster.rank(1).report(other, done())
    provenance = cluster.finalize_to_ledger(tmp_path / "job.ledger.jsonl")
    lines = _ledger_lines(tmp_path / "job.ledger.jsonl")
    assert lines["rank/0"]["files"] == [
        {"artifact": "ckpt", "path": "shared.bin", "sha256": sha("ckptshared.bin")},
        {"artifact": "ckpt", "path": "own-0.bin"}]
    assert lines["rank/1"]["files"] == [{"artifact": "ckpt", "path": "shared.bin"}]
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.conflicts


# --- sequence numbers ----------------------------------------------------------------------


def test_a_duplicate_batch_is_ignored_and_acknowledged() -> None:
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    sender.report(shard("a"), shard("b"))
    assert sender.report(shard("a"), shard("b"), first=1) == (2, 2)
    assert cluster.state.events == 2
    assert cluster.state.acked_through(sender.key) == 2


def test_an_overlapping_batch_is_accepted_from_its_first_new_event() -> None:
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    sender.report(shard("a"), shard("b"))
    assert sender.report(shard("b"), shard("c"), first=2) == (1, 1)
    assert cluster.state.events == 3


def test_a_gap_is_refused_naming_the_expected_number() -> None:
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    sender.report(shard("a"))
    with refused("FAILED_PRECONDITION", "sequence gap from rank/0/0/0: expected 2, found 5"):
        sender.report(shard("e"), first=5)
    assert cluster.state.events == 1


def test_a_bad_event_refuses_the_whole_batch_and_changes_nothing() -> None:
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    bad = pb.Event(shard=pb.ShardConsumed(name="x", digest={"sha256": "XYZ"}))
    with refused("INVALID_ARGUMENT", "expected 64 lowercase hex digits for sha256, found 'XYZ'"):
        sender.report(shard("a"), bad)
    assert cluster.state.events == 0
    assert cluster.state.acked_through(sender.key) == 0
    sender.report(shard("a"), first=1)
    assert cluster.state.events == 1


def test_nothing_is_accepted_after_rank_completed() -> None:
    cluster = Cluster(world_size=2)
    sender = cluster.rank(0)
    sender.report(done())
    with refused("FAILED_PRECONDITION", "expected nothing after RankCompleted"):
        sender.report(shard("late"))


def test_unregistered_sender_is_refused() -> None:
    cluster = Cluster(world_size=1)
    with refused("FAILED_PRECONDITION", "expected a registered sender, found 'rank/9/0/0'"):
        cluster.state.accept(pb.ReportRequest(job_id="job-1", sender="rank/9/0/0",
                                              first_sequence=1, events=[shard("a")]),
                             cluster.tick())


def test_oversized_batch_is_refused() -> None:
    cluster = Cluster(world_size=1, limits=Limits(max_batch_events=3))
    with refused("RESOURCE_EXHAUSTED", "expected at most 3 events, found 4"):
        cluster.rank(0).report(*[shard("a")] * 4)


def test_floats_in_parameters_are_kept_elsewhere_refused() -> None:
    """Parameters keep their JSON types (#27 item 7); records never hold a float, so
    the ledger's fast writer stays canonical."""
    cluster = Cluster(world_size=1)
    sender = cluster.rank(0)
    sender.report(pb.Event(parameters=pb.Parameters(external_json='{"lr": 0.1, "n": 2}')))
    with refused("INVALID_ARGUMENT", r"a float \(0.1\); send it as a string"):
        sender.report(pb.Event(inventory=pb.Inventory(json='{"x": 0.1}')))
    assert cluster.finalize().external_parameters == {"lr": 0.1, "n": 2, "worldSize": 1}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_in_any_json(constant: str) -> None:
    """Not JSON: Python's parser took them (as floats) even where floats were refused."""
    cluster = Cluster(world_size=2)
    with refused("INVALID_ARGUMENT", "no JSON number"):
        cluster.rank(0).report(pb.Event(parameters=pb.Parameters(
            external_json=f'{{"lr": {constant}}}')))
    with refused("INVALID_ARGUMENT", "no JSON number"):
        cluster.rank(1).report(pb.Event(annotation=pb.Annotation(key="k", value_json=constant)))


def test_malformed_json_is_refused() -> None:
    cluster = Cluster(world_size=1)
    event = pb.Event(inventory=pb.Inventory(json="{not json"))
    with refused("INVALID_ARGUMENT", "inventory: expected a JSON object"):
        cluster.rank(0).report(event)


def test_an_event_without_a_kind_is_refused() -> None:
    with refused("INVALID_ARGUMENT", "expected an event kind, found none"):
        Cluster(world_size=1).rank(0).report(pb.Event())


def test_a_file_path_escaping_its_artifact_is_refused() -> None:
    with refused("INVALID_ARGUMENT", "expected a relative path inside the artifact"):
        Cluster(world_size=1).rank(0).report(written("ckpt", "../../etc/passwd"))


# --- finalization --------------------------------------------------------------------------


def test_nothing_is_accepted_after_finalization() -> None:
    cluster = Cluster(world_size=2)
    sender = cluster.rank(0)
    cluster.finalize()
    with refused("FAILED_PRECONDITION", "found it finalized"):
        sender.report(shard("a"))
    with refused("FAILED_PRECONDITION", "found it finalized"):
        cluster.rank(1)


def test_finalizing_twice_keeps_the_first_reason() -> None:
    cluster = Cluster(world_size=1)
    cluster.run_all()
    cluster.state.finalize("job-1", "all-ranks-complete", cluster.tick())
    cluster.state.finalize("job-1", "timeout", cluster.tick())
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["finalizedBy"] == "all-ranks-complete"


def test_8_ranks_rank_5_silent_timeout_records_it_missing() -> None:
    cluster = Cluster(world_size=8)
    for r in range(8):
        if r != 5:
            cluster.rank(r).report(shard(f"s{r}"), done())
    provenance = cluster.finalize("timeout")
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["missingRanks"] == [5]
    assert completeness["complete"] is False


def test_a_rank_whose_last_attempt_failed_is_missing() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(done(exit_code=3))
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["missingRanks"] == [0]


def test_a_planned_checkpoint_file_never_written_is_missing() -> None:
    cluster = Cluster(world_size=2)
    plan = pb.Event(planned=pb.ArtifactPlanned(artifact="ckpt", files=[
        ".metadata", "__0_0.distcp", "__1_0.distcp"]))
    cluster.rank(0).report(plan, written("ckpt", ".metadata"), written("ckpt", "__0_0.distcp"),
                           done())
    cluster.rank(1).report(done())  # rank 1's shard never arrived
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["missingFiles"] == ["ckpt/__1_0.distcp"]


def test_two_ranks_reporting_different_bytes_for_one_file_is_a_conflict() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(written("ckpt", "a"), done())
    other = pb.Event(file=pb.FileWritten(artifact="ckpt", path="a", digest={"sha256": sha("x")}))
    cluster.rank(1).report(other, done())
    (completeness,) = cluster.finalize().records(MEDIA_COMPLETENESS)
    assert completeness["conflicts"][0].startswith("ckpt/a: ")


def test_a_job_that_wrote_nothing_still_gets_a_signed_record() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(shard("a"), done())
    (subject,) = cluster.finalize().statement.subjects
    assert subject.name == "job/job-1"


# --- evidence ------------------------------------------------------------------------------


def _verifier(kind: str, blob: bytes, nonce: bytes, job_id: str, node: str) -> EvidenceVerdict:
    ok = blob == nonce + job_id.encode() + node.encode()
    return EvidenceVerdict(status="verified" if ok else "failed", verified=("binding",) if ok else (),
                           reason="" if ok else "binding mismatch")


def test_evidence_answering_its_nonce_is_verified() -> None:
    cluster = Cluster(world_size=1, evidence_verifier=_verifier)
    node = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    node.report(pb.Event(evidence=pb.Evidence(kind="test", blob=nonce + b"job-1node-0",
                                              nonce=nonce)))
    (record,) = cluster.finalize().records(MEDIA_NODE)
    assert record["evidence"][0]["status"] == "verified"


def test_evidence_with_a_nonce_never_issued_fails_and_says_why() -> None:
    cluster = Cluster(world_size=1, evidence_verifier=_verifier)
    node = cluster.node("node-0")
    cluster.challenge("node-0")
    node.report(pb.Event(evidence=pb.Evidence(kind="test", blob=b"x", nonce=b"replayed")))
    provenance = cluster.finalize()
    (record,) = provenance.records(MEDIA_NODE)
    assert record["evidence"][0]["status"] == "failed"
    assert "nonce: expected one issued to node 'node-0'" in record["evidence"][0]["reason"]
    (completeness,) = provenance.records(MEDIA_COMPLETENESS)
    assert completeness["failedEvidence"]


def test_oversized_evidence_is_recorded_failed_not_refused() -> None:
    cluster = Cluster(world_size=1, limits=Limits(max_evidence_bytes=8))
    node = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    node.report(pb.Event(evidence=pb.Evidence(kind="tpm", blob=b"x" * 9, nonce=nonce)))
    (record,) = cluster.finalize().records(MEDIA_NODE)
    assert record["evidence"][0]["reason"] == "evidence: expected at most 8 bytes, found 9"


def test_a_crashing_verifier_is_recorded_not_fatal() -> None:
    def broken(*_: object) -> EvidenceVerdict:
        raise ValueError("parser bug")

    cluster = Cluster(world_size=1, evidence_verifier=broken)
    node = cluster.node("node-0")
    nonce = cluster.challenge("node-0")
    node.report(pb.Event(evidence=pb.Evidence(kind="tpm", blob=b"x", nonce=nonce)))
    (record,) = cluster.finalize().records(MEDIA_NODE)
    assert record["evidence"][0]["reason"] == "verifier raised ValueError: parser bug"


# --- determinism ---------------------------------------------------------------------------


def test_the_same_messages_give_the_same_statement_bytes() -> None:
    def run() -> bytes:
        cluster = Cluster(world_size=4, run_id="0c2f5a4e-8d1b-4f3a-9b7e-1a2b3c4d5e6f")
        cluster.run_all()
        cluster.state.finalize("job-1", "request", cluster.tick())
        return cluster.statement().to_bytes()

    assert run() == run()


# --- elastic jobs: a node leaves, the job goes on ---------------------------------------------


def attempt(number: int, ranks: list[int], state: str) -> pb.Event:
    return pb.Event(attempt=pb.AttemptRecord(attempt=number, run_id="run", ranks=ranks,
                                             state=state))


def test_an_elastic_job_that_lost_a_node_is_judged_by_its_final_attempt() -> None:
    cluster = Cluster(world_size=6, min_world_size=4)
    nodes = {n: cluster.node(f"node{n}") for n in range(3)}
    for n, node in nodes.items():
        node.report(attempt(0, [2 * n, 2 * n + 1], "STARTED"))
    first = {r: cluster.rank(r, node=f"node{r // 2}", world_size=6) for r in range(6)}
    for r in range(4):  # node2 dies: its ranks never report again; the others fail
        first[r].report(shard(f"shard-{r}"), done(exit_code=1))
    assert not cluster.state.all_ranks_ended()  # ranks 4 and 5 never said how they ended
    for n in (0, 1):
        nodes[n].report(attempt(1, [2 * n, 2 * n + 1], "STARTED"))
    for r in range(4):  # the survivors rendezvous again: 4 ranks
        cluster.rank(r, attempt=1, node=f"node{r // 2}", world_size=4, pid=200).report(
            shard(f"shard-{r}"), written("ckpt", f"__{r}_0.distcp"), done())
    assert cluster.state.all_ranks_complete()
    assert not cluster.state.nodes_finished()  # node0 and node1 have not ended attempt 1
    for n in (0, 1):
        nodes[n].report(attempt(1, [2 * n, 2 * n + 1], "SUCCEEDED"))
    # node2 never said attempt 0 ended (it died): the coordinator waits for it until its
    # settle time passes, then the final attempt judges the job (an elastic one).
    assert not cluster.state.nodes_finished()
    provenance = cluster.finalize("all-ranks-complete")
    assert provenance.world_size == 4
    assert provenance.external_parameters["worldSizeRange"] == [4, 6]
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete
    assert completeness.departed_nodes == (
        "node2: last in attempt 0 (STARTED, no final report); not in the final attempt 1",)
    assert [dict(a) for a in completeness.attempts] == [
        {"attempt": 0, "worldSize": 6, "ranksSucceeded": 0,
         "nodes": {"node0": "NO_FINAL_REPORT", "node1": "NO_FINAL_REPORT",
                   "node2": "NO_FINAL_REPORT"}},
        {"attempt": 1, "worldSize": 4, "ranksSucceeded": 4,
         "nodes": {"node0": "SUCCEEDED", "node1": "SUCCEEDED"}}]
    ranks = {r.rank: r for r in provenance.rank_records()}
    assert [a.state for a in ranks[4].attempts] == ["NO_COMPLETION_REPORTED"]  # partial work
    assert not ranks[4].completed
    assert ranks[0].completed


def test_an_elastic_attempt_outside_the_range_or_disagreeing_is_refused() -> None:
    cluster = Cluster(world_size=6, min_world_size=4)
    with refused("FAILED_PRECONDITION", "world size: expected 4..6, found 2"):
        cluster.rank(0, world_size=2)
    cluster.rank(0, world_size=4)
    with refused("FAILED_PRECONDITION", r"attempt 0: world size expected 4 \(as its first "
                                        "rank registered\\), found 6"):
        cluster.rank(1, world_size=6)


def test_a_restarted_node_is_waited_for_until_its_new_attempt_ends() -> None:
    cluster = Cluster(world_size=1)
    node = cluster.node("node-0")
    node.report(attempt(0, [0], "FAILED"))
    cluster.rank(0, attempt=0).report(done(exit_code=1))
    node.report(attempt(1, [0], "STARTED"))
    cluster.rank(0, attempt=1, pid=200).report(done())
    assert cluster.state.all_ranks_complete()
    assert not cluster.state.nodes_finished()  # attempt 0's FAILED is not the job's end
    node.report(attempt(1, [0], "SUCCEEDED"))
    assert cluster.state.nodes_finished()


def test_a_rank_claiming_a_smaller_world_than_its_launcher_started_is_a_conflict() -> None:
    # The first rank of an attempt sets its world size (within the operator's range); the
    # node agents list the ranks they launched: a rank that claims 4 when 6 ran is caught.
    cluster = Cluster(world_size=6, min_world_size=4)
    node = cluster.node("node2")
    node.report(attempt(0, [4, 5], "STARTED"))
    cluster.node("node-0").report(attempt(0, [0, 1, 2, 3], "STARTED"))
    for r in range(4):
        cluster.rank(r, world_size=4).report(done())
    node.report(attempt(0, [4, 5], "SUCCEEDED"))
    completeness = cluster.finalize().completeness()
    assert completeness is not None
    assert not completeness.complete
    assert completeness.conflicts == (
        "attempt 0: node node2 launched rank(s) [4, 5], beyond the world size 4 its ranks "
        "registered",)
