"""Ray Train V2 on a real local Ray cluster: 2 CPU workers, one forced failure and restart."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from slsa_dist.model._records import MEDIA_CHECKPOINT, MEDIA_NODE, MEDIA_RANK  # noqa: E402
from slsa_dist.sign._formats import read_bundle  # noqa: E402
from slsa_dist.sign._loaders import load_verifier  # noqa: E402
from slsa_dist.verify._bundle import verify_bundle  # noqa: E402

from conftest import IN_CI  # noqa: E402
from support import swtpm  # noqa: E402
from support.background import signing_key  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


def train_fn(config: dict) -> None:  # type: ignore[type-arg]
    import ray.train

    context = ray.train.get_context()
    marker = Path(config["marker"])
    if context.get_world_rank() == 1 and not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("injected failure on the first attempt")  # before any collective
    for epoch in range(2):
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = None
            if context.get_world_rank() == 0:
                (Path(directory) / "model.pt").write_bytes(f"weights {epoch}".encode())
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report({"epoch": epoch}, checkpoint=checkpoint)


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    """A local Ray cluster whose workers reach a software TPM when one is installed."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with contextlib.ExitStack() as stack:
        env = {"RAY_DEDUP_LOGS": "0"}
        if swtpm.available() is None:
            env["TPM2TOOLS_TCTI"] = stack.enter_context(swtpm.swtpm())
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env})
        yield env
        ray.shutdown()


def test_a_torch_trainer_run_with_a_restart_gives_one_verified_provenance(
        cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from slsa_dist.ray import SlsaCallback

    key, public = signing_key(tmp_path)
    callback = SlsaCallback(key=key, out_dir=tmp_path / "provenance", job_id="ray-job-1")
    trainer = TorchTrainer(
        train_fn, train_loop_config={"marker": str(tmp_path / "failed-once")},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name="slsa-ray", storage_path=str(tmp_path / "ray-results"),
                             failure_config=FailureConfig(max_failures=1),
                             callbacks=[callback]))
    result = trainer.fit()
    assert result.error is None
    bundle = tmp_path / "provenance" / "ray-job-1.intoto.jsonl"
    provenance = verify_bundle(bundle, keys=[load_verifier(public)]).provenance
    ranks = {r["rank"]: r for r in provenance.records(MEDIA_RANK)}
    assert sorted(ranks) == [0, 1]  # both workers
    assert [a["attempt"] for a in ranks[1]["attempts"]] == [0, 1]  # the restart
    assert ranks[1]["attempts"][0]["state"] == "FAILED"
    assert ranks[1]["attempts"][1]["state"] == "SUCCEEDED"
    # #15: what the driver ran and the configuration the training function got
    assert provenance.external_parameters["trainLoopConfig"] == {
        "marker": str(tmp_path / "failed-once")}
    assert provenance.external_parameters["entryPoint"] != "ray.train"
    (controller,) = [n for n in provenance.records(MEDIA_NODE) if n["node"] == "ray-controller"]
    states = [(a["attempt"], a["state"]) for a in controller["attempts"]]
    assert (0, "RESTARTED") in states
    assert (1, "SUCCEEDED") in states
    topology = controller["reported"]["topology/attempt-1"]
    assert sorted(t["worldRank"] for t in topology) == [0, 1]
    assert all(t["nodeId"] and t["nodeIp"] for t in topology)
    # The Ray node itself: registered by its first worker in each attempt, with its
    # inventory and hardware evidence for this job (or the reason there is none).
    (node,) = [n for n in provenance.records(MEDIA_NODE) if n["node"] == topology[0]["nodeId"]]
    # Every rank attempt reported through its Ray node's relay (an actor on that node),
    # which speaks as that node.
    assert {a.get("relayedBy") for r in ranks.values() for a in r["attempts"]} == \
        {node["node"]}
    assert [(a["attempt"], a["state"]) for a in node["attempts"]][-1] == (1, "SUCCEEDED")
    assert node["challenges"] == 2  # one fresh nonce per attempt
    tpm = [e for e in node["evidence"] if e["kind"] == "tpm"]
    assert len(tpm) == 2
    if "TPM2TOOLS_TCTI" in cluster:
        assert {e["status"] for e in tpm} == {"verified"}
        assert "nonce, job and node binding" in tpm[0]["verified"]
        from slsa_dist.verify._attestation import require_attestation

        # The controller's pseudo-node ran no rank: the Ray node is what must prove itself.
        # Its quotes verify, but by an AK nothing vouches for here (no enrolled list, no EK
        # roots), so they count for nothing: named as such, not as a failed quote.
        check = require_attestation(provenance, "tpm")
        assert not check.ok
        assert "its quote is signed by an AK no root vouches for" in check.detail
    else:  # no swtpm here: each attempt recorded why (CI installs swtpm and must quote)
        assert not IN_CI, f"required under CI: software TPM: {swtpm.available()}"
        assert {e["status"] for e in tpm} == {"unavailable"}
    # Checkpoints digested in the worker before upload; the persisted path is annotated.
    checkpoints = {r["name"]: r for r in provenance.records(MEDIA_CHECKPOINT)}
    assert set(checkpoints) == {"ray-report-0", "ray-report-1"}
    import hashlib

    assert checkpoints["ray-report-1"]["resources"] == [{
        "name": "model.pt", "algorithm": "sha256",
        "digest": hashlib.sha256(b"weights 1").hexdigest()}]
    assert [s.name for s in provenance.statement.subjects] == ["ray-report-1"]
    assert "checkpoint/ray-report-1" in controller["reported"]
    payload = json.loads(read_bundle(bundle)[0].payload)
    assert payload["predicate"]["buildDefinition"]["internalParameters"]["launcher"] == \
        "ray-train"


