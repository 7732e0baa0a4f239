"""Typed byproduct records: strict writes, tolerant reads, every earlier format read."""

from __future__ import annotations

from slsa_dist.model._records import (
    FORMAT_VERSION,
    Checkpoint,
    Completeness,
    EvidenceRecord,
    FileWritten,
    NodeAttempt,
    NodeRecord,
    RankAttempt,
    RankRecord,
    ShardRead,
)

RANK = RankRecord(
    rank=3, node="node-1", completed=True,
    attempts=(RankAttempt(attempt=0, node="node-0", run_id="r", registered="t", workers=(0,),
                          state="FAILED", exit_code=3),
              RankAttempt(attempt=1, node="node-1", run_id="r", registered="t", workers=(0,),
                          state="SUCCEEDED", exit_code=0)),
    events=12, shard_count=1, samples=40,
    shards=(ShardRead(name="s-0", digest={"sha256": "ab" * 32}, samples=40, reads=2,
                      epochs=((0, 1),), index_digest="cd" * 32,
                      sampler={"num_replicas": 2, "shuffle": True}),),
    files=(FileWritten(artifact="final", path="a.distcp", algorithm="blake3", digest="ef" * 32),),
    inventory={"python": "3.11"}, reported={"lr": "0.5"})


def test_every_record_reads_back_what_it_wrote() -> None:
    node = NodeRecord(node="node-0", hostname="h", node_rank=1, connected_from="10.0.0.5",
                      evidence=(EvidenceRecord(kind="tpm", status="verified", sha256="00" * 32,
                                               verified=("quote",), claims={"akSha256": "x"}),),
                      challenges=2, attempts=(NodeAttempt(attempt=0, ranks=(0, 1), state="OK",
                                                          exit_codes={"0": 0, "1": 1}),),
                      inventory={"gpus": {"devices": []}}, reported={"k": 1})
    checkpoint = Checkpoint(name="final", root_digest={"sha256": "11" * 32},
                            serialization={"method": "files", "hash_type": "sha256"},
                            resources=({"name": "a", "algorithm": "sha256", "digest": "22" * 32},),
                            total_bytes=9, role="final", written_by={"a": 0},
                            expected_files=("a",))
    completeness = Completeness(complete=False, finalized_by="timeout", missing_ranks=(1,),
                                missing_files=("final/b",), events=7,
                                attempts=({"attempt": 0, "worldSize": 6,
                                           "nodes": {"n2": "NO_FINAL_REPORT"},
                                           "ranksSucceeded": 0},),
                                departed_nodes=("n2: last in attempt 0",))
    for record, kind in ((RANK, RankRecord), (node, NodeRecord), (checkpoint, Checkpoint),
                         (completeness, Completeness)):
        written = record.to_dict()
        assert written["formatVersion"] == FORMAT_VERSION
        assert kind.from_dict(written) == record  # type: ignore[attr-defined]


def test_writes_use_the_documented_keys() -> None:
    written = RANK.to_dict()
    assert list(written) == ["formatVersion", "rank", "node", "completed", "attempts", "events",
                             "shardCount", "samples", "shards", "files", "inventory", "reported"]
    assert written["shards"][0]["sampler"] == {"num_replicas": 2, "shuffle": True}
    assert written["files"] == [{"artifact": "final", "path": "a.distcp", "blake3": "ef" * 32}]
    assert "annotations" not in written  # no annotations inside the byproduct's annotations


def test_version_1_records_read_typed_sampler_values_and_nested_annotations() -> None:
    old = {"rank": 0, "node": "n", "completed": True,
           "attempts": [{"attempt": 0, "exitCode": 0, "state": "SUCCEEDED"}],
           "shards": [{"name": "s", "digest": {"sha256": "ab" * 32}, "samples": 5,
                       "epochs": [[0, 0]], "sampler": {"num_replicas": "2", "seed": "5",
                                                       "shuffle": "True", "type": "X"}}],
           "annotations": {"inventory": {"python": "3.11"}, "lr": "0.5"}}
    rank = RankRecord.from_dict(old)
    assert rank.shards is not None
    assert rank.shards[0].sampler == {"num_replicas": 2, "seed": 5, "shuffle": True, "type": "X"}
    assert rank.inventory == {"python": "3.11"}
    assert rank.reported == {"lr": "0.5"}
    assert rank.attempts[0].exit_code == 0


def test_reads_tolerate_missing_and_mistyped_fields() -> None:
    rank = RankRecord.from_dict({"rank": "4", "attempts": [{"attempt": 0}, "junk"],
                                 "completed": "yes", "unknown": 1})
    assert (rank.rank, rank.completed, len(rank.attempts)) == (4, False, 1)
    assert rank.attempts[0].state == "NO_COMPLETION_REPORTED"
    assert Completeness.from_dict({}).complete is False
    assert NodeRecord.from_dict({"node": "n", "gpus": {"devices": [1]}}).inventory == {
        "gpus": {"devices": [1]}}


def test_a_rank_with_many_shards_keeps_a_root_instead_of_the_list() -> None:
    record = RankRecord(rank=0, node="n", completed=True, shard_count=300, shards=None,
                        shards_root={"sha256": "aa" * 32})
    written = record.to_dict()
    assert "shards" not in written
    assert RankRecord.from_dict(written).shards is None


def test_completeness_lists_its_problems_in_a_fixed_order() -> None:
    record = Completeness(complete=False, sequence_gaps=("g",), missing_ranks=(2, 3))
    assert record.problems == [("missing ranks", (2, 3)), ("event gaps", ("g",))]
