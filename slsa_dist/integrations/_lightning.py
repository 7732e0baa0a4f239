"""Lightning (``import lightning as L``) and PyTorch Lightning under one provenance.

    from slsa_dist.lightning import SlsaCallback
    trainer = L.Trainer(..., callbacks=[SlsaCallback()])   # or pl.Trainer

One callback for both package names: the object ``SlsaCallback()`` makes is a
``Callback`` of the package the script imported (``lightning.pytorch`` or
``pytorch_lightning``; of both when both are loaded), so either ``Trainer``
accepts it and calls its hooks.

Under ``slsa-torchrun`` (or with ``SLSA_COORDINATOR`` and ``SLSA_JOB_ID`` set)
the callback starts the rank's recorder if the launcher did not, turns
zero-code capture on, and adds what only Lightning knows: the module's
``hparams`` and the trainer's own settings as parameters, and every checkpoint
file its ``ModelCheckpoint`` callbacks kept (Lightning writes them through
fsspec, which the save capture does not see) as artifacts at the end of
``fit``; the last one written is the subject.

The rank is Lightning's own (``trainer.global_rank`` and ``world_size``), so a
plain ``python train.py`` whose ``Trainer(devices=2, strategy="ddp")`` starts
the other processes itself records each as its own rank. With no launcher of
slsa-dist on the node, the first process there (local rank 0) also runs the
node agent (inventory, packages, hardware evidence, the attempt). A recorder
that a launcher started with another rank than Lightning's is a capture gap,
said in the provenance, never two silent rank 0s.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import socket
import sys
import time
from typing import Any

from slsa_dist.capture import _runtime
from slsa_dist.capture._auto import install, watch_early, wrap_loader
from slsa_dist.integrations import _contract

__all__ = ["SlsaCallback"]

log = logging.getLogger(__name__)

if os.environ.get("SLSA_COORDINATOR"):
    # Under Lightning's own launcher the rank is known only once the Trainer launched its
    # processes: what the script reads before (its data, at the top level) is kept from
    # here and handed to the rank's capture when it starts. Never raises.
    watch_early()

# The Trainer's package, by the module of its Callback class.
_PACKAGES = ("lightning.pytorch", "pytorch_lightning")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def _loaded() -> list[str]:
    """The Lightning packages this process imported; else those installed."""
    loaded = [name for name in _PACKAGES if name in sys.modules]
    if loaded:
        return loaded
    found = []
    for name in _PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        found.append(name)
    if not found:
        raise ImportError("slsa_dist.lightning: expected `lightning` or `pytorch_lightning` "
                          "installed, found neither")
    return found


def _checkpoint_classes() -> tuple[type, ...]:
    classes = []
    for name in _PACKAGES:
        module = sys.modules.get(f"{name}.callbacks")
        checkpoint = getattr(module, "ModelCheckpoint", None) if module else None
        if isinstance(checkpoint, type):
            classes.append(checkpoint)
    return tuple(classes)


_CLASSES: dict[tuple[str, ...], type] = {}


def _concrete(packages: tuple[str, ...]) -> type:
    """``SlsaCallback`` on the Callback base of ``packages`` (made once, picklable by
    name: Lightning's spawn strategies pickle the trainer's callbacks)."""
    made = _CLASSES.get(packages)
    if made is None:
        bases = tuple(importlib.import_module(name).Callback for name in packages)
        name = "_SlsaCallback_" + "_".join(p.replace(".", "_") for p in packages)
        made = type(name, (SlsaCallback, *bases), {"__module__": __name__,
                                                   "__qualname__": name})
        _CLASSES[packages] = made
        globals()[name] = made
    return made


def __getattr__(name: str) -> Any:  # an unpickled callback's class, in a fresh process
    for packages in ((p,) for p in _PACKAGES):
        if name == "_SlsaCallback_" + "_".join(p.replace(".", "_") for p in packages):
            return _concrete(packages)
    if name == "_SlsaCallback_" + "_".join(p.replace(".", "_") for p in _PACKAGES):
        return _concrete(_PACKAGES)
    raise AttributeError(name)


class SlsaCallback:
    """Records a Lightning fit's parameters, data and checkpoints; see the module docstring.

    Every hook returns as if it were not there when recording fails: the failure is a
    capture gap in the provenance, never an exception in the fit."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        del args, kwargs
        made = _concrete(tuple(_loaded())) if cls is SlsaCallback else cls
        return object.__new__(made)

    def __init__(self) -> None:
        super().__init__()
        if not os.environ.get("SLSA_COORDINATOR"):
            return
        if os.environ.get("RANK"):
            # torchrun's rank is known before the Trainer exists: record from here, so the
            # files the script reads while it builds its data are seen too
            _started(None)
        else:
            _start_before_setup()

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        # After Lightning launched its processes: the rank is known (when the hook
        # before the DataModule's setup could not be placed, from here on)
        if stage == "fit":
            _started(trainer)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        runtime = _started(trainer)
        if runtime is None:
            return
        try:
            hyperparameters = {str(k): _plain(v) for k, v in dict(pl_module.hparams).items()}
            hyperparameters.update(
                max_epochs=_plain(trainer.max_epochs),
                accumulate_grad_batches=_plain(trainer.accumulate_grad_batches),
                precision=_plain(trainer.precision))
            framework = type(trainer).__module__.split(".")[0]
            runtime.agent.set_parameters(
                external={"hyperparameters": hyperparameters},
                internal={"framework": "lightning" if framework == "lightning"
                          else "pytorch_lightning",
                          "strategy": type(trainer.strategy).__name__,
                          "numNodes": _plain(trainer.num_nodes),
                          "devices": _plain(trainer.num_devices)})
        except Exception as exc:  # fit on; the provenance says what is missing
            _runtime.capture_gap("Lightning parameters (SlsaCallback.on_fit_start)", exc)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        try:
            loaders = trainer.train_dataloader  # made by the user, before capture was on
            for loader in (loaders.values() if isinstance(loaders, dict)
                           else loaders if isinstance(loaders, (list, tuple)) else [loaders]):
                wrap_loader(loader)  # never raises
        except Exception as exc:
            _runtime.capture_gap("Lightning train data loaders (SlsaCallback.on_train_start)",
                                 exc)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        try:
            runtime = _runtime.current()
            if runtime is None or not trainer.is_global_zero:
                return
            kept: dict[str, float] = {}
            classes = _checkpoint_classes()
            for callback in trainer.callbacks:
                if classes and isinstance(callback, classes):
                    found: Any = callback
                    for path in (*found.best_k_models, found.best_model_path,
                                 found.last_model_path):
                        if path and os.path.isfile(path):
                            kept[os.path.abspath(path)] = os.path.getmtime(path)
        except Exception as exc:
            _runtime.capture_gap("Lightning checkpoints (SlsaCallback.on_fit_end)", exc)
            return
        for path in sorted(kept, key=kept.__getitem__):  # the last written is the subject
            try:
                _runtime.record_artifact(path, role="checkpoint")
            except Exception as exc:  # kept on disk; only its record is not
                _runtime.capture_gap(f"checkpoint {path}", exc)


