"""Item 19: torchrun jobs record what the platform chose (``internalParameters``).

docs/buildtype.md promised the launcher, rendezvous, restart budget and
coordinator; torchrun jobs recorded none. slsa-torchrun reads them with
torchrun's own parser (a whole job asserts them in
tests/integration/torch/test_torchrun.py).
"""

from __future__ import annotations

from slsa_dist.integrations._torchrun import launcher_parameters


def test_rendezvous_and_restart_policy_come_from_torchruns_own_parser() -> None:
    assert launcher_parameters([
        "--nnodes", "2:3", "--nproc-per-node", "8", "--max-restarts", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", "head:29400", "--rdzv-id", "job-9",
        "-m", "slsa_dist.exec", "train.py", "--epochs", "3"]) == {
        "launcher": "torchrun", "maxRestarts": 2, "nnodes": "2:3", "nprocPerNode": "8",
        "rendezvous": {"backend": "c10d", "endpoint": "head:29400", "id": "job-9"}}


def test_standalone_is_recorded_as_such() -> None:
    parameters = launcher_parameters(["--standalone", "--nproc-per-node", "2", "train.py"])
    assert parameters["rendezvous"] == {"backend": "c10d", "endpoint": "localhost:0",
                                        "standalone": True}


def test_arguments_torchrun_refuses_record_nothing() -> None:
    assert launcher_parameters(["--no-such-flag"]) == {}
