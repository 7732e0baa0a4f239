"""Test helpers live in slsa_dist._internal.testing (shared with the fault harness)."""

from slsa_dist._internal.testing import (
    CoordinatorThread,
    cli,
    coordinator_process,
    free_port,
    signing_key,
    wait_listening,
)

__all__ = ["CoordinatorThread", "cli", "coordinator_process", "free_port", "signing_key",
           "wait_listening"]
