"""Property-based fuzzing of every RPC message, and of the bundle and evidence parsers.

The coordinator never crashes (only SenderError, which becomes a gRPC status)
and never reaches an invalid state. ``make fuzz`` runs 10,000 inputs per
property (SLSA_FUZZ_EXAMPLES); the default suite runs a few hundred.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.attest import _tpm as tpm
from slsa_dist.attest import _tsm as tsm
from slsa_dist.collect._merge import JobState, Limits
from slsa_dist.errors import InputError, SenderError
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import Statement
from slsa_dist.sign._dsse import Envelope

EXAMPLES = int(os.environ.get("SLSA_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

text = st.text(max_size=40)
hexish = st.one_of(st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=70), text)
digest = st.dictionaries(st.sampled_from(["sha256", "blake3", "md5", ""]), hexish, max_size=2)
small = st.integers(min_value=0, max_value=2**32 - 1)
json_text = st.one_of(st.just(""), text, st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(text, inner, max_size=3)),
    max_leaves=8).map(json.dumps))

events = st.one_of(
    st.builds(lambda n, d, s, i, e: pb.Event(shard=pb.ShardConsumed(
        name=n, digest=d, samples=s, index_digest=i, epoch=e)), text, digest, small, text, small),
    st.builds(lambda a, p, d, r: pb.Event(file=pb.FileWritten(
        artifact=a, path=p, digest=d, role=r)), text, text, digest, st.integers(0, 3)),
    st.builds(lambda a, f: pb.Event(planned=pb.ArtifactPlanned(artifact=a, files=f)),
              text, st.lists(text, max_size=3)),
    st.builds(lambda k, n, u, d, j: pb.Event(dependency=pb.Dependency(
        kind=k, name=n, uri=u, digest=d, annotations_json=j)), text, text, text, digest,
        json_text),
    st.builds(lambda e, i: pb.Event(parameters=pb.Parameters(external_json=e, internal_json=i)),
              json_text, json_text),
    st.builds(lambda j: pb.Event(inventory=pb.Inventory(json=j)), json_text),
    st.builds(lambda k, b, n: pb.Event(evidence=pb.Evidence(kind=k, blob=b, nonce=n)),
              st.sampled_from(["tpm", "tdx", "snp", "nvidia-cc", "x"]), st.binary(max_size=64),
              st.binary(max_size=40)),
    st.builds(lambda k, v: pb.Event(annotation=pb.Annotation(key=k, value_json=v)),
              text, json_text),
    st.builds(lambda a, s: pb.Event(attempt=pb.AttemptRecord(attempt=a, state=s)), small, text),
    st.builds(lambda c: pb.Event(completed=pb.RankCompleted(exit_code=c)),
              st.integers(-2**31, 2**31 - 1)),
    st.just(pb.Event()),
)


def _verify_evidence(kind: str, blob: bytes, nonce: bytes, job: str, node: str):  # type: ignore[no-untyped-def]
    from slsa_dist.attest._registry import verify_evidence

    return verify_evidence(kind, blob, nonce, job, node)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["rank", "node", "report", "challenge", "bogus"]),
                          small, st.sampled_from(["job", "other"]), small,
                          st.lists(events, max_size=5), small), max_size=25))
def test_any_message_sequence_leaves_the_state_valid(messages) -> None:  # type: ignore[no-untyped-def]
    state = JobState(job_id="job", world_size=4, run_id="r", limits=Limits(max_batch_events=4),
                     evidence_verifier=_verify_evidence)
    senders: list[str] = []
    acked: dict[str, int] = {}
    codes: list[str] = []
    for kind, number, job, first, batch, world in messages:
        try:
            if kind == "rank":
                senders.append(state.register_rank(pb.RegisterRankRequest(
                    job_id=job, rank=number % 6, world_size=world % 6, attempt=number % 2,
                    node_id=str(number % 3)), T0).sender)
            elif kind == "node":
                senders.append(state.register_node(pb.RegisterNodeRequest(
                    job_id=job, node_id=str(number % 3)), T0).sender)
            elif kind == "challenge":
                state.challenge(job, str(number % 3), bytes([number % 256]) * 32, T0)
            else:
                sender = senders[number % len(senders)] if senders and kind == "report" \
                    else f"rank/{number}/0/0"
                state.accept(pb.ReportRequest(job_id=job, sender=sender,
                                              first_sequence=first % 12, events=batch), T0)
        except SenderError as exc:
            codes.append(exc.code)
        for sender in senders:  # acknowledgements only grow
            now = state.acked_through(sender)
            assert now >= acked.get(sender, 0)
            acked[sender] = now
    assert set(codes) <= {"INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "FAILED_PRECONDITION",
                          "ALREADY_EXISTS", "RESOURCE_EXHAUSTED"}
    assert state.events == sum(acked.values())
    state.finalize("job", "timeout", T0 + dt.timedelta(seconds=1))
    statement = state.statement()
    again = Statement.from_dict(json.loads(statement.to_bytes()))
    provenance = Provenance.from_statement(again)
    assert provenance.world_size in (None, state.world_size)


@FUZZ
@given(st.one_of(st.binary(max_size=300), json_text.map(str.encode),
                 st.dictionaries(st.sampled_from(["payload", "payloadType", "signatures", "x"]),
                                 st.one_of(text, st.lists(st.dictionaries(
                                     st.sampled_from(["sig", "keyid"]), text), max_size=2)),
                                 max_size=4).map(lambda d: json.dumps(d).encode())))
def test_envelope_and_statement_parsers_only_raise_input_errors(data: bytes) -> None:
    try:
        envelope = Envelope.from_json(data)
    except InputError:
        return
    with contextlib.suppress(InputError, ValueError):
        Provenance.from_statement(Statement.from_dict(json.loads(envelope.payload)))


@FUZZ
@given(st.binary(max_size=400), st.binary(max_size=40), text, text)
def test_evidence_parsers_never_raise(blob: bytes, nonce: bytes, job: str, node: str) -> None:
    for verify in (tpm.verify, tsm.verify):
        result = verify(blob, nonce, job, node)
        assert result.status in ("failed", "verified")
    wrapped = json.dumps({"attest": blob.hex(), "signature": "", "akPublicPem": "",
                          "provider": "tdx_guest", "outblob": ""}).encode()
    assert tpm.verify(wrapped, nonce, job, node).status == "failed"


@FUZZ
@given(st.binary(max_size=200))
def test_tpm_attest_parser_only_raises_input_errors(data: bytes) -> None:
    with contextlib.suppress(InputError):
        tpm.parse_attest(data)
