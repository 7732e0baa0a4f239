"""Capture can never break training (#27 item 1): a hostile-object matrix.

Every hook that runs inside the user's process (DataLoader recording, the
audit hook, the save patches, the framework callbacks) is driven with
unusual and hostile objects. Each time the user's result must be exactly
what an uncaptured run gives (same items in the same order, same return
value, the same exception at the same point), and where capture could not
follow, a capture gap must be reported to the rank's agent.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from slsa_dist.capture import _auto as auto
from slsa_dist.capture import _runtime
from slsa_dist.capture._samplers import RecordingSampler, Shard

pytestmark = pytest.mark.timeout(120)


class FakeAgent:
    """Stands in for the rank agent: keeps what it was told."""

    def __init__(self) -> None:
        self.shards: list[dict[str, Any]] = []
        self.gaps: list[tuple[str, str, bool]] = []
        self.files: list[tuple[str, str]] = []
        self.dependencies: list[dict[str, Any]] = []
        self.parameters: list[dict[str, Any]] = []
        self.planned: list[tuple[str, list[str]]] = []

    def record_shard(self, name: str, digest: Any, **kwargs: Any) -> None:
        self.shards.append({"name": name, **kwargs})

    def record_capture_gap(self, what: str, why: str, *, allowed: bool = False) -> None:
        self.gaps.append((what, why, allowed))

    def record_file(self, artifact: str, path: str, digest: Any, **kwargs: Any) -> None:
        self.files.append((artifact, path))

    def record_dependency(self, kind: str, **kwargs: Any) -> None:
        self.dependencies.append({"kind": kind, **kwargs})

    def set_parameters(self, **kwargs: Any) -> None:
        self.parameters.append(kwargs)

    def plan_artifact(self, artifact: str, files: Any, **kwargs: Any) -> None:
        self.planned.append((artifact, sorted(files)))


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAgent]:
    fake = FakeAgent()
    runtime = _runtime.Runtime(agent=fake, job_id="j", rank=0, world_size=1,  # type: ignore[arg-type]
                               attempt=0, node_id="n", artifact_root=tmp_path)
    monkeypatch.setattr(_runtime, "_CURRENT", runtime)
    monkeypatch.setattr(_runtime, "_GAPS_SEEN", set())
    monkeypatch.delenv("SLSA_ALLOW_CAPTURE_GAPS", raising=False)
    auto._patch_dataloader()  # process-wide, as install() does; records tracked loaders only
    return fake


# -- DataLoaders ----------------------------------------------------------------------------

def _plain(tensor_or_list: Any) -> Any:
    if isinstance(tensor_or_list, torch.Tensor):
        return tensor_or_list.tolist()
    if isinstance(tensor_or_list, (list, tuple)):
        return [_plain(v) for v in tensor_or_list]
    if isinstance(tensor_or_list, dict):
        return {k: _plain(v) for k, v in tensor_or_list.items()}
    return tensor_or_list


def _run(make: Callable[[], Any], *, captured: bool, epochs: int = 2
         ) -> tuple[list[Any], str | None, Any]:
    """Items per epoch, the exception (type and text) if one ended the run, and len()."""
    torch.manual_seed(11)
    loader = make()
    if captured:
        auto.wrap_loader(loader)
    else:
        auto._TRACKED.pop(loader, None)  # made after the patch: untrack it
    try:
        length: Any = len(loader)
    except Exception as exc:
        length = f"{type(exc).__name__}: {exc}"
    items: list[Any] = []
    try:
        for epoch in range(epochs):
            sampler = getattr(loader, "sampler", None)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            items.append([_plain(batch) for batch in loader])
    except Exception as exc:
        return items, f"{type(exc).__name__}: {exc}", length
    return items, None, length


def _same(make: Callable[[], Any]) -> tuple[list[Any], str | None]:
    plain = _run(make, captured=False)
    captured = _run(make, captured=True)
    assert captured == plain
    return plain[0], plain[1]


def _data(n: int = 20) -> TensorDataset:
    return TensorDataset(torch.arange(n))


class Reversing(BatchSampler):
    """A BatchSampler subclass with its own __iter__."""

    def __iter__(self) -> Iterator[list[int]]:
        yield from reversed(list(super().__iter__()))


class NoSamplerBatches:
    """A batch sampler that is no BatchSampler and has no .sampler."""

    def __iter__(self) -> Iterator[list[int]]:
        yield from ([i, i + 1] for i in range(0, 10, 2))

    def __len__(self) -> int:
        return 5


class Adaptive(Sampler[int]):
    """Its next index depends on what the loop did with the last (a curriculum)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __iter__(self) -> Iterator[int]:
        for step in range(6):
            yield (sum(self.seen) + step) % 20

    def __len__(self) -> int:
        return 6


