"""Issue 25 finding 4: ``verify chain`` follows every recorded input, not only models
and datasets.

Zero-code capture records what a script read as dependencies of kind ``input``.
``verify chain`` followed only ``model`` and ``dataset``, so an unvetted "base model"
the job loaded left the chain at 0 gaps, and a resumed run (its inputs: the previous
run's checkpoint files, by digest) never reached the run before it. Every input with a
digest (any kind but code and packages) is now followed to the step whose *verified*
statement names it, or is a gap unless the policy allows it; the store's index only
proposes.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist.model._ledger import write_ledger
from slsa_dist.model._provenance import Provenance
from slsa_dist.model._statement import BUILD_TYPE, Statement
from slsa_dist.sign._dsse import sign_statement, write_bundle
from slsa_dist.sign._keys import Signer
from slsa_dist.verify._chain import ChainPolicy, StepRule, verify_chain
from slsa_dist.verify._store import Store

from support.sim import Cluster, done, sha, shard, written

BASE_MODEL = hashlib.sha256(b"an unvetted base model").hexdigest()


def _dependency(name: str, digest: str, kind: str = "input") -> pb.Event:
    return pb.Event(dependency=pb.Dependency(kind=kind, name=name, uri=f"file:///data/{name}",
                                             digest={"sha256": digest}))


def _job(folder: Path, signer: Signer, job_id: str, *events: pb.Event,
         ledger: bool = False) -> tuple[Path, Statement]:
    """A signed 1-rank job ``job_id``: the rank reads ``data-0``, sends ``events``, and
    writes an intermediate checkpoint ``ckpt`` and its final model ``model``."""
    cluster = Cluster(world_size=1, job_id=job_id)
    cluster.rank(0).report(shard("data-0"), *events,
                           written(f"{job_id}-ckpt", "__0_0.distcp"),
                           written(f"{job_id}-model", "weights.bin", role=pb.FINAL), done())
    cluster.state.finalize(job_id, "request", cluster.tick())
    folder.mkdir(parents=True, exist_ok=True)
    statement = cluster.state.statement(
        ledger=partial(write_ledger, folder / f"{job_id}.ledger.jsonl")) if ledger else \
        cluster.state.statement()
    bundle = write_bundle(folder / f"{job_id}.intoto.jsonl", [sign_statement(statement,
                                                                             [signer])])
    return bundle, statement


def _root(statement: Statement) -> str:
    (subject,) = [s for s in statement.subjects if "model" in (s.name or "")]
    return subject.digest["sha256"]


def _policy(signer: Signer, *allowed: str) -> ChainPolicy:
    return ChainPolicy(rules=(StepRule(build_type=BUILD_TYPE, keys=(signer.public(),)),),
                       allowed=frozenset({sha("data-0"), *allowed}))


def _chain(tmp_path: Path, signer: Signer, *bundles: Path, root: str,
           allowed: tuple[str, ...] = ()) -> tuple[list[str], list[str], bool]:
    store = Store(tmp_path / "store")
    for bundle in bundles:
        store.add(bundle, keys=[signer.public()])
    result = verify_chain(root, name="model", store=store, policy=_policy(signer, *allowed))
    return [s.name for s in result.unique_steps()], [g.reason for g in result.gaps], result.ok


def test_an_unvetted_input_the_job_read_is_a_gap(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle, statement = _job(tmp_path / "b", signer, "finetune",
                             _dependency("base-model.safetensors", BASE_MODEL))
    steps, gaps, ok = _chain(tmp_path, signer, bundle, root=_root(statement))
    assert steps == ["finetune"]
    assert not ok
    assert gaps == ["no provenance in the store produced this digest"]


def test_an_input_the_policy_allows_is_a_root(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle, statement = _job(tmp_path / "b", signer, "finetune",
                             _dependency("base-model.safetensors", BASE_MODEL))
    _, gaps, ok = _chain(tmp_path, signer, bundle, root=_root(statement),
                         allowed=(BASE_MODEL,))
    assert ok, gaps


@pytest.mark.parametrize("ledger", [False, True], ids=["inline", "ledger"])
def test_a_resumed_run_reaches_the_run_before_it(tmp_path: Path, ledger: bool) -> None:
    """Run 2 loaded run 1's intermediate checkpoint file (zero-code capture: an input by
    digest); the chain must reach run 1, whose verified records name that file."""
    signer = Signer.generate()
    first, _ = _job(tmp_path / "one", signer, "run-1", ledger=ledger)
    resumed_from = sha("run-1-ckpt__0_0.distcp")  # the digest support.sim.written gives
    second, statement = _job(tmp_path / "two", signer, "run-2",
                             _dependency("__0_0.distcp", resumed_from))
    steps, gaps, ok = _chain(tmp_path, signer, first, second, root=_root(statement))
    assert steps == ["run-2", "run-1"]
    assert ok, gaps


def test_a_resumed_run_that_loaded_the_checkpoint_folder_reaches_it(tmp_path: Path) -> None:
    """Loading a checkpoint folder records it by its OMS root: the root its signed record's
    files reproduce names it (an intermediate checkpoint is no subject)."""
    signer = Signer.generate()
    first, statement_one = _job(tmp_path / "one", signer, "run-1")
    record = Provenance.from_statement(statement_one).checkpoint("run-1-ckpt")
    assert record is not None
    folder_root = record.root_digest["sha256"]
    second, statement = _job(tmp_path / "two", signer, "run-2",
                             _dependency("run-1-ckpt", folder_root))
    steps, gaps, ok = _chain(tmp_path, signer, first, second, root=_root(statement))
    assert steps == ["run-2", "run-1"]
    assert ok, gaps


def test_the_index_is_no_shortcut_for_an_input(tmp_path: Path) -> None:
    """An index line mapping the unvetted input to a genuine, verified bundle that does not
    name it: still a gap."""
    signer = Signer.generate()
    other, _ = _job(tmp_path / "one", signer, "run-1")
    bundle, statement = _job(tmp_path / "b", signer, "finetune",
                             _dependency("base-model.safetensors", BASE_MODEL))
    store = Store(tmp_path / "store")
    stored, _ = store.add(other, keys=[signer.public()])
    store.add(bundle, keys=[signer.public()])
    index = tmp_path / "store" / "index" / "sha256" / BASE_MODEL
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(stored + "\n")
    result = verify_chain(_root(statement), name="model", store=store, policy=_policy(signer))
    assert not result.ok
    (gap,) = result.gaps
    assert gap.digest == BASE_MODEL
    assert "does not name this digest" in gap.reason


def test_code_and_packages_are_not_followed(tmp_path: Path) -> None:
    signer = Signer.generate()
    bundle, statement = _job(tmp_path / "b", signer, "train",
                             _dependency("train.py", sha("train.py"), kind="code"))
    _, gaps, ok = _chain(tmp_path, signer, bundle, root=_root(statement))
    assert ok, gaps
