"""A rank in its own process: reports EVENTS shard events slowly, completes, flushes.

Usage: rank_agent.py ADDRESS JOB RANK WORLD EVENTS SPOOL_DIR [DELAY]
Prints one JSON line with what it recorded and whether everything was acked.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from slsa_dist.agent import Agent, RankIdentity


def main() -> int:
    address, job, rank, world, events, spool = sys.argv[1:7]
    delay = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
    agent = Agent(coordinator=address, job_id=job, spool_dir=spool, flush_interval=0.02,
                  batch_max=50, rpc_timeout=2.0,
                  identity=RankIdentity(rank=int(rank), world_size=int(world), node_id="node-0"))
    for i in range(int(events)):
        name = f"shard-{int(rank)}-{i % 7}"
        agent.record_shard(name, {"sha256": hashlib.sha256(name.encode()).hexdigest()},
                           samples=1, epoch=i // 7)
        if delay and i % 50 == 0:
            time.sleep(delay)
    agent.complete()
    flushed = agent.close(timeout=90)
    stats = agent.stats()
    print(json.dumps({"rank": int(rank), "recorded": int(events) + 1, "flushed": flushed,
                      "acked_through": stats.acked_through, "dropped": stats.dropped}))
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
