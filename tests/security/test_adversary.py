"""An adversary in the cluster: one node with a valid certificate, saying anything.

A real coordinator (``CoordinatorThread``: gRPC over mutual TLS on loopback, the
journal, the relay path, signing) runs a 4-rank job on two honest nodes: launchers
that register, answer a challenge with evidence, list their ranks and report how
the attempt ended, and ranks that register with their own certificates, read a
shard each, write their part of the model and complete. One more principal, node
``node-m``, holds a genuine node certificate of the job and issues any sequence of
calls (registrations of any node or rank, attempt, worker and world size, directly
or through its relay; reports into any sender with any sequence numbers and any
events; challenges; finalize requests), interleaved with the honest ones in any
order Hypothesis chooses. After an admin finalizes, the signed bundle is held to
the authorization table (``collect._authority``, docs/threat-model.md "Who may
claim what"):

1. no record holds a claim its principal may not make: the honest nodes' records
   are exactly what those nodes sent; node-m's attempt records name exit codes
   only of ranks it listed; every rank attempt on an honest node is the honest
   registration, and a relayed one names the node it ran on;
2. in a bundle that verifies, every rank sits on the node whose launcher listed it,
   and no attempt was opened by a rank (each is a launcher's);
3. in a bundle that verifies, the subject is the model the final attempt's ranks
   wrote (its checkpoint written only by them, its digest their files' root);
4. in a bundle that verifies, the honest ranks' records hold exactly what they sent;
5. when the adversary managed to contradict an honest claim (a rank of its own
   accepted, an attempt record listing a rank or opening a later attempt, another
   value for a parameter an honest rank set), the bundle does not verify;
6. node-m never finalizes, and an adversary that had no call accepted but its own
   registration leaves the honest job verifying.

CI runs a fixed number of sequences (derandomized); ``make fuzz`` sets
SLSA_FUZZ_EXAMPLES for a longer random run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.attest._verdict import EvidenceVerdict
from slsa_dist.collect import CoordinatorThread
from slsa_dist.sign._ca import Identity, JobCA, channel_credentials
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._bundle import check_bundle

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(900)]

# CI: a fixed set of sequences, ~1 minute on 2 cores; `make fuzz`: SLSA_FUZZ_EXAMPLES.
EXAMPLES = int(os.environ.get("SLSA_FUZZ_EXAMPLES", "300"))
STEPS = 30

JOB = "job-adv"
WORLD = 4
HONEST: dict[str, tuple[int, ...]] = {"node-a": (0, 1), "node-b": (2, 3)}
NODE_OF = {rank: node for node, ranks in HONEST.items() for rank in ranks}
ADVERSARY = "node-m"
NODES = ["node-a", "node-b", ADVERSARY, "node-x", ""]
# Mostly what has a chance (its own node, the job's world size), never only that.
LIKELY_NODES = st.sampled_from([ADVERSARY] * 4 + NODES)
SEED = 1  # the external parameter honest rank 0 sets


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def quote(node: str, nonce: bytes) -> bytes:
    return f"quote:{node}:{nonce.hex()}".encode()


def _verifier(kind: str, blob: bytes, nonce: bytes, job: str, node: str) -> EvidenceVerdict:
    """A test double for a hardware verifier: a quote names its node and nonce."""
    if kind == "test" and blob == quote(node, nonce) and job == JOB:
        return EvidenceVerdict(status="verified", verified=("test quote",))
    return EvidenceVerdict(status="failed", reason="not a quote for this node and nonce")


class _Pki:
    """One job CA for the whole run: the coordinator, an admin, every honest rank, the
    honest nodes, and the adversary's node certificate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ca = JobCA.create(JOB)
        ca.issue(Identity(job=JOB, role="coordinator"),
                 hosts=("127.0.0.1", "localhost")).write(root / "coordinator")
        ca.issue(Identity(job=JOB, role="admin")).write(root / "admin")
        for rank in NODE_OF:
            ca.issue(Identity(job=JOB, role="rank", name=str(rank))).write(root / f"rank-{rank}")
        for node in [*HONEST, ADVERSARY]:
            ca.issue(Identity(job=JOB, role="node", name=node)).write(root / node)
        self.credentials = {name: channel_credentials(root / name) for name in
                            ["admin", ADVERSARY, *HONEST, *(f"rank-{r}" for r in NODE_OF)]}
        self.signer = Signer.generate()


