"""Items 10 and 14: one bad event is refused at ingest and cannot stop the provenance.

A digest the provenance model would reject later (``{"sha512": "zz"}``) used to
be acknowledged, then made every Finalize fail, even after a restart. JSON
nested deeper than the coordinator's stack came back UNKNOWN, which agents
retry forever; integers beyond 2^53 read differently in Go and JavaScript.
"""

from __future__ import annotations

import json

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.errors import SenderError

from support.sim import Cluster, done, sha, shard


@pytest.mark.parametrize("digest", [{"sha512": "zz"}, {"sha256": "AB" * 32}, {"md5": ""},
                                    {"": "00" * 32}, {"sha384": "0" * 95}])
def test_a_malformed_digest_in_any_event_is_refused_and_finalize_still_works(
        digest: dict[str, str]) -> None:
    cluster = Cluster(world_size=1)
    rank = cluster.rank(0)
    events = [
        pb.Event(shard=pb.ShardConsumed(name="s", digest=digest, samples=1)),
        pb.Event(dependency=pb.Dependency(kind="dataset", name="d", digest=digest)),
        pb.Event(file=pb.FileWritten(artifact="a", path="f", digest=digest, size=1)),
    ]
    for event in events:
        with pytest.raises(SenderError) as refused:
            rank.report(event)
        assert refused.value.code == "INVALID_ARGUMENT"
    rank.report(shard("s"), done())
    provenance = cluster.finalize()
    assert provenance.completeness() is not None


def test_json_nested_past_the_limit_is_refused_as_invalid_argument() -> None:
    cluster = Cluster(world_size=1)
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(SenderError) as refused:
        cluster.rank(0).report(pb.Event(annotation=pb.Annotation(key="k", value_json=deep)))
    assert refused.value.code == "INVALID_ARGUMENT"
    assert "nested deeper than" in str(refused.value)


@pytest.mark.parametrize("number", [2**53, -(2**53), 10**30])
def test_integers_beyond_2_to_53_are_refused(number: int) -> None:
    cluster = Cluster(world_size=1)
    with pytest.raises(SenderError, match="beyond ±2\\^53"):
        cluster.rank(0).report(pb.Event(parameters=pb.Parameters(
            external_json=json.dumps({"seed": number}))))


def test_integers_within_2_to_53_are_kept_exactly() -> None:
    cluster = Cluster(world_size=1)
    rank = cluster.rank(0)
    rank.report(pb.Event(parameters=pb.Parameters(
        external_json=json.dumps({"seed": 2**53 - 1}))), done())
    assert cluster.finalize().external_parameters["seed"] == 2**53 - 1


def test_a_valid_digest_still_flows_through() -> None:
    cluster = Cluster(world_size=1)
    rank = cluster.rank(0)
    rank.report(pb.Event(dependency=pb.Dependency(kind="dataset", name="d",
                                                  digest={"sha512": "ab" * 64})),
                pb.Event(shard=pb.ShardConsumed(name="s", digest={"sha256": sha("s")})), done())
    deps = cluster.finalize().dependencies
    assert {"sha512": "ab" * 64} in [d.digest for d in deps]
