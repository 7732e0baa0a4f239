"""A file the job itself wrote is never its input, across ranks (#27 item 2).

Rank 0 saves a checkpoint, rank 1 loads it: rank 1's capture sees a read of a file
its own process never wrote. The merge knows every rank's outputs: a captured read
whose name as recorded and digest are a job output's, and whose bytes were written
after the job began, is that output read back. A read of the previous run's file
(another digest, or the same bytes but there before the job began) stays an input,
so ``verify chain`` still follows it.
"""

from __future__ import annotations

import datetime as dt
import json

from slsa_dist._pb.v1 import collector_pb2 as pb

from support.sim import T0, Cluster, done, sha, written


def _read(name: str, digest: str, modified: dt.datetime | None,
          captured: str = "read") -> pb.Event:
    annotations: dict[str, str] = {"slsadist_captured": captured}
    if modified is not None:
        annotations["slsadist_modified"] = modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return pb.Event(dependency=pb.Dependency(
        kind="input", name=name, uri=f"file:///shared/{name}", digest={"sha256": digest},
        annotations_json=json.dumps(annotations).encode()))


def _inputs(cluster: Cluster) -> list[tuple[str, str]]:
    return sorted((d.name or "", d.digest["sha256"]) for d in cluster.finalize().dependencies)


def _saved(name: str, digest: str) -> pb.Event:
    return pb.Event(file=pb.FileWritten(artifact=name, path=".", digest={"sha256": digest},
                                        size=1, role=pb.CHECKPOINT))


DURING = T0 + dt.timedelta(minutes=5)  # after the job's first event (T0 + 1 s)
BEFORE = T0 - dt.timedelta(days=1)  # the previous run


def test_a_checkpoint_one_rank_wrote_and_another_read_is_no_input() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(_saved("ckpt.pt", sha("new")), done())
    cluster.rank(1).report(_read("ckpt.pt", sha("new"), DURING), done())
    assert _inputs(cluster) == []


def test_a_file_of_a_written_folder_read_back_is_no_input() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(written("out", "model.bin"), done())
    cluster.rank(1).report(_read("out/model.bin", sha("outmodel.bin"), DURING), done())
    assert _inputs(cluster) == []


def test_the_previous_runs_checkpoint_read_then_overwritten_stays_an_input() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(1).report(_read("ckpt.pt", sha("old"), BEFORE), done())
    cluster.rank(0).report(_saved("ckpt.pt", sha("new")), done())
    assert _inputs(cluster) == [("ckpt.pt", sha("old"))]


def test_the_same_bytes_there_before_the_job_began_stay_an_input() -> None:
    """A job that copies its base model onto itself does not hide it."""
    cluster = Cluster(world_size=2)
    cluster.rank(1).report(_read("base.bin", sha("base"), BEFORE), done())
    cluster.rank(0).report(_saved("base.bin", sha("base")), done())
    assert _inputs(cluster) == [("base.bin", sha("base"))]


def test_another_path_with_the_same_bytes_stays_an_input() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(_saved("ckpt.pt", sha("new")), done())
    cluster.rank(1).report(_read("elsewhere/ckpt.pt", sha("new"), DURING), done())
    assert _inputs(cluster) == [("elsewhere/ckpt.pt", sha("new"))]


def test_a_read_without_its_time_or_declared_by_the_rank_stays_an_input() -> None:
    cluster = Cluster(world_size=2)
    cluster.rank(0).report(_saved("a.pt", sha("a")), _saved("b.pt", sha("b")), done())
    cluster.rank(1).report(_read("a.pt", sha("a"), None),
                           _read("b.pt", sha("b"), DURING, captured="declared"), done())
    assert _inputs(cluster) == [("a.pt", sha("a")), ("b.pt", sha("b"))]


def test_the_read_time_is_not_carried_into_the_provenance() -> None:
    cluster = Cluster(world_size=1)
    cluster.rank(0).report(_read("data.bin", sha("data"), BEFORE), done())
    (dependency,) = cluster.finalize().dependencies
    assert "slsadist_modified" not in dependency.annotations
    assert dependency.annotations["slsadist_captured"] == "read"