PKI: _Pki | None = None
STATS: Counter[str] = Counter()  # what the sequences reached (checked at the end)


@dataclass
class _Honest:
    """An honest agent's script: its steps in order, the sender it reports as."""

    name: str
    step: int = 0
    sender: str = ""
    sequence: int = 1
    stuck: str = ""  # why a call of its was refused (only the adversary can cause one)
    nonce: bytes = b""

    @property
    def done(self) -> bool:
        return self.step >= 3 or bool(self.stuck)


@dataclass
class _Seen:
    """What the adversary got accepted (the oracle of rule 5)."""

    calls: int = 0  # accepted calls beyond its own node's registration
    ranks: list[tuple[int, int, int, str]] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)


# The adversary's events, as plain data (readable when Hypothesis prints a sequence).
_paths = st.sampled_from([*(f"rank-{r}.bin" for r in range(WORLD)), "evil.bin"])
_digests = st.sampled_from([*(sha(f"model-{r}") for r in range(WORLD)), sha("evil")])
_ranks = st.lists(st.integers(0, 5), max_size=3, unique=True)
_ANY_SENDER = [
    st.tuples(st.just("inventory"), st.sampled_from(["{}", '{"gpu": "evil"}'])),
    st.tuples(st.just("annotation"), st.sampled_from(["lr", "seed"])),
    st.tuples(st.just("parameters"), st.sampled_from([SEED, 2])),
    st.tuples(st.just("dependency"), st.sampled_from(["evil-dep", "data-0"])),
]
RANK_EVENTS = st.one_of(
    st.tuples(st.just("shard"), st.sampled_from(["data-0", "data-2", "evil"]),
              st.sampled_from([sha("data-0"), sha("data-2"), sha("evil")]), st.integers(0, 9)),
    st.tuples(st.just("file"), st.sampled_from(["model", "ckpt"]), _paths, _digests,
              st.sampled_from([pb.FINAL, pb.CHECKPOINT, pb.OUTPUT])),
    st.tuples(st.just("planned"), st.sampled_from(["model", "ckpt"]), st.lists(_paths, max_size=2)),
    st.tuples(st.just("completed"), st.sampled_from([0, 1])),
    st.tuples(st.just("capture_gap"), st.booleans()),
    *_ANY_SENDER,
)
NODE_EVENTS = st.one_of(
    st.tuples(st.just("evidence"), st.sampled_from([ADVERSARY, "node-a"]), st.booleans()),
    st.tuples(st.just("attempt"), st.integers(0, 2), _ranks,
              st.sampled_from(["STARTED", "SUCCEEDED", "FAILED", "RESTARTED"]),
              st.one_of(st.just({}), st.dictionaries(st.integers(0, 5), st.sampled_from([0, 1]),
                                                     max_size=3))),
    *_ANY_SENDER,
)
# A batch is refused whole when one event is (a shard from a node): mostly one sender
# kind's events, sometimes any mix.
BATCHES = st.one_of(st.lists(RANK_EVENTS, min_size=1, max_size=4),
                    st.lists(NODE_EVENTS, min_size=1, max_size=4),
                    st.lists(st.one_of(RANK_EVENTS, NODE_EVENTS), min_size=1, max_size=4))


class Adversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert PKI is not None
        self.pki = PKI
        self.out = Path(tempfile.mkdtemp(dir=PKI.root))
        self.server = CoordinatorThread(job_id=JOB, signer=PKI.signer, out_dir=self.out,
                                        world_size=WORLD, settle=3600,
                                        tls=PKI.root / "coordinator",
                                        evidence_verifier=_verifier).__enter__()
        self.channels: dict[str, grpc.Channel] = {}
        self.honest = {name: _Honest(name) for name in
                       [*HONEST, *(f"rank-{r}" for r in NODE_OF)]}
        self.seen = _Seen()
        self.nonces: list[bytes] = []  # issued to node-m
        self.next: dict[str, int] = {}  # the adversary's view of each sender's next number
        self.finalize_refused = True
        self.crashes = 0  # calls answered UNKNOWN: an exception the coordinator did not map

    def stub(self, who: str) -> pb_grpc.CollectorStub:
        if who not in self.channels:
            self.channels[who] = grpc.secure_channel(self.server.address,
                                                     self.pki.credentials[who])
        return pb_grpc.CollectorStub(self.channels[who])

    # -- the honest agents ------------------------------------------------------------

    def _honest_call(self, agent: _Honest, call: Any) -> Any:
        try:
            return call()
        except grpc.RpcError as exc:
            agent.stuck = f"{exc.code()}: {exc.details()}"
            return None

    def _report(self, agent: _Honest, who: str, *events: pb.Event) -> None:
        reply = self._honest_call(agent, lambda: self.stub(who).Report(pb.ReportRequest(
            job_id=JOB, sender=agent.sender, first_sequence=agent.sequence,
            events=list(events)), timeout=10))
        if reply is not None:
            agent.sequence += len(events)

    def _advance(self, agent: _Honest) -> None:
        if agent.done:
            return
        if agent.name in HONEST:
            self._node_step(agent)
        else:
            self._rank_step(agent)
        if not agent.stuck:
            agent.step += 1

    def _node_step(self, agent: _Honest) -> None:
        node, ranks = agent.name, HONEST[agent.name]
        stub = self.stub(node)
        if agent.step == 0:
            reply = self._honest_call(agent, lambda: stub.RegisterNode(pb.RegisterNodeRequest(
                job_id=JOB, node_id=node, hostname=f"host-{node}"), timeout=10))
            if reply is not None:
                agent.sender, agent.sequence = reply.sender, reply.next_sequence
        elif agent.step == 1:
            reply = self._honest_call(agent, lambda: stub.Challenge(pb.ChallengeRequest(
                job_id=JOB, node_id=node), timeout=10))
            if reply is None:
                return
            self._report(agent, node, pb.Event(evidence=pb.Evidence(
                kind="test", blob=quote(node, reply.nonce), nonce=reply.nonce)),
                pb.Event(inventory=pb.Inventory(json=f'{{"host": "{node}"}}')),
                pb.Event(attempt=pb.AttemptRecord(attempt=0, run_id="run", ranks=ranks,
                                                  state="STARTED")))
        else:
            self._report(agent, node, pb.Event(attempt=pb.AttemptRecord(
                attempt=0, run_id="run", ranks=ranks, state="SUCCEEDED",
                exit_codes=dict.fromkeys(ranks, 0))))

    def _rank_step(self, agent: _Honest) -> None:
        rank = int(agent.name.removeprefix("rank-"))
        if agent.step == 0:
            reply = self._honest_call(agent, lambda: self.stub(agent.name).RegisterRank(
                pb.RegisterRankRequest(job_id=JOB, rank=rank, attempt=0, world_size=WORLD,
                                       node_id=NODE_OF[rank], run_id="run", pid=100 + rank),
                timeout=10))
            if reply is not None:
                agent.sender, agent.sequence = reply.sender, reply.next_sequence
        elif agent.step == 1:
            events = [pb.Event(shard=pb.ShardConsumed(name=f"data-{rank}",
                                                      digest={"sha256": sha(f"data-{rank}")},
                                                      samples=10))]
            if rank == 0:
                events.append(pb.Event(parameters=pb.Parameters(
                    external_json=f'{{"seed": {SEED}}}')))
            self._report(agent, agent.name, *events)
        else:
            self._report(agent, agent.name, pb.Event(file=pb.FileWritten(
                artifact="model", path=f"rank-{rank}.bin",
                digest={"sha256": sha(f"model-{rank}")}, size=1, role=pb.FINAL)),
                pb.Event(completed=pb.RankCompleted(exit_code=0, state="SUCCEEDED")))

    @rule(who=st.sampled_from([*HONEST, *(f"rank-{r}" for r in NODE_OF)]))
    def honest_step(self, who: str) -> None:
        agent = self.honest[who]
        if who in HONEST and agent.step == 2 and not all(
                self.honest[f"rank-{r}"].done for r in HONEST[who]):
            return  # a launcher reports how the attempt ended once its ranks exited
        self._advance(agent)

    # -- the adversary: node-m's certificate, any call --------------------------------

    def _adversary(self, call: Any) -> Any:
        try:
            return call(self.stub(ADVERSARY))
        except grpc.RpcError as exc:
            self.crashes += exc.code() == grpc.StatusCode.UNKNOWN  # judged at the end
            return None

    @rule(node=LIKELY_NODES)
    def adversary_registers_a_node(self, node: str) -> None:
        reply = self._adversary(lambda s: s.RegisterNode(pb.RegisterNodeRequest(
            job_id=JOB, node_id=node, hostname="evil"), timeout=10))
        if reply is not None:
            assert node == ADVERSARY, f"node-m registered as node {node!r}"
            self.next.setdefault(reply.sender, reply.next_sequence)

    @rule(node=LIKELY_NODES)
    def adversary_asks_a_nonce(self, node: str) -> None:
        reply = self._adversary(lambda s: s.Challenge(pb.ChallengeRequest(
            job_id=JOB, node_id=node), timeout=10))
        if reply is not None:
            assert node == ADVERSARY, f"node-m was issued a nonce of node {node!r}"
            self.nonces.append(reply.nonce)

    @rule(rank=st.integers(0, 5), attempt=st.integers(0, 2), worker=st.sampled_from([0, 1, 9]),
          node=LIKELY_NODES, world=st.sampled_from([WORLD] * 4 + [2, 6]),
          relay=st.sampled_from(["", "", ADVERSARY, ADVERSARY, "node-a"]))
    def adversary_registers_a_rank(self, rank: int, attempt: int, worker: int, node: str,
                                   world: int, relay: str) -> None:
        request = pb.RegisterRankRequest(job_id=JOB, rank=rank, attempt=attempt,
                                         world_size=world, node_id=node, run_id="evil",
                                         pid=666, worker=worker)
        if relay:
            reply = self._adversary(lambda s: s.Relay(pb.RelayRequest(
                job_id=JOB, node_id=relay, items=[pb.RelayItem(register=request)]),
                timeout=10))
            result = reply.results[0] if reply is not None else None
            registered = result.registered if result is not None and result.code == 0 \
                else None
        else:
            registered = self._adversary(lambda s: s.RegisterRank(request, timeout=10))
        if registered is None:
            return
        assert node == ADVERSARY, f"node-m registered rank {rank} under node {node!r}"
        assert relay in ("", ADVERSARY), f"node-m relayed as node {relay!r}"
        self.next.setdefault(registered.sender, registered.next_sequence)
        self.seen.calls += 1
        self.seen.ranks.append((rank, attempt, worker, node))
        self.seen.contradictions.append(f"a rank of its own: rank {rank} attempt {attempt}")

    @rule(target_sender=st.sampled_from(["own"] * 6 + ["rank/0/0/0", "rank/2/0/0",
                                                        "node/node-a", "rank/1/1/0"]),
          pick=st.integers(0, 7), events=BATCHES,
          sequence=st.sampled_from(["next", "next", "next", "1", "far"]),
          relay=st.sampled_from(["", "", ADVERSARY, "node-a"]))
    def adversary_reports(self, target_sender: str, pick: int, events: list[tuple[Any, ...]],
                          sequence: str, relay: str) -> None:
        own = sorted(self.next)
        sender = own[pick % len(own)] if target_sender == "own" and own else target_sender
        expected = self.next.get(sender, 1)
        first = {"next": expected, "1": 1, "far": expected + 5}[sequence]
        report = pb.ReportRequest(job_id=JOB, sender=sender, first_sequence=first,
                                  events=[self._event(e) for e in events])
        if relay:
            reply = self._adversary(lambda s: s.Relay(pb.RelayRequest(
                job_id=JOB, node_id=relay, items=[pb.RelayItem(report=report)]), timeout=10))
            result = reply.results[0] if reply is not None else None
            acked = result.reported if result is not None and result.code == 0 else None
        else:
            acked = self._adversary(lambda s: s.Report(report, timeout=10))
        if acked is None:
            return
        assert sender in self.next, f"node-m reported into sender {sender}"
        assert relay in ("", ADVERSARY), f"node-m relayed as node {relay!r}"
        new = acked.acked_through + 1 - expected
        self.next[sender] = acked.acked_through + 1
        if new <= 0:
            return  # a duplicate: nothing applied
        self.seen.calls += 1
        for event in events[len(events) - new:]:
            self._judge(event)

    def _event(self, spec: tuple[Any, ...]) -> pb.Event:
        kind = spec[0]
        if kind == "shard":
            return pb.Event(shard=pb.ShardConsumed(name=spec[1], digest={"sha256": spec[2]},
                                                   samples=spec[3]))
        if kind == "file":
            return pb.Event(file=pb.FileWritten(artifact=spec[1], path=spec[2],
                                                digest={"sha256": spec[3]}, size=1,
                                                role=spec[4]))
        if kind == "planned":
            return pb.Event(planned=pb.ArtifactPlanned(artifact=spec[1], files=spec[2]))
        if kind == "completed":
            return pb.Event(completed=pb.RankCompleted(exit_code=spec[1], state="SUCCEEDED"))
        if kind == "evidence":
            nonce = self.nonces[-1] if spec[2] and self.nonces else b"\0" * 32
            return pb.Event(evidence=pb.Evidence(kind="test", blob=quote(spec[1], nonce),
                                                 nonce=nonce))
        if kind == "attempt":
            return pb.Event(attempt=pb.AttemptRecord(attempt=spec[1], run_id="evil",
                                                     ranks=spec[2], state=spec[3],
                                                     exit_codes=spec[4]))
        if kind == "inventory":
            return pb.Event(inventory=pb.Inventory(json=spec[1]))
        if kind == "annotation":
            return pb.Event(annotation=pb.Annotation(key=spec[1], value_json='"evil"'))
        if kind == "parameters":
            return pb.Event(parameters=pb.Parameters(external_json=f'{{"seed": {spec[1]}}}'))
        if kind == "dependency":
            return pb.Event(dependency=pb.Dependency(kind="model", name=spec[1],
                                                     digest={"sha256": sha("evil")}))
        return pb.Event(capture_gap=pb.CaptureGap(what="evil", allowed=spec[1]))

    def _judge(self, spec: tuple[Any, ...]) -> None:
        """Rule 5's oracle: which accepted claims contradict an honest one."""
        STATS[f"accepted {spec[0]}"] += 1
        if spec[0] == "attempt":
            attempt, ranks = spec[1], spec[2]
            if attempt > 0:
                self.seen.contradictions.append(f"opened attempt {attempt}")
            if set(ranks) & set(NODE_OF):
                self.seen.contradictions.append(f"listed rank(s) {ranks} in attempt {attempt}")
        elif spec[0] == "parameters" and spec[1] != SEED:
            self.seen.contradictions.append(f"seed {spec[1]}")

    @rule()
    def adversary_finalizes(self) -> None:
        reply = self._adversary(lambda s: s.Finalize(pb.FinalizeRequest(
            job_id=JOB, reason="evil"), timeout=10))
        self.finalize_refused = self.finalize_refused and reply is None

    # -- the end: finish the honest job, finalize as an admin, judge the bundle --------

    def teardown(self) -> None:
        try:
            for _ in range(4):
                for who in self.honest:
                    self.honest_step(who)
            reply = self.stub("admin").Finalize(pb.FinalizeRequest(job_id=JOB), timeout=30)
            for channel in self.channels.values():
                channel.close()
            self._judge_bundle(Path(reply.bundle_path))
        finally:
            self.server.__exit__(None, None, None)
            shutil.rmtree(self.out, ignore_errors=True)

    def _judge_bundle(self, bundle: Path) -> None:
        result = check_bundle(bundle, keys=[self.pki.signer.public()])
        STATS.update([f"{min(self.seen.calls, 3)}+ adversary calls accepted",
                      "contradicted" if self.seen.contradictions else "not contradicted",
                      "verified" if result.ok else "not verified",
                      *(["an honest agent refused"] if any(a.stuck for a in
                                                           self.honest.values()) else [])])
        assert result.provenance is not None, result.checks  # signed by the coordinator
        provenance = result.provenance
        nodes = {n.node: n for n in provenance.node_records()}
        ranks = {r.rank: r for r in provenance.rank_records()}
        stuck = {name: a.stuck for name, a in self.honest.items() if a.stuck}
        assert self.finalize_refused, "node-m finalized the job"
        assert not self.crashes, "a call of node-m's was answered UNKNOWN (a crash)"

        # 1. No record holds a claim its principal may not make.
        for name, own in HONEST.items():
            if name in stuck or name not in nodes:
                continue
            record = nodes[name]
            assert [(a.attempt, a.ranks, a.state, dict(a.exit_codes)) for a in record.attempts] \
                == [(0, own, "SUCCEEDED", {str(r): 0 for r in own})], record.attempts
            assert [e.status for e in record.evidence] == ["verified"], record.evidence
            assert record.inventory == {"host": name}
            assert record.hostname == f"host-{name}"
        if ADVERSARY in nodes:
            for attempt in nodes[ADVERSARY].attempts:
                named = {int(k) for k in attempt.exit_codes}
                assert named <= set(attempt.ranks), (
                    f"node-m's attempt {attempt.attempt} names exit codes of rank(s) "
                    f"{sorted(named - set(attempt.ranks))}, which it did not list")
        for record in ranks.values():
            for attempt in record.attempts:
                assert attempt.relayed_by in ("", attempt.node), attempt
                if attempt.node in HONEST:
                    assert (attempt.attempt, attempt.run_id, attempt.workers) == \
                        (0, "run", (0,)), f"rank {record.rank}: {attempt}"
                    assert NODE_OF.get(record.rank) == attempt.node, record

        # 5. A contradiction of an honest claim does not verify.
        if self.seen.contradictions:
            assert not result.ok, ("verified although node-m " +
                                   "; ".join(self.seen.contradictions))
        # 6. A silent adversary leaves the honest job verifying.
        if not self.seen.calls and not stuck:
            assert result.ok, [c for c in result.checks if not c.ok]
        if not result.ok:
            return

        # 2. Every rank on the node whose launcher listed it; attempts are launchers'.
        listed = {(r, a.attempt): n.node for n in nodes.values() for a in n.attempts
                  for r in a.ranks}
        opened = {a.attempt for n in nodes.values() for a in n.attempts}
        for record in ranks.values():
            for attempt in record.attempts:
                assert attempt.attempt in opened, f"rank {record.rank}: {attempt}"
                assert listed.get((record.rank, attempt.attempt)) == attempt.node, record
        # 3. The subject: the model the final attempt's ranks wrote.
        (model,) = [c for c in provenance.checkpoints() if c.name == "model"]
        assert dict(model.written_by or {}) == {f"rank-{r}.bin": r for r in NODE_OF}
        assert [s.name for s in provenance.statement.subjects] == ["model"]
        assert provenance.statement.subjects[0].digest == model.root_digest
        # 4. The honest ranks' data, exactly as they sent it.
        for rank, node in NODE_OF.items():
            record = ranks[rank]
            assert record.completed
            assert record.node == node
            assert [(s.name, dict(s.digest), s.samples) for s in record.shards or ()] == \
                [(f"data-{rank}", {"sha256": sha(f"data-{rank}")}, 10)]
            assert [(f.artifact, f.path, f.digest) for f in record.files] == \
                [("model", f"rank-{rank}.bin", sha(f"model-{rank}"))]
            assert [(a.attempt, a.node, a.exit_code) for a in record.attempts] == \
                [(0, node, 0)]
        assert provenance.external_parameters.get("seed") == SEED


def test_an_adversary_node_cannot_make_the_bundle_say_what_it_may_not(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    global PKI  # noqa: PLW0603 -- a state machine takes no fixture: the run's one CA
    PKI = _Pki(tmp_path_factory.mktemp("adversary"))
    run_state_machine_as_test(Adversary, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
        derandomize=EXAMPLES <= 300,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))
    # The adversary is not toothless: its calls were accepted and contradicted honest
    # claims in some sequences, and jobs both verified and failed.
    reached = EXAMPLES // 10
    for outcome in ("contradicted", "not contradicted", "verified", "not verified",
                    "3+ adversary calls accepted"):
        assert STATS[outcome] >= min(reached, 5), (outcome, sorted(STATS.items())[-12:])
