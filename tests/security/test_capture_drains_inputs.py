"""Issue #25 finding 10: an input still being digested when the rank exits.

Zero-code capture digests what the script reads on a background thread. A
script that reads a large file and exits at once used to get a "complete"
bundle without that input: the rank's finish marked the runtime finished
first, and the digest thread then dropped what it finished after. The rank
must drain its digest queue before it reports completion (bounded by
``SLSA_CAPTURE_DRAIN_TIMEOUT``); what it could not digest in time is a capture
gap that makes the bundle incomplete (listed, but allowed, with
``SLSA_ALLOW_CAPTURE_GAPS=1``).

Digesting is slowed here (a large file on a busy disk) so the race is certain.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slsa_dist.capture import _auto as auto
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.integrations import _contract
from slsa_dist.model._provenance import Provenance
from slsa_dist.verify import Complete
from slsa_dist.verify._bundle import VerificationFailed, check_bundle, verify_bundle

from support.rank import in_process_rank

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(120)]


@pytest.fixture
def rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CoordinatorThread]:
    with in_process_rank(tmp_path, monkeypatch, "drain") as server:
        yield server


def _slow_digest(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real: Callable[..., Any] = auto.digest_path

    def slow(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("large.bin"):  # the input, not the code modules finish digests
            time.sleep(seconds)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(auto, "digest_path", slow)


def _read_then_exit(tmp_path: Path, server: CoordinatorThread) -> tuple[Path, Path]:
    """A rank that reads a large file and ends at once; returns (file, bundle)."""
    data = tmp_path / "large.bin"  # made before the run: an input, not its own output
    data.write_bytes(b"\x5a" * (4 << 20))
    runtime = _contract.init(argv=["train.py"], finish_at_exit=False)
    auto.install(runtime)
    with open(data, "rb") as f:  # seen by the audit hook, digested in the background
        f.read()
    runtime.finish(exit_code=0, timeout=30)
    return data, server.wait_finalized(60).bundle


def _inputs(provenance: Provenance) -> dict[str, str]:
    return {d.name or "": d.digest["sha256"] for d in provenance.dependencies
            if d.annotations.get("slsadist_kind") == "input"}


def test_an_input_still_being_digested_at_exit_is_in_the_bundle(
        rank: CoordinatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_digest(monkeypatch, 1.0)
    data, bundle = _read_then_exit(tmp_path, rank)
    provenance = verify_bundle(bundle, keys=[rank.signer.public()]).provenance  # type: ignore[attr-defined]
    assert _inputs(provenance).get("large.bin") == hashlib.sha256(data.read_bytes()).hexdigest()


def test_an_input_not_digested_in_time_makes_the_bundle_incomplete(
        rank: CoordinatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLSA_CAPTURE_DRAIN_TIMEOUT", "0.3")
    _slow_digest(monkeypatch, 5.0)
    data, bundle = _read_then_exit(tmp_path, rank)
    result = check_bundle(bundle, keys=[rank.signer.public()])  # type: ignore[attr-defined]
    checks, provenance = result.checks, result.provenance
    failed = {c.name: c.detail for c in checks if not c.ok}
    assert "completeness" in failed, checks
    assert "capture gap" in failed["completeness"]
    assert str(data) in failed["completeness"]
    assert provenance is not None
    completeness = provenance.completeness()
    assert completeness is not None
    assert not completeness.complete
    (gap,) = completeness.capture_gaps
    assert gap.startswith(f"rank 0: capture gap: input {data} ("), gap
    assert "0.3 s" in gap, gap
    assert "large.bin" not in _inputs(provenance)  # not named by a digest it never had
    with pytest.raises(VerificationFailed):
        verify_bundle(bundle, keys=[rank.signer.public()])  # type: ignore[attr-defined]


def test_allowed_capture_gaps_are_listed_and_fail_unless_the_verifier_allows_them(
        rank: CoordinatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's environment may declare gaps allowed; only the verifier accepts them.
    A second review hid an unvetted 80 MB base model this way (a drain timeout of 0
    and SLSA_ALLOW_CAPTURE_GAPS=1): the bundle was complete and verify passed."""
    monkeypatch.setenv("SLSA_CAPTURE_DRAIN_TIMEOUT", "0.3")
    monkeypatch.setenv("SLSA_ALLOW_CAPTURE_GAPS", "1")
    _slow_digest(monkeypatch, 5.0)
    data, bundle = _read_then_exit(tmp_path, rank)
    keys = [rank.signer.public()]  # type: ignore[attr-defined]
    with pytest.raises(VerificationFailed, match="capture gaps the job allowed"):
        verify_bundle(bundle, keys=keys)
    provenance = verify_bundle(bundle, keys=keys,
                               policy=Complete(allow_capture_gaps=True)).provenance
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete
    assert completeness.capture_gaps == ()
    (gap,) = completeness.allowed_capture_gaps
    assert f"input {data}" in gap
