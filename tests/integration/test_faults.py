"""Faults with real processes, each bounded in time. Acknowledged events are never lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import faults

pytestmark = [pytest.mark.grpc, pytest.mark.multiprocess]

# The outage lasts 30 s as specified; SLSA_OUTAGE_SECONDS shortens it for quick local runs.
OUTAGE = float(os.environ.get("SLSA_OUTAGE_SECONDS", "30"))


@pytest.mark.timeout(300)
def test_sigkilled_coordinator_restarts_from_its_journal_equal_to_a_fault_free_run(
        tmp_path: Path) -> None:
    outcome = faults.sigkill_restart(tmp_path)
    assert outcome.details["all_flushed"]
    assert outcome.acknowledged == outcome.recorded
    assert outcome.lost == 0
    assert outcome.in_provenance == outcome.recorded
    assert outcome.details["equal_to_fault_free"]


@pytest.mark.timeout(OUTAGE + 120)
def test_an_agent_cut_off_from_the_coordinator_never_blocks_and_delivers_everything(
        tmp_path: Path) -> None:
    outcome = faults.outage(tmp_path, seconds=OUTAGE)
    assert outcome.details["flushed"]
    assert outcome.details["records_during_outage"] > 100
    # Recording stayed in-memory work while nothing listened: no call waited on the network
    # (an RPC timeout here is 1 s).
    assert outcome.details["max_record_ms"] < 100
    assert outcome.lost == 0
    assert outcome.in_provenance == outcome.recorded


@pytest.mark.timeout(120)
def test_a_full_journal_stops_acknowledgements_and_loses_nothing(tmp_path: Path) -> None:
    outcome = faults.journal_full(tmp_path)
    assert outcome.details["degraded"]  # the coordinator noticed and stopped acknowledging
    assert outcome.details["pending_while_full"] > 0  # the agent kept them, spooled
    assert outcome.details["acknowledged_while_full"] < outcome.recorded
    assert outcome.details["flushed"]
    assert outcome.lost == 0
    assert outcome.in_provenance == outcome.recorded
    assert outcome.details["complete"]