_CHECKED: set[int] = set()  # the runtimes whose rank was checked against Lightning's


def _started(trainer: Any) -> _runtime.Runtime | None:
    """The rank's runtime with zero-code capture on, started when no launcher did it.
    Never raises: a recorder that cannot start is logged, and the fit goes on."""
    try:
        runtime = _start(trainer)
        if runtime is not None:
            install(runtime)
    except Exception:  # no runtime, so no provenance to hold the gap
        log.warning("slsa-dist: could not start recording this fit", exc_info=True)
        return None
    return runtime


def _start(trainer: Any) -> _runtime.Runtime | None:
    """The rank's runtime, with Lightning's rank (``trainer``'s; torchrun's without one)."""
    runtime = _runtime.current()
    if trainer is None:
        if runtime is None and os.environ.get("SLSA_COORDINATOR"):
            runtime = _contract.init()
        return runtime
    if runtime is not None and id(runtime) in _CHECKED:
        return runtime
    try:
        rank, world = int(trainer.global_rank), int(trainer.world_size)
    except Exception as exc:
        if runtime is None:
            raise
        _CHECKED.add(id(runtime))
        _runtime.capture_gap("rank identity (SlsaCallback)", exc)
        return runtime
    # No launcher of slsa-dist on this node (Lightning's own started the processes, the
    # script under `python` or `-m slsa_dist.exec`): local rank 0 runs the node agent.
    own_node = not os.environ.get("SLSA_NODE_AGENT") and int(trainer.local_rank) == 0
    if runtime is None:
        if not os.environ.get("SLSA_COORDINATOR"):
            return None
        if own_node:
            _start_node_agent(trainer, rank, world)
        runtime = _contract.init(rank=rank, world_size=world)
    _CHECKED.add(id(runtime))
    if (runtime.rank, runtime.world_size) != (rank, world):
        # The launcher's recorder speaks for another rank than Lightning runs here: say it,
        # so the bundle is incomplete rather than silently wrong.
        _runtime.capture_gap(
            "rank identity (SlsaCallback)",
            f"the recorder registered as rank {runtime.rank} of {runtime.world_size}, "
            f"Lightning runs this process as rank {rank} of {world} (under Lightning's own "
            "launcher, -m slsa_dist.exec starts before the Trainer: set SLSA_WORLD_SIZE)")
    elif own_node and not _NODE and _children(trainer):
        # -m slsa_dist.exec started the rank's recorder, and Lightning's own launcher
        # started this node's other processes: their exit codes are this node's to say
        _start_node_agent(trainer, rank, world)
    return runtime