class LenRaises(Sampler[int]):
    def __iter__(self) -> Iterator[int]:
        return iter(range(7))

    def __len__(self) -> int:
        raise RuntimeError("no length today")


class FailsMidway(Sampler[int]):
    def __iter__(self) -> Iterator[int]:
        yield from range(5)
        raise ValueError("sampler broke at 5")

    def __len__(self) -> int:
        return 10


class Hostile(Sampler[int]):
    """Every attribute capture might look at raises."""

    def __iter__(self) -> Iterator[int]:
        return iter(range(9))

    def __len__(self) -> int:
        return 9

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile attribute {name}")

    @property
    def epoch(self) -> int:
        raise RuntimeError("hostile epoch")

    @property
    def seed(self) -> int:
        raise RuntimeError("hostile seed")


class Keys(Dataset[str]):
    def __getitem__(self, key: str) -> str:
        return key.upper()

    def __len__(self) -> int:
        return 3


class KeySampler(Sampler[str]):
    def __iter__(self) -> Iterator[str]:
        return iter(["a", "b", "c"])

    def __len__(self) -> int:
        return 3


class Stream(IterableDataset[int]):
    def __iter__(self) -> Iterator[int]:
        return iter(range(12))


def _accelerate_shard() -> DataLoader[Any]:
    from accelerate.data_loader import BatchSamplerShard

    inner = BatchSampler(SequentialSampler(range(20)), batch_size=4, drop_last=False)
    return DataLoader(_data(), batch_sampler=BatchSamplerShard(inner, num_processes=2,
                                                                process_index=1))


def _accelerate_skip() -> DataLoader[Any]:
    from accelerate.data_loader import SkipBatchSampler

    inner = BatchSampler(SequentialSampler(range(20)), batch_size=4, drop_last=False)
    return DataLoader(_data(), batch_sampler=SkipBatchSampler(inner, skip_batches=2))


def _accelerate_seedable() -> DataLoader[Any]:
    from accelerate.data_loader import SeedableRandomSampler

    return DataLoader(_data(), batch_size=3,
                      sampler=SeedableRandomSampler(data_source=range(20), data_seed=5))


def _lightning_wrapper() -> DataLoader[Any]:
    from pytorch_lightning.overrides.distributed import _IndexBatchSamplerWrapper

    inner = BatchSampler(RandomSampler(range(20)), batch_size=6, drop_last=True)
    return DataLoader(_data(), batch_sampler=_IndexBatchSamplerWrapper(inner))


