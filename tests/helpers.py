"""Test helpers live in slsa_dist._internal.background (shared with faults and Ray)."""

from slsa_dist._internal.background import (
    CoordinatorThread,
    cli,
    coordinator_process,
    free_port,
    signing_key,
    wait_listening,
)

__all__ = ["CoordinatorThread", "cli", "coordinator_process", "free_port", "signing_key",
           "wait_listening"]