def plain_train_fn(config: dict) -> None:  # type: ignore[type-arg]
    import ray.train

    ray.train.report({"done": 1})


def test_ray_train_callbacks_env_var_needs_no_code_change(
        cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    key, public = signing_key(tmp_path)
    monkeypatch.setenv("RAY_TRAIN_CALLBACKS", "slsa_dist.ray.SlsaCallback")
    monkeypatch.setenv("SLSA_KEY", str(key))
    monkeypatch.setenv("SLSA_OUT", str(tmp_path / "provenance"))
    monkeypatch.setenv("SLSA_JOB_ID", "ray-env-1")
    trainer = TorchTrainer(plain_train_fn, scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(name="slsa-ray-env",
                                                storage_path=str(tmp_path / "ray-results")))
    assert trainer.fit().error is None
    provenance = verify_bundle(tmp_path / "provenance" / "ray-env-1.intoto.jsonl",
                               keys=[load_verifier(public)]).provenance
    assert sorted(r["rank"] for r in provenance.records(MEDIA_RANK)) == [0, 1]


def data_train_fn(config: dict) -> None:  # type: ignore[type-arg]
    """As users write it, unchanged: a DataLoader through prepare_data_loader, then a
    pass over the Ray Data shard with iter_torch_batches."""
    import ray.train
    import torch
    from ray.train.torch import prepare_data_loader
    from torch.utils.data import DataLoader, TensorDataset

    data = torch.load(config["data"])
    loader = prepare_data_loader(DataLoader(TensorDataset(data["x"], data["y"]),
                                            batch_size=8, shuffle=True))
    rows = sum(len(x) for x, _ in loader)
    rows += sum(len(batch["id"]) for batch in
                ray.train.get_dataset_shard("train").iter_torch_batches(batch_size=4))
    ray.train.report({"rows": rows})


def _controller_said(text: str) -> list[str]:
    """Lines of the Train controller's stdout with ``text``: what Ray forwards to the
    driver when log_to_driver is on (this cluster keeps it off)."""
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    return [line for out in logs.glob("worker-*.out")
            for line in out.read_text(errors="replace").splitlines() if text in line]


def test_prepare_data_loader_and_ray_data_are_recorded_per_worker(
        cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from slsa_dist.cli import main as cli
    from slsa_dist.ray import SlsaCallback

    key, public = signing_key(tmp_path)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    torch.save({"x": x, "y": x.sum(dim=1)}, tmp_path / "data.pt")
    trainer = TorchTrainer(
        data_train_fn, train_loop_config={"data": str(tmp_path / "data.pt")},
        datasets={"train": ray.data.range(24)},
        # Half a CPU each: Ray Data's read tasks need the cluster's last CPU (with both
        # taken by the workers, iter_torch_batches waits for one forever).
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False,
                                     resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="slsa-ray-data", storage_path=str(tmp_path / "ray-results"),
                             callbacks=[SlsaCallback(key=key, out_dir=tmp_path / "provenance",
                                                     job_id="ray-data-1")]))
    assert trainer.fit().error is None
    bundle = tmp_path / "provenance" / "ray-data-1.intoto.jsonl"
    provenance = verify_bundle(bundle, keys=[load_verifier(public)]).provenance
    completeness = provenance.completeness()
    assert completeness is not None
    assert completeness.complete, completeness
    inputs = {d.name: d.digest["sha256"] for d in provenance.dependencies
              if d.annotations.get("slsadist_kind") == "input"}
    # read by the workers, outside their working directory: named by its path
    assert inputs.get(str(tmp_path / "data.pt")) == hashlib.sha256(
        (tmp_path / "data.pt").read_bytes()).hexdigest(), inputs
    records = {r.rank: r for r in provenance.rank_records()}
    assert sorted(records) == [0, 1]
    draws, rows = {}, {}
    for rank, record in records.items():
        shards = {s.name: s for s in record.shards or ()}
        loader = shards["index:TensorDataset"]  # prepare_data_loader's DistributedSampler
        assert loader.samples == 16
        assert (loader.sampler["type"], loader.sampler["num_replicas"],
                loader.sampler["rank"]) == ("DistributedSampler", 2, rank)
        draws[rank] = loader.index_digest
        shard = shards["ray-data:train"]
        assert shard.samples == 12  # its split of the 24 rows
        assert shard.sampler["worldRank"] == rank
        rows[rank] = shard.index_digest  # the rows' contents, in order
        final = record.attempts[-1]
        assert (final.state, final.exit_code) == ("SUCCEEDED", 0)
    assert draws[0] != draws[1]
    assert all(rows.values())
    assert rows[0] != rows[1]
    # the Ray data set's index space is no dependency
    assert not [d for d in provenance.dependencies if (d.uri or "").startswith("slsa-dist:")]
    # slsa-dist inspect: one node (the Train controller is a launcher, not a node)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["inspect", str(bundle), "--key", str(public)]) == 0
    assert "nodes (1):" in out.getvalue(), out.getvalue()
    assert "launchers without ranks (1): ray-controller" in out.getvalue()
    # the closing line Ray forwards to the driver: the bundle and how to verify it
    (line,) = _controller_said(f"slsa-dist: wrote {bundle}")
    assert "2 rank(s)" in line, line
    assert line.split("; verify with")[0].endswith("complete"), line
    assert f"verify with: slsa-dist verify {bundle} --key {public}" in line


def dying_train_fn(config: dict) -> None:  # type: ignore[type-arg]
    """Rank 0 (its node's first worker) dies at once, hard; rank 1 saves a checkpoint after
    that, and is then torn down by Ray."""
    import os
    import time

    import ray.train

    context = ray.train.get_context()
    marker = Path(config["marker"])
    if context.get_world_rank() == 0:
        marker.write_text(str(os.getpid()))
        os._exit(1)
    for _ in range(600):  # rank 0's process gone (one node: its pid is seen here)
        pid = marker.read_text() if marker.exists() else ""
        if pid:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
        time.sleep(0.02)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "late.pt").write_bytes(b"saved after rank 0 died")
        # The digest is reported before the report's barrier, which waits for rank 0 in
        # vain until Ray tears the group down.
        ray.train.report({"late": 1},
                         checkpoint=ray.train.Checkpoint.from_directory(directory))


@pytest.mark.timeout(120)
def test_a_worker_that_dies_takes_no_relay_and_no_peer_reports_with_it(
        cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The relay is an actor of the controller's on the Ray node, not a worker: when the
    node's first worker dies, its peer's later reports still arrive through it."""
    import hashlib

    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from slsa_dist.ray import SlsaCallback

    key, public = signing_key(tmp_path)
    trainer = TorchTrainer(
        dying_train_fn, train_loop_config={"marker": str(tmp_path / "died")},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name="slsa-ray-dies", storage_path=str(tmp_path / "ray-results"),
                             failure_config=FailureConfig(max_failures=0),
                             callbacks=[SlsaCallback(key=key, out_dir=tmp_path / "provenance",
                                                     job_id="ray-dies-1")]))
    with contextlib.suppress(Exception):  # the run fails: rank 0 died
        trainer.fit()
    from slsa_dist.verify._bundle import check_bundle

    result = check_bundle(tmp_path / "provenance" / "ray-dies-1.intoto.jsonl",
                          keys=[load_verifier(public)])
    provenance = result.provenance
    assert provenance is not None
    ranks = {r["rank"]: r for r in provenance.records(MEDIA_RANK)}
    (node,) = [n["node"] for n in provenance.records(MEDIA_NODE) if n["node"] != "ray-controller"]
    assert ranks[1]["attempts"][-1]["relayedBy"] == node
    # Rank 1's checkpoint, digested after rank 0 died, arrived through the node's relay.
    checkpoints = {r["name"]: r for r in provenance.records(MEDIA_CHECKPOINT)}
    assert {name: r["resources"] for name, r in checkpoints.items()} == {"ray-report-0": [{
        "name": "late.pt", "algorithm": "sha256",
        "digest": hashlib.sha256(b"saved after rank 0 died").hexdigest()}]}
    # The run failed, and the bundle says what never came (rank 0 died without a word;
    # Ray tore rank 1 down as it stood): that, and nothing else, fails verification.
    assert [c.name for c in result.failures] == ["completeness"], result.failures