# (name, loader factory, indices per epoch the record must count; None: a gap instead)
RECORDED: list[tuple[str, Callable[[], Any], int]] = [
    ("sequential", lambda: DataLoader(_data(), batch_size=3), 20),
    ("shuffled", lambda: DataLoader(_data(), batch_size=4, shuffle=True), 20),
    ("distributed", lambda: DataLoader(_data(), batch_size=2, sampler=DistributedSampler(
        _data(), num_replicas=2, rank=1, seed=3)), 10),
    ("drop_last", lambda: DataLoader(_data(), batch_size=6, drop_last=True), 18),
    ("BatchSampler subclass", lambda: DataLoader(_data(), batch_sampler=Reversing(
        SequentialSampler(range(20)), batch_size=5, drop_last=False)), 20),
    ("batch sampler without .sampler", lambda: DataLoader(
        _data(), batch_sampler=NoSamplerBatches()), 10),
    ("accelerate BatchSamplerShard", _accelerate_shard, 12),
    ("accelerate SkipBatchSampler", _accelerate_skip, 12),
    ("accelerate SeedableRandomSampler", _accelerate_seedable, 20),
    ("lightning _IndexBatchSamplerWrapper", _lightning_wrapper, 18),
    ("no batching (batch_size=None)", lambda: DataLoader(_data(), batch_size=None), 20),
    ("generator as sampler", lambda: DataLoader(
        _data(), batch_size=2, sampler=(i for i in range(0, 20, 3))), 7),
    ("numpy indices", lambda: DataLoader(
        _data(), batch_size=2, sampler=__import__("numpy").arange(5)), 5),
    ("sampler whose __len__ raises", lambda: DataLoader(_data(), batch_size=2,
                                                        sampler=LenRaises()), 7),
    ("attributes that raise", lambda: DataLoader(_data(), batch_size=4, sampler=Hostile()), 9),
    ("a worker process", lambda: DataLoader(_data(), batch_size=4, num_workers=1), 20),
    ("prefetching workers", lambda: DataLoader(_data(), batch_size=2, num_workers=2,
                                               prefetch_factor=4, shuffle=True), 20),
    ("persistent prefetching workers", lambda: DataLoader(
        _data(), batch_size=3, num_workers=2, prefetch_factor=4, persistent_workers=True), 20),
]


@pytest.mark.parametrize(("make", "indices"), [(m, n) for _, m, n in RECORDED],
                         ids=[name for name, _, _ in RECORDED])
def test_a_loader_yields_what_it_yields_uncaptured_and_is_recorded(
        agent: FakeAgent, make: Callable[[], Any], indices: int) -> None:
    items, error = _same(make)
    assert error is None
    assert items
    assert items[0]
    assert agent.gaps == []
    counted = [s["samples"] for s in agent.shards]
    assert counted, agent.shards
    assert counted[0] == indices, agent.shards
    assert all(s["name"] == "index:TensorDataset" for s in agent.shards)


def test_the_shard_a_rank_draws_is_counted_not_the_sampler_it_shards(agent: FakeAgent) -> None:
    _same(_accelerate_shard)
    (first, *_) = agent.shards
    assert first["samples"] == 12  # batches 1, 3 and 5 (wrapping around) of 4, not all 20
    outer = first["sampler"]["batchSamplers"][0]
    assert (outer["type"], outer["num_processes"], outer["process_index"]) == \
        ("BatchSamplerShard", 2, 1)


def test_an_adaptive_sampler_is_not_read_ahead(agent: FakeAgent) -> None:
    sampler = Adaptive()
    loader = DataLoader(_data(), batch_size=None, sampler=sampler)
    auto.wrap_loader(loader)
    seen = []
    for (value,) in loader:
        sampler.seen.append(int(value))  # the next index depends on this one
        seen.append(int(value))
    assert seen == [0, 1, 3, 7, 15, 11]
    plain = Adaptive()
    expected = []
    for step in range(6):
        expected.append((sum(plain.seen) + step) % 20)
        plain.seen.append(expected[-1])
    assert seen == expected


def test_a_sampler_that_fails_midway_fails_the_same_way(agent: FakeAgent) -> None:
    _items, error = _same(lambda: DataLoader(_data(), batch_size=2, sampler=FailsMidway()))
    assert error == "ValueError: sampler broke at 5"


def test_an_explicit_recording_sampler_that_fails_midway_fails_the_same_way(
        agent: FakeAgent) -> None:
    def make() -> DataLoader[Any]:
        shard = Shard(name="s", digest={"sha256": "0" * 64}, start=0, stop=20)
        return DataLoader(_data(), batch_size=2, sampler=RecordingSampler(FailsMidway(),
                                                                          shards=[shard]))
    items, error = _same(make)
    assert error == "ValueError: sampler broke at 5"
    assert items == []
    assert agent.gaps == []


def test_non_integer_indices_go_through_and_are_a_gap(agent: FakeAgent) -> None:
    items, error = _same(lambda: DataLoader(Keys(), batch_size=None, sampler=KeySampler()))
    assert (items[0], error) == (["A", "B", "C"], None)
    assert [g[0] for g in agent.gaps] == ["data consumed from a DataLoader over Keys"]
    assert agent.shards == []


