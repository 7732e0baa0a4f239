"""One rank in the test's own process against a real coordinator on loopback.

The environment a launcher gives a rank (coordinator, job, artifact root, spool),
set for the test and reset after it with the process's runtime and capture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from slsa_dist.capture import _auto as auto
from slsa_dist.capture import _runtime
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.sign._keys import Signer

__all__ = ["in_process_rank"]


@contextmanager
def in_process_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    job_id: str) -> Iterator[CoordinatorThread]:
    """A coordinator for a one-rank job ``job_id``, its address and job in the rank's
    environment; ``server.signer`` is the key it signs with."""
    signer = Signer.generate()
    with CoordinatorThread(job_id=job_id, signer=signer, out_dir=tmp_path / "out",
                           world_size=1, settle=0.2) as server:
        for key, value in {"SLSA_COORDINATOR": server.address, "SLSA_JOB_ID": job_id,
                           "SLSA_ARTIFACT_ROOT": str(tmp_path),
                           "SLSA_SPOOL_DIR": str(tmp_path / "spool")}.items():
            monkeypatch.setenv(key, value)
        for key in ("SLSA_SUBJECT", "SLSA_ALLOW_CAPTURE_GAPS"):
            monkeypatch.delenv(key, raising=False)
        server.signer = signer  # type: ignore[attr-defined]
        try:
            yield server
        finally:
            _runtime.reset()
            auto._INSTALLED = None