def _children(trainer: Any) -> list[Any]:
    """The processes Lightning's own launcher started for this node's other local ranks
    (local rank i is global rank ``trainer.global_rank + i``); none under torchrun."""
    try:
        launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
        return list(getattr(launcher, "procs", None) or [])
    except Exception:  # a launcher without them: no children of ours to wait for
        return []


def _start_before_setup() -> None:
    """Under Lightning's own launcher the rank is known only once the Trainer launched
    its processes, and the first hook a callback gets (``setup``) comes after the
    DataModule's ``setup``, where scripts read their data. So the recorder starts in
    Lightning's setup step itself (``trainer.call._call_setup_hook``), for a trainer
    that holds this callback; where that step is not found, ``setup`` starts it."""
    for name in _loaded():
        try:
            call = importlib.import_module(f"{name}.trainer.call")
        except ImportError:
            continue
        original = getattr(call, "_call_setup_hook", None)
        if not callable(original) or hasattr(original, "__slsa_dist_original__"):
            continue

        def setup_hook(trainer: Any, *args: Any, _original: Any = original,
                       **kwargs: Any) -> Any:
            try:
                if any(isinstance(c, SlsaCallback) for c in trainer.callbacks):
                    _started(trainer)
            except Exception:  # the callback's own setup hook tries again
                log.warning("slsa-dist: could not start recording before setup",
                            exc_info=True)
            return _original(trainer, *args, **kwargs)

        setup_hook.__slsa_dist_original__ = original  # type: ignore[attr-defined]
        setattr(call, "_call_setup_hook", setup_hook)  # noqa: B010 -- Lightning's private step


_NODE: list[Any] = []


def _start_node_agent(trainer: Any, rank: int, world: int) -> None:
    """The node agent, for launchers slsa-dist does not run (Lightning's own): once per
    node, in its local rank 0, for as long as that process lives. Never raises."""
    try:
        from slsa_dist.collect._node import start_node_agent

        coordinator = os.environ["SLSA_COORDINATOR"]
        job = os.environ.get("SLSA_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID") or ""
        if not job:
            return  # init says so for the rank
        node_id = os.environ.get("SLSA_NODE_ID") or socket.gethostname()
        per_node = int(trainer.num_devices)
        node_rank = int(trainer.node_rank)
        ranks = [r for r in range(node_rank * per_node, (node_rank + 1) * per_node) if r < world]
        attempt = int(os.environ.get("SLSA_ATTEMPT") or 0)
        node = start_node_agent(coordinator=coordinator, job_id=job, node_id=node_id,
                                node_rank=node_rank,
                                spool_dir=os.environ.get("SLSA_SPOOL_DIR"))
        node.set_parameters(internal={"launcher": "lightning"})
        node.record_attempt(attempt=attempt, run_id=job, ranks=ranks, state="STARTED")
        _NODE.append((node, attempt, job, ranks, rank, _children(trainer)))
        atexit.register(_close_node_agent)
    except Exception:  # the ranks still record; the node's part is what is missing
        log.warning("slsa-dist: could not start this node's agent", exc_info=True)


def _close_node_agent() -> None:
    """The node's final report: every local rank's exit code, as this process (local
    rank 0, which started the others) saw them end, and the node's state from them."""
    while _NODE:
        node, attempt, job, ranks, rank, children = _NODE.pop()
        try:
            codes, state = _exit_codes(rank, children, _runtime.current())
            node.record_attempt(attempt=attempt, run_id=job, ranks=ranks, state=state,
                                exit_codes=codes)
            node.close(timeout=float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30")))
        except Exception:
            log.warning("slsa-dist: node agent did not close", exc_info=True)


def _exit_codes(rank: int, children: list[Any], runtime: _runtime.Runtime | None = None
                ) -> tuple[dict[int, int], str]:
    """This process's exit code (what its rank reported; else as its atexit hook can
    tell) and each child's, waited for at most ``SLSA_FLUSH_TIMEOUT`` seconds in all (a
    child still running then has no code: its own report speaks for it); the state
    FAILED when any code is not 0. A code is as a launcher sees a process end: ``-N``
    for signal N."""
    own, _ = _contract._exit_state()  # noqa: SLF001 -- the contract's own rule
    if runtime is not None and runtime.exit_code is not None and runtime.rank == rank:
        own = runtime.exit_code
    codes = {rank: own}
    deadline = time.monotonic() + float(os.environ.get("SLSA_FLUSH_TIMEOUT", "30"))
    for local, child in enumerate(children, start=1):
        try:
            code = child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # still running (or not a process we can wait for)
            log.warning("slsa-dist: local rank %d had not ended; its exit code is not "
                        "recorded", local)
            continue
        if isinstance(code, int):
            codes[rank + local] = code
    return codes, "FAILED" if any(codes.values()) else "SUCCEEDED"
