"""A launcher names the exit code of a rank it did not launch (found by test_adversary).

Node M's attempt record listed no rank but carried ``exit_codes {0: 0}``: accepted,
and signed into node M's record, a claim only rank 0's own launcher may make (the
exit state row of docs/threat-model.md). Now refused at ingest, before anything
changes; a launcher still names the exit codes of the ranks it listed, in this
record, an earlier one, or an earlier one of the same batch.
"""

from __future__ import annotations

import pytest

from slsa_dist.errors import SenderError

from support.sim import Cluster, done, launched


def test_a_launcher_naming_the_exit_code_of_a_rank_it_did_not_list_is_refused() -> None:
    cluster = Cluster(world_size=4)
    cluster.node("node-a").report(launched(0, [0, 1], "STARTED"))
    node_m = cluster.node("node-m")
    with pytest.raises(SenderError, match=r"exit codes of the ranks node 'node-m' launched "
                       r"in attempt 0 \(\[\]\), found rank\(s\) \[0\]") as refused:
        node_m.report(launched(0, [], "SUCCEEDED", r0=0))
    assert refused.value.code == "PERMISSION_DENIED"
    with pytest.raises(SenderError, match=r"found rank\(s\) \[1\]"):
        node_m.report(launched(0, [2], "SUCCEEDED", r1=1, r2=0))
    nodes = {n.node: n for n in cluster.finalize().node_records()}
    assert nodes["node-m"].attempts == ()  # nothing of either record was applied


@pytest.mark.parametrize("one_batch", [False, True])
def test_a_launcher_names_the_exit_codes_of_the_ranks_it_listed_before(one_batch: bool) -> None:
    cluster = Cluster(world_size=2)
    node = cluster.node("node-a")
    started, ended = launched(0, [0, 1], "STARTED"), launched(0, [], "SUCCEEDED", r0=0, r1=0)
    if one_batch:
        node.report(started, ended)
    else:
        node.report(started)
        node.report(ended)
    for rank in (0, 1):
        cluster.rank(rank, node="node-a").report(done())
    provenance = cluster.finalize()
    (record,) = provenance.node_records()
    assert dict(record.attempts[0].exit_codes) == {"0": 0, "1": 0}
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete
