"""Ray Train (V2, ray 2.60) under one provenance per run.

    from slsa_dist.ray import SlsaCallback
    trainer = TorchTrainer(train_fn, scaling_config=..., run_config=RunConfig(
        callbacks=[SlsaCallback()]))

or, with no code change: ``RAY_TRAIN_CALLBACKS=slsa_dist.ray.SlsaCallback``.

In the controller it starts (or connects to, with ``SLSA_COORDINATOR``) the
run's coordinator, records each worker group as an attempt with its topology
(node id, IP, GPU ids, world/local/node rank), restarts and worker failures,
and the persisted location of every checkpoint reported. In each worker it
starts the rank agent (inventory, code, parameters; data capture reuses the
torch integration: ``slsa_dist.torch.RecordingSampler``), digests every
checkpoint handed to ``ray.train.report`` *before* upload (no download in the
controller), and reports the worker's final state. The first worker on each
Ray node (local rank 0) also runs that node's agent for the attempt: it
registers the node (by Ray node id), reports its inventory and packages, and
its hardware evidence answering a fresh nonce (TPM through
``TPM2TOOLS_TCTI`` or ``/dev/tpmrm0``, TDX/SEV-SNP, NVIDIA CC; or why
there is none), and the attempt's state as that worker saw it.
Ranks report through a node relay per Ray node (as under torchrun): a Ray actor
the controller starts on each node its workers were placed on (pinned to it,
``NodeAffinitySchedulingStrategy(soft=False)``, no CPU), that speaks as that Ray
node, outlives the workers and their attempts, and is stopped after the
run; a worker that dies takes no relay with it, so its peers' reports still
arrive. A node whose relay could not start (``SLSA_NODE_RELAY=0``: none at
all) reports directly, paced (each worker's first call waits for its slot at
``SLSA_COORDINATOR_RATE``) and under the coordinator's back-pressure.
Zero-code capture is on in every worker: the ``DataLoader`` that
``prepare_data_loader`` makes (its ``DistributedSampler``: samples and the
digest of the indices each rank drew) and every pass over a Ray Data shard
(``iter_torch_batches``, ``iter_batches``: rows, and a digest of the rows'
contents when the batches are in host memory) are recorded per worker, as are
the files it reads and saves. When the controller ran the coordinator, the
driver's log gets one closing line naming the bundle and how to verify it.

Settings: ``SLSA_COORDINATOR`` (an existing coordinator; otherwise one runs in
the controller, which needs ``SLSA_KEY``), ``SLSA_JOB_ID`` (default: Ray's
run id), ``SLSA_OUT`` (where that coordinator writes bundles, default
``provenance``), ``SLSA_SPOOL_DIR``, ``SLSA_COORDINATOR_RATE`` (the calls/s
the coordinator serves: workers without a relay start reporting paced to it,
``collect._agent.start_delay``).

Ray calls only the user hooks (``after_report``, ``after_exception``) of a
public ``UserCallback``; worker topology, restarts and worker-side capture
need Ray's internal callback classes (DeveloperAPI), so this callback is
built on them and works with the Ray version it was written against
(2.60.x); with another version it refuses to start rather than record half.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

import ray
from ray.train import UserCallback  # the base when Ray is not 2.60.x

from slsa_dist.capture import _runtime as runtime
from slsa_dist.capture._auto import install
from slsa_dist.collect._agent import Agent
from slsa_dist.collect._node import start_node_agent
from slsa_dist.digest._manifest import digest_path
from slsa_dist.integrations import _contract
from slsa_dist.model._records import INDEX_URI
from slsa_dist.model._statement import BUILDER_IDS

__all__ = ["SlsaCallback", "report_with_digests"]

log = logging.getLogger(__name__)
SUPPORTED = ray.__version__.startswith("2.60.")

if SUPPORTED:
    # Ray calls only the user hooks of a UserCallback, so full capture needs the
    # internal (DeveloperAPI) classes; they are used with Ray 2.60.x only.
    from ray.train.v2._internal.execution.callback import (
        ControllerCallback,
        ReportCallback,
        WorkerCallback,
        WorkerGroupCallback,
    )
    _BASES: tuple[type, ...] = (ControllerCallback, WorkerGroupCallback, WorkerCallback,
                                ReportCallback)
else:  # pragma: no cover - depends on the installed Ray
    _BASES = (UserCallback,)



def _record_checkpoint(checkpoint: Any, index: int) -> None:
    """Digest a checkpoint's local files in this worker and report them."""
    rt = runtime.current()
    path = getattr(checkpoint, "path", None)
    if rt is None or path is None or not Path(path).exists():
        return
    manifest = digest_path(path, ignore_paths=())  # all of it: what verify will hash
    for resource in manifest.resources:
        name = resource.path if resource.path != "." else Path(path).name
        rt.agent.record_file(f"ray-report-{index}", name, {"sha256": resource.digest},
                             size=resource.size, role="checkpoint")
    # Sent before Ray's report barrier, which may never return: when a peer has died, Ray
    # tears this worker down while it waits there (bounded; a timeout loses nothing, the
    # events stay queued and spooled as ever).
    flush = getattr(rt.agent, "flush", None)  # the rank agent has one (a Recorder need not)
    if callable(flush):
        flush(timeout=_CHECKPOINT_FLUSH_S)


_REPORTS = [0]
_CHECKPOINT_FLUSH_S = 5.0


def report_with_digests(metrics: dict[str, Any], checkpoint: Any = None,
                        **kwargs: Any) -> None:
    """``ray.train.report`` that first digests the checkpoint's files in this worker."""
    index = _REPORTS[0]
    _REPORTS[0] += 1
    if checkpoint is not None:
        try:
            _record_checkpoint(checkpoint, index)
        except Exception as exc:  # the user's report goes on; the bundle says what is missing
            runtime.capture_gap(f"Ray checkpoint ray-report-{index}", exc)
    _ORIGINAL_REPORT(metrics, checkpoint=checkpoint, **kwargs)


_ORIGINAL_REPORT = ray.train.report


def _digest_batch(digest: Any, batch: Any) -> int:
    """Add a batch's columns (name, dtype, shape, bytes) to ``digest``; its row count.
    Raises ``TypeError`` for a batch not in host memory (a GPU tensor): not copied back."""
    columns = batch if isinstance(batch, dict) else {"": batch}
    rows = 0
    for name in sorted(columns):
        column = columns[name]
        if hasattr(column, "device") and getattr(column.device, "type", "cpu") != "cpu":
            raise TypeError(f"column {name!r} is on {column.device}")
        array = column.numpy() if hasattr(column, "numpy") else column
        import numpy as np

        array = np.ascontiguousarray(array)
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
        rows = len(array)
    return rows


class _RecordedPass:
    """A Ray Data iterable whose every pass is recorded for this worker: the batches flow
    unchanged; their rows are counted, and their contents digested while they are in host
    memory, and reported when the pass ends."""

    def __init__(self, source: Any, name: str, passes: list[int]) -> None:
        self._source = source
        self._name = name
        self._passes = passes  # per iterator: the epoch of each pass

    def __iter__(self) -> Any:
        epoch = self._passes[0]
        self._passes[0] += 1
        rows, digest, why = 0, hashlib.sha256(), ""
        for batch in self._source:
            if why != "counting":
                try:
                    rows += _digest_batch(digest, batch) if not why else _rows(batch)
                except TypeError as exc:  # on a device: counted, not digested
                    why, rows = str(exc), rows + _rows(batch)
                except Exception as exc:  # counted no further; the batches still flow
                    why = "counting"
                    runtime.capture_gap(f"Ray Data shard {self._name!r}", exc)
            yield batch
        if why != "counting":
            _report_ray_data(self._name, rows, epoch, "" if why else digest.hexdigest(), why)


def _rows(batch: Any) -> int:
    if isinstance(batch, dict):
        return len(next(iter(batch.values()))) if batch else 0
    return len(batch)


def _report_ray_data(name: str, rows: int, epoch: int, contents: str, why: str) -> None:
    try:
        rt = runtime.current()
        if rt is None or rt.completed:
            return
        sampler: dict[str, Any] = {"type": "ray.data.DataIterator", "worldRank": rt.rank,
                                   "worldSize": rt.world_size,
                                   "indexDigest": "sha256 of the rows' contents, in order"}
        if why:
            sampler["indexDigest"] = f"none: {why}"
        # Like a DataLoader's index space: the shard names the Ray dataset, not its bytes
        identity = hashlib.sha256(f"ray.data\0{name}".encode()).hexdigest()
        rt.agent.record_shard(f"ray-data:{name}", {"sha256": identity},
                              uri=f"{INDEX_URI}ray.data/{name}", samples=rows, epoch=epoch,
                              index_digest=contents, sampler=sampler)
    except Exception as exc:
        runtime.capture_gap(f"Ray Data shard {name!r}", exc)


def _record_ray_data() -> None:
    """Every pass over a Ray Data iterator in this worker is recorded (``_iter_batches``,
    which ``iter_batches``, ``iter_torch_batches`` and ``iter_rows`` share), and the
    shards ``get_dataset_shard`` hands out carry their dataset's name."""
    from ray.data.iterator import DataIterator

    original = DataIterator._iter_batches  # noqa: SLF001 -- the one path all passes share
    if not hasattr(original, "__slsa_dist_original__"):
        def _iter_batches(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            try:
                name = str(getattr(self, "_slsa_dataset", None) or "dataset")
                passes = self.__dict__.setdefault("_slsa_passes", [0])
                return _RecordedPass(result, name, passes)
            except Exception as exc:  # iterate unrecorded, and say so
                runtime.capture_gap("Ray Data iterator", exc)
                return result

        _iter_batches.__slsa_dist_original__ = original  # type: ignore[attr-defined]
        setattr(DataIterator, "_iter_batches", _iter_batches)  # noqa: B010
    from ray.train.v2.api import train_fn_utils

    shard = train_fn_utils.get_dataset_shard
    if not hasattr(shard, "__slsa_dist_original__"):
        def get_dataset_shard(dataset_name: str | None = None) -> Any:
            iterator = shard(dataset_name)
            try:
                if iterator is not None:
                    setattr(iterator, "_slsa_dataset", dataset_name or "dataset")  # noqa: B010
            except Exception:  # a name is a label only
                log.debug("slsa-dist: could not name a Ray Data shard", exc_info=True)
            return iterator

        get_dataset_shard.__slsa_dist_original__ = shard  # type: ignore[attr-defined]
        train_fn_utils.get_dataset_shard = get_dataset_shard
        if getattr(ray.train, "get_dataset_shard", None) is shard:
            ray.train.get_dataset_shard = get_dataset_shard


class _RelayActor:
    """A Ray node's relay (``collect._relay.NodeRelay``), as a Ray actor on that node: its
    ranks reach it over a Unix socket there; it speaks to the coordinator as the node (with
    the node's certificate when ``SLSA_TLS_DIR`` names one)."""

    def __init__(self, coordinator: str, job_id: str, node_id: str) -> None:
        import tempfile

        from slsa_dist.collect._agent import NodeIdentity, tls_from_env
        from slsa_dist.collect._relay import NodeRelay

        # The same path for the same job and node: a relay Ray restarts (it died) listens
        # where the ranks' channels reconnect. Unix socket paths are short (108 bytes): a
        # per-user folder, a hashed name.
        tag = hashlib.sha256(f"{job_id}/{node_id}".encode()).hexdigest()
        path = Path(tempfile.gettempdir()) / f"slsa-{os.getuid()}" / f"{tag[:16]}.sock"
        self._relay = NodeRelay(coordinator=coordinator, job_id=job_id, node_id=node_id,
                                socket_path=path,
                                credentials=tls_from_env(NodeIdentity(node_id=node_id)))
        self._address = self._relay.start()

    def address(self) -> str:
        return self._address

    def forwarded(self) -> int:
        return self._relay.forwarded

    def close(self, grace: float) -> int:
        """Forward what is queued (up to ``grace`` seconds) and stop; Relay calls made."""
        self._relay.close(grace)
        return self._relay.forwarded


# How long the controller waits for a node's relay to start before its ranks report
# directly.
RELAY_START_SECONDS = 30.0


class _Controller:
    """The run's controller-side state. Ray hands copies of a callback to its
    components, so this lives at module level: each run has its own controller
    actor process."""

    def __init__(self) -> None:
        self.agent: Any = None
        self.server: Any = None
        self.coordinator: str | None = None
        self.job_id: str | None = None
        self.attempt = -1
        self.reports = 0
        # Ray node id -> (its relay actor, the relay's address); None: none could start.
        self.relays: dict[str, tuple[Any, str] | None] = {}

    def start_relays(self, node_ids: set[str]) -> dict[str, str]:
        """One relay per Ray node that has none yet, each pinned to its node and owned by
        the controller; the address of every node's relay that runs."""
        if os.environ.get("SLSA_NODE_RELAY", "1") == "0" or not self.coordinator \
                or not self.job_id:
            return {}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # Restarted on its node if it dies (the relay keeps nothing: ranks resend what it
        # did not answer).
        actor_class: Any = ray.remote(num_cpus=0, max_restarts=3)(_RelayActor)
        started: dict[str, Any] = {}
        for node in sorted(node_ids - set(self.relays)):
            started[node] = actor_class.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(self.coordinator, self.job_id, node)
        for node, actor in started.items():
            try:
                address = str(ray.get(actor.address.remote(), timeout=RELAY_START_SECONDS))
                self.relays[node] = (actor, address)
            except Exception as exc:  # its ranks report directly; the run goes on
                log.warning("slsa-dist: no node relay on Ray node %s (%s); its ranks report "
                            "to the coordinator directly", node, exc)
                ray.kill(actor)
                self.relays[node] = None
        return {node: relay[1] for node, relay in self.relays.items() if relay is not None}

    def stop_relays(self, grace: float) -> None:
        """Forward what the relays hold, then stop them (the run is over)."""
        actors = [relay[0] for relay in self.relays.values() if relay is not None]
        try:
            ray.get([actor.close.remote(grace) for actor in actors], timeout=grace + 10)
        except Exception as exc:  # the run is over; what did not arrive is recorded missing
            log.warning("slsa-dist: a node relay did not stop cleanly (%s)", exc)
        for actor in actors:
            ray.kill(actor)
        self.relays.clear()


_STATE = _Controller()
# The node agent this worker process runs, when it is its node's first worker.
_NODE: list[Agent] = []


class SlsaCallback(*_BASES):  # type: ignore[misc]
    """Brings a Ray Train run under one slsa-dist provenance."""

    def __init__(self, *, coordinator: str | None = None, job_id: str | None = None,
                 key: str | os.PathLike[str] | None = None,
                 out_dir: str | os.PathLike[str] | None = None) -> None:
        # Made in the driver: what it runs, and the code beside it (the module that
        # defines train_loop_per_worker lives there), identified before Ray ships it.
        from slsa_dist.capture._auto import local_code

        main = sys.modules.get("__main__")
        self.driver = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
        # named once, here: workers may run elsewhere, from another working directory
        self.entry_point = _contract.entry_point_name(self.driver) or "ray.train"
        self.driver_arguments = list(sys.argv[1:])
        self.code = local_code(self.driver if str(self.driver).endswith(".py") else None)
        self.coordinator = coordinator or os.environ.get("SLSA_COORDINATOR")
        self.job_id = job_id or os.environ.get("SLSA_JOB_ID")
        self.key = str(key or os.environ.get("SLSA_KEY") or "")
        self.out_dir = str(out_dir or os.environ.get("SLSA_OUT", "provenance"))
        self.spool_dir = os.environ.get("SLSA_SPOOL_DIR")
        # The driver's pacing setting for workers without a relay (collect._agent).
        self.coordinator_rate = os.environ.get("SLSA_COORDINATOR_RATE")
        self.attempt = -1
        self.relays: dict[str, str] = {}  # Ray node id -> its relay's address (workers)
        if not SUPPORTED:
            raise RuntimeError(f"slsa-dist: Ray {ray.__version__} is not supported: the Ray "
                               "Train capture is written against Ray 2.60.x internals")

    # -- controller ---------------------------------------------------------------------

    def after_controller_start(self, train_run_context: Any) -> None:
        from slsa_dist.collect._agent import Agent, NodeIdentity

        state = _STATE
        state.job_id = self.job_id or f"ray-{train_run_context.run_id}"
        state.coordinator = self.coordinator
        world = int(train_run_context.scaling_config.num_workers)
        if not state.coordinator:
            if not self.key:
                raise ValueError("slsa-dist: set SLSA_COORDINATOR, or SLSA_KEY so the "
                                 "controller can run the coordinator")
            from slsa_dist.collect._coordinator import CoordinatorThread
            from slsa_dist.sign._loaders import load_signer

            # No settle timer: between a failed attempt's last rank and the next attempt's
            # first one, every rank has ended and the controller said RESTARTED, and a
            # timer would finalize the job there whenever Ray restarts slower than it.
            # The controller knows when the run is over (after_controller_finish).
            state.server = CoordinatorThread(
                job_id=state.job_id, signer=load_signer(self.key), out_dir=self.out_dir,
                world_size=world, settle=math.inf, builder_id=BUILDER_IDS["ray"],
                internal_parameters={"launcher": "ray-train", "rayVersion": ray.__version__})
            state.server.__enter__()
            state.coordinator = state.server.address
        state.agent = Agent(coordinator=state.coordinator, job_id=state.job_id,
                            spool_dir=self.spool_dir,
                            identity=NodeIdentity(node_id="ray-controller",
                                                  hostname=socket.gethostname()))
        external: dict[str, Any] = {"entryPoint": self.entry_point,
                                    "arguments": self.driver_arguments, "worldSize": world}
        if train_run_context.train_loop_config:
            external["trainLoopConfig"] = dict(train_run_context.train_loop_config)
        state.agent.set_parameters(
            external=external,
            internal={"launcher": "ray-train", "rayVersion": ray.__version__,
                      "runName": str(train_run_context.run_config.name)})
        for path, digest in self.code:  # the driver script and the modules beside it
            state.agent.record_dependency("code", name=Path(path).name, uri=Path(path).as_uri(),
                                          digest={"sha256": digest},
                                          annotations={"slsadist_captured": "driver"})

    def before_worker_group_start(self, worker_group_context: Any) -> None:
        _STATE.attempt += 1
        # This instance is pickled into the workers next: give it their settings.
        self.coordinator, self.job_id, self.attempt = (_STATE.coordinator, _STATE.job_id,
                                                       _STATE.attempt)

    def before_init_train_context(self, workers: list[Any]) -> dict[str, list[Any]]:
        """The workers are placed, not yet started: a relay on each of their nodes (kept
        from an earlier attempt where there is one). This instance is pickled into the
        workers next: each finds its node's relay here."""
        try:
            self.relays = _STATE.start_relays({str(w.metadata.node_id) for w in workers})
        except Exception as exc:  # no relays: every rank reports directly
            log.warning("slsa-dist: no node relays (%s); ranks report directly", exc)
            self.relays = {}
        return {}

    def after_worker_group_start(self, worker_group: Any) -> None:
        topology = []
        for worker in worker_group.get_workers():
            meta, dist = worker.metadata, worker.distributed_context
            topology.append({"worldRank": dist.world_rank, "worldSize": dist.world_size,
                             "localRank": dist.local_rank, "nodeRank": dist.node_rank,
                             "nodeId": meta.node_id, "nodeIp": meta.node_ip,
                             "hostname": meta.hostname, "pid": meta.pid,
                             "gpuIds": [str(g) for g in (meta.accelerator_ids or {}).get(
                                 "GPU", [])]})
        _STATE.agent.annotate(f"topology/attempt-{_STATE.attempt}", topology)
        # An attempt record lists the ranks a node launched on itself (it binds them to
        # that node); the controller launches none, so its membership view is the
        # topology annotation above, and each Ray node's agent lists its own.
        _STATE.agent.record_attempt(attempt=_STATE.attempt, run_id=_STATE.job_id or "",
                                    ranks=[], state="STARTED")

    def after_controller_state_update(self, previous_state: Any, current_state: Any) -> None:
        if type(current_state).__name__ == "RestartingState" and _STATE.agent is not None:
            _STATE.agent.record_attempt(attempt=_STATE.attempt, run_id=_STATE.job_id or "",
                                        ranks=[], state="RESTARTED")

    def after_worker_group_poll_status(self, worker_group_status: Any) -> None:
        errors = getattr(worker_group_status, "errors", None) or {}
        if errors and _STATE.agent is not None:
            _STATE.agent.annotate(f"failures/attempt-{_STATE.attempt}",
                                  {str(rank): repr(exc)[:300] for rank, exc in errors.items()})

    def after_report(self, training_report: Any, metrics: list[dict[str, Any]]) -> None:
        checkpoint = getattr(training_report, "checkpoint", None)
        if checkpoint is not None:
            _STATE.agent.annotate(f"checkpoint/ray-report-{_STATE.reports}", {
                "path": str(checkpoint.path),
                "filesystem": type(checkpoint.filesystem).__name__})
        _STATE.reports += 1

    def after_controller_finish(self, result: Any) -> None:
        failed = getattr(result, "error", None) is not None
        _STATE.agent.record_attempt(attempt=_STATE.attempt, run_id=_STATE.job_id or "",
                                    ranks=[], state="FAILED" if failed else "SUCCEEDED")
        _STATE.agent.close(timeout=60)
        # Every worker is gone: what the relays still hold goes out, then they stop.
        _STATE.stop_relays(float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")) / 3)
        if _STATE.server is not None:
            try:
                bundle = self._finalize(_STATE.server).bundle
                log.info("slsa-dist: provenance written to %s", bundle)
                # one closing line, as slsa-torchrun prints; Ray forwards it to the driver
                print(f"slsa-dist: wrote {bundle}: {self._summary(Path(bundle))}",
                      flush=True)
            finally:
                _STATE.server.__exit__()

    @staticmethod
    def _finalize(server: Any) -> Any:
        """The run is over and Ray has shut every worker down: the coordinator finalizes
        as soon as every rank and node reported how it ended; what has not arrived within
        ``SLSA_FINISH_WAIT`` seconds (a worker killed before its last report) will not,
        so the controller finalizes then, and the bundle says what is missing."""
        import concurrent.futures

        try:
            return server.wait_finalized(float(os.environ.get("SLSA_FINISH_WAIT", "10")))
        except (TimeoutError, concurrent.futures.TimeoutError):
            log.warning("slsa-dist: not every rank or node reported how it ended; "
                        "finalizing without them")
            return server.finalize("ray-controller-finished")

    def _summary(self, bundle: Path) -> str:
        """What the bundle holds, checked with the public key beside the signing key,
        and the command that verifies it."""
        from slsa_dist.integrations._onecommand import _summary

        public = Path(self.key).with_suffix(".pub")
        if not public.is_file():
            return f"verify with: slsa-dist verify {bundle} --key <the public key>"
        try:
            summary = _summary(bundle, public)
        except Exception as exc:  # the bundle is written; only its summary is not
            summary = f"could not be summarized ({type(exc).__name__})"
        return f"{summary}; verify with: slsa-dist verify {bundle} --key {public}"
    # -- workers ----------------------------------------------------------------------

    def after_init_train_context(self) -> None:
        _REPORTS[0] = 0  # counted per worker group: Ray may reuse this process from another
        context = ray.train.get_context()
        node_id = ray.get_runtime_context().get_node_id()
        if context.get_local_rank() == 0 and self.coordinator and self.job_id:
            # Ray node ranks change between attempts; the node id is the stable identity.
            node = start_node_agent(coordinator=self.coordinator, job_id=self.job_id,
                                    node_id=node_id, spool_dir=self.spool_dir)
            # Every rank this node runs in this attempt: the list binds them to the node
            # (collect._authority). Ray Train places a node's workers at consecutive world
            # ranks, local rank 0 first.
            first = context.get_world_rank()
            node.record_attempt(attempt=self.attempt, run_id=self.job_id,
                                ranks=range(first, first + context.get_local_world_size()),
                                state="STARTED")
            # Acknowledged before training starts: a worker that fails is torn down by
            # Ray at once, and its node's evidence must not go down with it.
            node.flush(timeout=float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")))
            _NODE.append(node)
        # This node's relay (its agent reads SLSA_RELAY); none: straight to the coordinator.
        relay = self.relays.get(node_id, "")
        if relay:
            os.environ["SLSA_RELAY"] = relay
        else:
            os.environ.pop("SLSA_RELAY", None)
            # Straight to the coordinator: paced at the driver's rate (or the default).
            if getattr(self, "coordinator_rate", None):
                os.environ["SLSA_COORDINATOR_RATE"] = str(self.coordinator_rate)
        rt = _contract.init(coordinator=self.coordinator, job_id=self.job_id,
                            rank=context.get_world_rank(),
                            world_size=context.get_world_size(), attempt=self.attempt,
                            node_id=node_id, spool_dir=self.spool_dir, finish_at_exit=False,
                            argv=[str(self.driver or "ray.train"), *self.driver_arguments],
                            entry_point=self.entry_point)
        # zero-code capture: prepare_data_loader's DataLoader, Ray Data passes, reads, saves
        for what, start in (("zero-code capture", lambda: install(rt)),
                            ("Ray Data iterators", _record_ray_data)):
            try:
                start()
            except Exception as exc:  # train on; this part goes unrecorded, and says so
                runtime.capture_gap(what, exc)
        # digest checkpoints before upload, without code changes
        ray.train.report = report_with_digests

    def before_worker_shutdown(self) -> None:
        rt = runtime.current()
        if rt is None:
            return
        from ray.train.v2._internal.execution.context import get_train_context

        runner = get_train_context().execution_context.training_thread_runner
        if runner.get_error() is not None:
            code, state = 1, "FAILED"
        elif runner.is_running():
            code, state = 143, "TERMINATED"
        else:
            code, state = 0, "SUCCEEDED"
        rt.finish(exit_code=code, state=state)
        runtime.reset()  # the actor may host the next attempt's worker
        while _NODE:
            node = _NODE.pop()
            node.record_attempt(attempt=self.attempt, run_id=self.job_id or "",
                                ranks=[rt.rank], state=state, exit_codes={rt.rank: code})
            node.close(timeout=float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")))
