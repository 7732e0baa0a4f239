"""The sampler and iterable wrappers, against a live coordinator."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from slsa_dist.capture import _runtime as runtime  # noqa: E402
from slsa_dist.capture._samplers import RecordingIterable, RecordingSampler, Shard  # noqa: E402
from slsa_dist.collect._coordinator import CoordinatorThread  # noqa: E402
from slsa_dist.integrations import _contract  # noqa: E402
from slsa_dist.model._provenance import Provenance  # noqa: E402
from slsa_dist.model._records import MEDIA_RANK  # noqa: E402
from slsa_dist.model._statement import Statement  # noqa: E402
from slsa_dist.sign._formats import read_bundle  # noqa: E402
from slsa_dist.sign._keys import Signer  # noqa: E402

pytestmark = pytest.mark.grpc


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with CoordinatorThread(job_id="j", signer=Signer.generate(), out_dir=tmp_path / "out",
                           world_size=1, settle=0.1) as server:
        monkeypatch.setattr(runtime, "_CURRENT", None)
        rt = _contract.init(coordinator=server.address, job_id="j", rank=0, world_size=1,
                          node_id="n", spool_dir=tmp_path / "spool", finish_at_exit=False,
                          argv=["train.py"])

        def finish() -> list[dict]:  # type: ignore[type-arg]
            assert rt.finish(timeout=30)
            result = server.wait_finalized(30)
            payload = json.loads(read_bundle(result.bundle)[0].payload)
            return list(Provenance.from_statement(Statement.from_dict(payload))
                        .records(MEDIA_RANK)[0]["shards"])

        yield finish
        monkeypatch.setattr(runtime, "_CURRENT", None)


SHARDS = [Shard(name=f"s{i}", digest={"sha256": sha(f"s{i}")}, start=i * 100, stop=(i + 1) * 100)
          for i in range(3)]


def index_digest(indices: list[int]) -> str:
    return hashlib.sha256(b"".join(struct.pack("<q", i) for i in indices)).hexdigest()


def test_sampler_reports_counts_and_index_digests_per_shard(live) -> None:  # type: ignore[no-untyped-def]
    order = list(range(300))[::-1][:2500]
    sampler = RecordingSampler(order, shards=SHARDS)
    assert list(sampler) == order
    shards = {s["name"]: s for s in live()}
    assert {n: s["samples"] for n, s in shards.items()} == {"s0": 100, "s1": 100, "s2": 100}
    assert shards["s1"]["indexDigest"] == hashlib.sha256(
        index_digest(list(range(199, 99, -1))).encode()).hexdigest()


def test_sampler_stopped_mid_epoch_counts_only_what_was_consumed(live) -> None:  # type: ignore[no-untyped-def]
    sampler = RecordingSampler(list(range(300)), shards=SHARDS)
    iterator = iter(sampler)
    taken = [next(iterator) for _ in range(150)]
    del iterator  # the loop broke: the generator closes
    assert taken == list(range(150))
    shards = {s["name"]: s["samples"] for s in live()}
    assert shards == {"s0": 100, "s1": 50}


def test_distributed_sampler_parameters_are_recorded(live) -> None:  # type: ignore[no-untyped-def]
    from torch.utils.data import DistributedSampler

    dataset = list(range(300))
    sampler = RecordingSampler(DistributedSampler(dataset, num_replicas=2, rank=1, seed=5),
                               shards=SHARDS)
    sampler.set_epoch(3)
    consumed = list(sampler)
    shards = live()
    assert sum(s["samples"] for s in shards) == len(consumed) == 150
    assert shards[0]["sampler"] == {"type": "DistributedSampler", "seed": 5,
                                    "num_replicas": 2, "rank": 1, "shuffle": True,
                                    "drop_last": False, "num_samples": 150,
                                    "total_size": 300}
    assert shards[0]["epochs"] == [[3, 3]]


def test_iterable_reports_each_shard_it_streamed(live, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = []
    for i in range(2):
        path = tmp_path / f"shard-{i}.tar"
        path.write_bytes(f"tar {i}".encode())
        files.append(path)
    samples = [{"__url__": str(files[i // 3]), "x": i} for i in range(6)]
    assert [s["x"] for s in RecordingIterable(samples)] == list(range(6))
    shards = {s["name"]: s for s in live()}
    assert {n: s["samples"] for n, s in shards.items()} == {"shard-0.tar": 3, "shard-1.tar": 3}
    assert shards["shard-0.tar"]["digest"] == {"sha256": hashlib.sha256(b"tar 0").hexdigest()}


def test_a_shard_is_hashed_once_per_file_version_not_every_epoch(
        live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import os

    from slsa_dist.capture import _samplers as data

    hashed: list[str] = []
    real = data.digest_path

    def counting(path, **kwargs):  # type: ignore[no-untyped-def]
        hashed.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(data, "digest_path", counting)
    shard = tmp_path / "shard-0.tar"
    shard.write_bytes(b"first")
    samples = [{"__url__": str(shard), "x": i} for i in range(4)]
    for epoch in range(3):
        assert len(list(RecordingIterable(samples, epoch=epoch))) == 4
    assert hashed == [str(shard)]  # three epochs, one read
    shard.write_bytes(b"second")  # a new version of the file: hashed again
    os.utime(shard, ns=(1, 1))
    assert len(list(RecordingIterable(samples, epoch=3))) == 4
    assert hashed == [str(shard)] * 2
    digests = {s["digest"]["sha256"] for s in live()}
    assert digests == {hashlib.sha256(b"first").hexdigest(), hashlib.sha256(b"second").hexdigest()}


def test_a_sampler_without_data_identity_is_refused() -> None:
    from slsa_dist.errors import InputError

    with pytest.raises(InputError, match="expected shards or a dataset_digest"):
        RecordingSampler(range(10))