def test_an_explicit_recording_sampler_over_non_integer_indices_is_a_gap(
        agent: FakeAgent) -> None:
    shard = Shard(name="s", digest={"sha256": "0" * 64}, start=0, stop=20)
    recording = RecordingSampler(KeySampler(), shards=[shard])
    assert list(DataLoader(Keys(), batch_size=None, sampler=recording)) == ["A", "B", "C"]
    assert agent.gaps
    assert "KeySampler" in agent.gaps[0][0]


def test_an_iterable_dataset_goes_through_and_is_a_gap(agent: FakeAgent) -> None:
    items, error = _same(lambda: DataLoader(Stream(), batch_size=5))
    assert items[0] == [list(range(5)), list(range(5, 10)), [10, 11]]
    assert error is None
    (gap,) = agent.gaps
    assert gap[0] == "data consumed from a DataLoader over Stream"
    assert "RecordingIterable" in gap[1]


def test_a_loader_whose_attributes_raise_is_a_gap(agent: FakeAgent) -> None:
    class Weird:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name}")

        def __hash__(self) -> int:
            raise TypeError("unhashable")

    assert auto.wrap_loader(Weird()) is False
    assert len(agent.gaps) == 1


def test_gaps_allowed_by_the_job_are_still_reported(agent: FakeAgent,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLSA_ALLOW_CAPTURE_GAPS", "1")
    _same(lambda: DataLoader(Stream(), batch_size=5))
    assert [g[2] for g in agent.gaps] == [True]


# -- the audit hook -------------------------------------------------------------------------

def _capture(tmp_path: Path) -> auto.Capture:
    runtime = _runtime.current()
    assert runtime is not None
    return auto.Capture(runtime)


def test_the_audit_hook_never_raises(agent: FakeAgent, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _capture(tmp_path)

    class BadPath(os.PathLike[str]):
        def __fspath__(self) -> str:
            raise RuntimeError("no path")

        def __str__(self) -> str:
            raise RuntimeError("no text")

    capture.audit("open", (BadPath(), "r", 0))  # returns; the user's open decides
    capture.audit("open", ("only-two",))  # a malformed event
    monkeypatch.setattr(capture, "_read", lambda name: 1 / 0)
    capture.audit("open", (str(tmp_path / "x"), "r", 0))
    assert len(agent.gaps) == 3
    assert all(g[0].startswith("file read") for g in agent.gaps)


def test_an_input_that_cannot_be_digested_is_a_gap(agent: FakeAgent, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _capture(tmp_path)
    data = tmp_path / "data.bin"
    data.write_bytes(b"x")

    def fail(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "denied", str(path))

    monkeypatch.setattr(auto, "digest_path", fail)
    capture.audit("open", (str(data), "rb", 0))
    capture.finish(timeout=10)
    assert [g[0] for g in agent.gaps] == [f"input {data}"]
    assert agent.dependencies == [] or all(d["kind"] == "code" for d in agent.dependencies)


# -- the save patches -----------------------------------------------------------------------

def _wrapped(capture: auto.Capture, original: Callable[..., Any]) -> Callable[..., Any]:
    return auto._wrap_save(original, capture, 1, "f")


def test_torch_save_to_a_buffer_is_unchanged_and_no_output(agent: FakeAgent,
                                                           tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    save = _wrapped(capture, torch.save)
    captured, plain = io.BytesIO(), io.BytesIO()
    assert save({"w": torch.arange(3)}, captured) is None
    torch.save({"w": torch.arange(3)}, plain)
    assert captured.getvalue() == plain.getvalue()
    assert capture.outputs == 0
    assert agent.gaps == []


def test_torch_save_to_a_path_and_to_a_file_on_a_path_are_followed(agent: FakeAgent,
                                                                   tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    save = _wrapped(capture, torch.save)
    save(torch.arange(3), tmp_path / "a.pt")
    with open(tmp_path / "b.pt", "wb") as f:
        save(torch.arange(3), f)
    save(torch.arange(3), f=str(tmp_path / "c.pt"))
    assert sorted(Path(p).name for p in capture._saved) == ["a.pt", "b.pt", "c.pt"]
    capture.finish(timeout=10)
    assert sorted(artifact for artifact, _ in agent.files) == ["a.pt", "b.pt", "c.pt"]
    assert agent.gaps == []


def test_a_save_to_an_unknown_target_returns_its_result_and_is_a_gap(agent: FakeAgent,
                                                                     tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    result = object()

    def original(obj: Any, target: Any) -> Any:
        return result

    class Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    assert _wrapped(capture, original)(1, Sink()) is result
    (gap,) = agent.gaps
    assert "Sink" in gap[0]


def test_a_save_that_fails_raises_the_users_error_untouched(agent: FakeAgent,
                                                            tmp_path: Path) -> None:
    capture = _capture(tmp_path)
    error = OSError(28, "No space left on device")

    def original(obj: Any, target: Any) -> Any:
        raise error

    with pytest.raises(OSError) as raised:
        _wrapped(capture, original)(1, tmp_path / "x.pt")
    assert raised.value is error
    assert capture.outputs == 0
    assert agent.gaps == []


def test_a_saved_path_the_patch_cannot_digest_is_a_gap(agent: FakeAgent, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _capture(tmp_path)
    _wrapped(capture, torch.save)(torch.arange(2), tmp_path / "m.pt")

    def fail(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(5, "I/O error", str(path))

    monkeypatch.setattr(auto, "digest_path", fail)
    capture.finish(timeout=10)
    assert [g[0] for g in agent.gaps if g[0].startswith("output")] == \
        [f"output {tmp_path / 'm.pt'}"]
    assert agent.files == []


def test_a_target_whose_path_raises_is_a_gap_and_the_result_stands(agent: FakeAgent,
                                                                   tmp_path: Path) -> None:
    capture = _capture(tmp_path)

    class Odd(os.PathLike[str]):
        def __fspath__(self) -> str:
            raise RuntimeError("no path")

    assert _wrapped(capture, lambda obj, target: "done")(1, Odd()) == "done"
    assert len(agent.gaps) == 1


# -- framework callbacks --------------------------------------------------------------------

class Raising:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile {name}")


def test_the_hf_callback_never_raises(agent: FakeAgent, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from slsa_dist import hf
    from slsa_dist.integrations import _hf

    monkeypatch.setattr(_hf, "install", lambda runtime: None)
    callback = hf.SlsaTrainerCallback()
    state = SimpleNamespace(is_world_process_zero=True, global_step=4)
    assert callback.on_train_begin(Raising(), state, None, train_dataloader=Raising()) is None
    assert callback.on_save(Raising(), state, None) is None
    folder = tmp_path / "out" / "checkpoint-4"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"w")

    def fail(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(5, "I/O error", str(path))

    monkeypatch.setattr(_runtime, "digest_path", fail)  # record_artifact cannot digest
    assert callback.on_save(SimpleNamespace(output_dir=str(tmp_path / "out")), state,
                            None) is None
    whats = [g[0] for g in agent.gaps]
    assert any(w.startswith("Trainer arguments") for w in whats), whats
    assert f"checkpoint {folder}" in whats, whats


def test_the_lightning_callback_never_raises(agent: FakeAgent, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from slsa_dist import lightning
    from slsa_dist.integrations import _lightning

    monkeypatch.setattr(_lightning, "install", lambda runtime: None)
    callback = lightning.SlsaCallback()
    assert callback.on_fit_start(Raising(), Raising()) is None
    assert callback.on_train_start(Raising(), Raising()) is None
    assert callback.on_fit_end(SimpleNamespace(is_global_zero=True, callbacks=Raising()),
                               None) is None
    whats = [g[0] for g in agent.gaps]
    # Lightning's rank (a hostile trainer has none), parameters, loaders, checkpoints
    assert len(whats) == 4, whats
    assert whats[0] == "rank identity (SlsaCallback)", whats


def test_dcp_s_own_stream_saves_are_no_gap_and_a_foreign_dcp_writer_is_one(
        agent: FakeAgent, tmp_path: Path) -> None:
    """dcp.save serializes each item with torch.save into its writer's stream: the
    digesting writer records those files, so the saves are neither outputs nor gaps (every
    DCP job's bundle was incomplete); a storage writer of the script's own is a gap, its
    files undigested."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemWriter

    capture = _capture(tmp_path)
    auto._patch_dcp(sys.modules["torch.distributed.checkpoint.state_dict_saver"])
    original_save = torch.save
    torch.save = _wrapped(capture, original_save)  # type: ignore[assignment]
    try:
        state = {"w": torch.arange(4.0)}
        dcp.save(state, checkpoint_id=str(tmp_path / "ours"))
        assert agent.gaps == []
        assert {f[0] for f in agent.files} == {"ours"}  # recorded by the digesting writer
        dcp.save(state, storage_writer=FileSystemWriter(str(tmp_path / "theirs")))
    finally:
        torch.save = original_save  # type: ignore[assignment]
    (gap,) = agent.gaps
    assert "DCP checkpoint" in gap[0]
    assert "FileSystemWriter" in gap[1]
    assert (tmp_path / "theirs" / ".metadata").is_file()  # the user's save, unchanged


# -- what the loop consumed, not what workers prefetched (#27) ------------------------------

class Faulty(Dataset[int]):
    """Item ``bad`` raises (in a worker or in the loop's own process)."""

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def __getitem__(self, index: int) -> int:
        if index == self.bad:
            raise KeyError(f"item {index} is unreadable")
        return index

    def __len__(self) -> int:
        return 40


def _digest(batches: list[list[int]]) -> str:
    import hashlib

    import numpy as np

    flat = [int(i) for batch in batches for i in batch]
    return hashlib.sha256(np.asarray(flat, dtype="<i8").tobytes()).hexdigest()


def _prefetching(**kwargs: Any) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(7)
    return DataLoader(TensorDataset(torch.arange(64)), batch_size=2, shuffle=True,
                      generator=generator, num_workers=2, prefetch_factor=4, **kwargs)


def _first(loader: Any, k: int) -> list[list[int]]:
    taken: list[list[int]] = []
    for (batch,) in loader:
        taken.append(batch.tolist())
        if len(taken) == k:
            break
    return taken


@pytest.mark.parametrize("k", [1, 3, 7])
def test_a_loop_that_breaks_consumed_only_the_batches_it_was_handed(agent: FakeAgent,
                                                                    k: int) -> None:
    """Two workers prefetch 4 batches each: 8 batches are drawn before the loop takes
    its first. Only the k batches handed to the loop are recorded as consumed."""
    plain = _prefetching()
    auto._TRACKED.pop(plain, None)
    expected = _first(plain, k)
    loader = _prefetching()
    auto.wrap_loader(loader)
    taken = _first(loader, k)
    assert taken == expected  # the user's batches, as without capture
    import gc

    gc.collect()  # the abandoned iterator (and its index stream) is gone
    (shard,) = agent.shards
    assert shard["samples"] == 2 * k
    assert shard["index_digest"] == _digest(taken)
    assert agent.gaps == []


def test_a_full_pass_with_prefetching_workers_is_counted_once(agent: FakeAgent) -> None:
    loader = _prefetching()
    auto.wrap_loader(loader)
    taken = [batch.tolist() for (batch,) in loader]
    (shard,) = agent.shards
    assert (shard["samples"], shard["index_digest"]) == (64, _digest(taken))


def test_persistent_workers_count_each_pass_by_what_it_handed_out(agent: FakeAgent) -> None:
    loader = _prefetching(persistent_workers=True)
    auto.wrap_loader(loader)
    first = _first(loader, 2)
    second = [batch.tolist() for (batch,) in loader]  # resets the same iterator
    import gc

    gc.collect()
    counted = [(s["samples"], s["index_digest"]) for s in agent.shards]
    assert counted == [(4, _digest(first)), (64, _digest(second))]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_batch_that_raised_is_not_consumed(agent: FakeAgent, workers: int) -> None:
    """The loop catches the dataset's error and stops: consumed are the batches it got,
    not the one that raised nor those prefetched after it."""
    def make() -> DataLoader[Any]:
        return DataLoader(Faulty(bad=9), batch_size=4, num_workers=workers,
                          **({"prefetch_factor": 4} if workers else {}))

    def run(loader: Any) -> tuple[list[list[int]], str]:
        got: list[list[int]] = []
        try:
            for batch in loader:
                got.append(batch.tolist())
        except KeyError as exc:
            return got, type(exc).__name__
        return got, ""

    plain = make()
    auto._TRACKED.pop(plain, None)
    expected = run(plain)
    loader = make()
    auto.wrap_loader(loader)
    got = run(loader)
    assert got == expected
    assert got[0] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    import gc

    gc.collect()
    (shard,) = agent.shards
    assert (shard["samples"], shard["index_digest"]) == (8, _digest(got[0]))


def test_an_out_of_order_loader_left_early_is_a_gap(agent: FakeAgent) -> None:
    loader = DataLoader(TensorDataset(torch.arange(64)), batch_size=2, num_workers=2,
                        prefetch_factor=4, in_order=False)
    auto.wrap_loader(loader)
    assert len(_first(loader, 3)) == 3
    import gc

    gc.collect()
    assert agent.shards == []
    (gap,) = agent.gaps
    assert "in_order=False" in gap[1]


# -- files opened before the rank's capture started (#27: Lightning's own launcher) --------

def test_files_opened_before_the_capture_started_are_replayed_into_it(
        agent: FakeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, notes, code = tmp_path / "labels.txt", tmp_path / "notes.txt", tmp_path / "mod.py"
    for path in (data, notes, code):  # before buffering: an audit hook an earlier test
        path.write_text("x")  # left in this process would buffer these writes too
    monkeypatch.setattr(auto, "_EARLY", {})
    monkeypatch.setattr(auto, "_EARLY_OVER", [0])
    monkeypatch.chdir(tmp_path)
    auto._buffer(("labels.txt", "r", 0))  # relative: kept as the absolute name it was
    auto._buffer((str(code), "r", 0))  # an import: never an input
    auto._buffer((str(notes), "w", 0))  # written first, so read back it is an output
    auto._buffer((str(notes), "r", 0))
    auto._buffer((3, "r", 0))  # a descriptor
    monkeypatch.chdir("/")
    capture = _capture(tmp_path)
    auto._replay_early(capture)
    assert auto._EARLY is None  # handed over once; nothing buffered from here
    capture.finish(timeout=10)
    inputs = [d["uri"] for d in agent.dependencies if d["kind"] == "input"]
    assert inputs == [data.as_uri()]
    assert agent.gaps == []


def test_past_the_early_limit_the_rest_is_a_gap(agent: FakeAgent, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "_EARLY", {})
    monkeypatch.setattr(auto, "_EARLY_OVER", [0])
    monkeypatch.setattr(auto, "_EARLY_LIMIT", 2)
    for i in range(4):
        auto._buffer((str(tmp_path / f"f{i}"), "r", 0))
    auto._buffer(("only", "two"))  # a malformed event: ignored, never raised
    capture = _capture(tmp_path)
    auto._replay_early(capture)
    (gap,) = agent.gaps
    assert gap[0] == "files read before the rank's recorder started"
    assert "2 more than the 2 kept" in gap[1]


def test_the_lightning_node_reports_every_local_ranks_exit_code(
        agent: FakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from slsa_dist.integrations import _contract, _lightning

    class Child:
        def __init__(self, code: int | None) -> None:
            self.code = code

        def wait(self, timeout: float | None = None) -> int:
            if self.code is None:
                raise subprocess.TimeoutExpired("child", timeout or 0)
            return self.code

    monkeypatch.setenv("SLSA_FLUSH_TIMEOUT", "0.1")
    monkeypatch.setattr(_contract, "_exit_state", lambda: (0, "SUCCEEDED"))
    assert _lightning._exit_codes(2, [Child(0), Child(0)]) == ({2: 0, 3: 0, 4: 0}, "SUCCEEDED")
    assert _lightning._exit_codes(0, [Child(-9)]) == ({0: 0, 1: -9}, "FAILED")
    # one still running: no code of its own (its report speaks for it), the rest stand
    assert _lightning._exit_codes(0, [Child(None), Child(3)]) == ({0: 0, 2: 3}, "FAILED")
    monkeypatch.setattr(_contract, "_exit_state", lambda: (1, "FAILED"))
    assert _lightning._exit_codes(0, [Child(0)]) == ({0: 1, 1: 0}, "FAILED")
    # under -m slsa_dist.exec the wrapper knows the script's code; the rank reported it
    runtime = _runtime.current()
    assert runtime is not None
    monkeypatch.setattr(runtime, "exit_code", 3)
    assert _lightning._exit_codes(0, [Child(0)], runtime) == ({0: 3, 1: 0}, "FAILED")


@pytest.mark.parametrize("workers", [0, 2])
def test_an_explicit_recording_sampler_counts_only_what_the_loop_was_handed(
        agent: FakeAgent, workers: int) -> None:
    """slsa_dist.torch.RecordingSampler in a DataLoader whose workers prefetch: a loop
    that breaks after 3 batches consumed those 3, not the 8 drawn ahead."""
    shard = Shard(name="s", digest={"sha256": "0" * 64}, start=0, stop=64)

    def make() -> DataLoader[Any]:
        sampler = DistributedSampler(range(64), num_replicas=2, rank=1, shuffle=True, seed=4)
        return DataLoader(TensorDataset(torch.arange(64)), batch_size=2, num_workers=workers,
                          sampler=RecordingSampler(sampler, shards=[shard]),
                          **({"prefetch_factor": 4} if workers else {}))

    plain = DataLoader(TensorDataset(torch.arange(64)), batch_size=2,
                       sampler=DistributedSampler(range(64), num_replicas=2, rank=1,
                                                  shuffle=True, seed=4))
    auto._TRACKED.pop(plain, None)  # made after the patch: untrack it
    expected = _first(plain, 3)
    taken = _first(make(), 3)
    assert taken == expected
    import gc

    gc.collect()
    (record,) = agent.shards
    assert (record["samples"], record["index_digest"]) == (6, _digest(taken))
    full = make()
    whole = [batch.tolist() for (batch,) in full]
    gc.collect()
    assert [(s["samples"], s["index_digest"]) for s in agent.shards[1:]] == \
        [(32, _digest(whole))]
    assert agent.gaps == []


def test_an_out_of_order_loader_run_to_its_end_is_counted_whole(agent: FakeAgent) -> None:
    """Its batches arrive in any order (so no run equals another); every one drawn was
    handed out, and the record is the pass, in the order drawn."""
    loader = DataLoader(TensorDataset(torch.arange(64)), batch_size=2, num_workers=2,
                        prefetch_factor=4, in_order=False)
    auto.wrap_loader(loader)
    taken = [batch.tolist() for (batch,) in loader]
    assert sorted(i for b in taken for i in b) == list(range(64))
    (shard,) = agent.shards
    assert (shard["samples"], shard["index_digest"]) == (64, _digest(
        [list(range(i, i + 2)) for i in range(0, 64, 2)]))
    assert agent.gaps == []


# -- Ray Train's report ---------------------------------------------------------------------

def test_a_checkpoint_that_cannot_be_digested_leaves_the_users_report_as_it_was(
        agent: FakeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray.train")
    from slsa_dist.integrations import _ray

    calls: list[tuple[dict[str, Any], Any]] = []
    monkeypatch.setattr(_ray, "_ORIGINAL_REPORT",
                        lambda metrics, checkpoint=None, **kw: calls.append((metrics, checkpoint)))

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("checkpoint folder unreadable")

    monkeypatch.setattr(_ray, "digest_path", unreadable)
    checkpoint = SimpleNamespace(path=str(tmp_path))
    _ray.report_with_digests({"loss": 1.0}, checkpoint=checkpoint)
    assert calls == [({"loss": 1.0}, checkpoint)]  # the user's report, exactly once
    (gap,) = agent.gaps
    assert gap[0].startswith("Ray checkpoint ray-report-"), gap
    assert "unreadable" in gap[1], gap
