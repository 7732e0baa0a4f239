"""Reference values on TPM boot events: digests per PCR, or per PCR and event type."""

from __future__ import annotations

import pytest

from slsa_dist.attest._reference import ReferenceValues, appraise
from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.errors import InputError

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32
CLAIMS = {"pcrs": {str(p): "00" * 32 for p in range(8)},
          "events": [[3, 4, "EV_EFI_ACTION", A], [9, 4, "EV_SEPARATOR", B],
                     [12, 7, "EV_SEPARATOR", B]]}
VERIFIED = EvidenceVerdict(status="verified", claims=CLAIMS, root="TPM EK root")


def held(tpm: dict[str, object], verdict: EvidenceVerdict = VERIFIED) -> EvidenceVerdict:
    return appraise(verdict, "tpm", ReferenceValues.from_json({"version": 1, "tpm": tpm}))


def test_allowed_digests_per_pcr_and_per_type() -> None:
    assert held({"events": {"4": [A, B]}}).status == "verified"
    verdict = held({"events": {"4": {"EV_EFI_ACTION": [A], "*": [B]},
                               "7": {"EV_SEPARATOR": [B]}}})
    assert verdict.status == "verified"
    assert "events of PCR 4, events of PCR 7 equal the reference values" in verdict.verified


def test_a_digest_not_allowed_names_the_pcr_and_the_event() -> None:
    verdict = held({"events": {"4": [A, C]}})
    assert verdict.status == "failed"
    assert verdict.failure == "reference values"
    assert verdict.reason == ("reference values: PCR 4 event 9 (EV_SEPARATOR): expected a "
                              f"digest among the 2 allowed, found {B}")
    verdict = held({"events": {"7": {"EV_EFI_ACTION": [B]}}})
    assert verdict.reason == ("reference values: PCR 7 event 12 (EV_SEPARATOR): expected "
                              "an event type among EV_EFI_ACTION, found EV_SEPARATOR")


def test_events_without_a_proven_log_or_of_an_unquoted_pcr_fail_closed() -> None:
    bare = EvidenceVerdict(status="verified", claims={"pcrs": CLAIMS["pcrs"]}, root="r")
    assert held({"events": {"4": [A]}}, bare).reason == (
        "reference values: events of PCR 4: expected a boot event log in the evidence "
        "that replays to the quote, found none")
    assert held({"events": {"9": [A]}}).reason == (
        "reference values: events of PCR 9: expected PCR 9 in the quote, found it not "
        "quoted (its events are not proven)")


def test_a_log_that_does_not_replay_names_the_events_not_allowed() -> None:
    failed = EvidenceVerdict(status="failed", failure="event log", claims=CLAIMS,
                             reason="event log: PCR 4: ...")
    verdict = held({"events": {"4": [A]}}, failed)
    assert verdict.status == "failed"
    assert verdict.failure == "event log"
    assert verdict.reason == ("event log: PCR 4: ...; events the reference values do not "
                              f"allow: PCR 4 event 9 (EV_SEPARATOR): expected a digest among "
                              f"the 1 allowed, found {B}")


def test_pcrs_and_events_together() -> None:
    assert held({"pcrs": {"0": "00" * 32}, "events": {"4": [A, B]}}).status == "verified"
    assert held({"pcrs": {"0": "11" * 32}, "events": {"4": [A, B]}}).status == "failed"


@pytest.mark.parametrize(("tpm", "message"), [
    ({"events": {"24": [A]}}, "tpm.events: expected PCR indices 0-23, found '24'"),
    ({"events": {"4": {"EV_NOPE": [A]}}},
     "tpm.events.4: expected event types (EV_...) or \"*\", found 'EV_NOPE'"),
    ({"events": {"4": ["abc"]}}, "tpm.events.4: expected 32 bytes of hex"),
    ({"evnts": {}}, "expected only \"pcrs\" (SHA-256 PCR values by index) and \"events\""),
    ({"events": {}}, "tpm.events: expected a non-empty object, found {}"),
])
def test_malformed_event_references_are_refused(tpm: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        ReferenceValues.from_json({"version": 1, "tpm": tpm})
    assert message in str(info.value)
