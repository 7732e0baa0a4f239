"""A coordinator process for benchmarks: serves until finalized, then prints JSON.

    python bench/_coordinator_server.py OUT JOB WORLD

With SLSA_BENCH_PROFILE=FILE the coordinator runs under cProfile into FILE; with
SLSA_BENCH_ADMISSION=1 it prints its admission control's state every second (stderr).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig
from slsa_dist.sign._formats import read_bundle
from slsa_dist.sign._keys import Signer


def peak_rss_mib() -> float:
    """This process's own high-water mark. Not ru_maxrss: Linux carries that across
    exec, so a child would report its parent's (the benchmark client's) peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def _admission(coordinator: Coordinator) -> None:
    while True:
        await asyncio.sleep(1)
        seen = coordinator.admission
        print(f"admission: {seen.in_flight} in handlers, {seen.rate:,.0f} calls/s served, "
              f"loop lag {seen.lag:.2f} s; {coordinator.refused} refused of "
              f"{coordinator.calls} calls", file=sys.stderr, flush=True)


async def main(out: Path, job: str, world: int) -> None:
    signer = Signer.generate()
    out.mkdir(parents=True, exist_ok=True)
    (out / "signing.pub").write_bytes(signer.public().public_pem())
    coordinator = Coordinator(CoordinatorConfig(job_id=job, out_dir=out, world_size=world,
                                                settle=3600), signer=signer)
    port = await coordinator.start("127.0.0.1:0")
    print(json.dumps({"port": port}), flush=True)
    if os.environ.get("SLSA_BENCH_ADMISSION"):  # admission control's view, every second
        asyncio.get_running_loop().create_task(_admission(coordinator))
    result = await coordinator.wait_finalized()
    await coordinator.stop(0.5)
    ledger = out / f"{job}.ledger.jsonl"
    print(json.dumps({
        "peak_rss_mib": peak_rss_mib(),
        "bundle": str(result.bundle),
        "bundle_bytes": result.bundle.stat().st_size,
        "statement_bytes": len(read_bundle(result.bundle)[0].payload),
        "ledger_bytes": ledger.stat().st_size if ledger.exists() else 0,
        "complete": result.complete,
        "events": coordinator.state.events,
        "calls": coordinator.calls,
        "refused": coordinator.refused,
        "commits": coordinator._committer.commits,  # noqa: SLF001 -- benchmark introspection
    }), flush=True)


if __name__ == "__main__":
    if os.environ.get("SLSA_BENCH_PROFILE"):  # where the coordinator's time goes (cProfile)
        import cProfile

        cProfile.run("asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))",
                     os.environ["SLSA_BENCH_PROFILE"])
    else:
        asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
