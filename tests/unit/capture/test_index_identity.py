"""#27: val and test splits of one length were one ``index:Subset`` record: zero-code
capture named the pseudo-shard by the dataset's class and length alone."""

from __future__ import annotations

import torch
from torch.utils.data import ConcatDataset, Subset, TensorDataset, random_split

from slsa_dist.capture._auto import _index_shard


def _data(n: int = 20) -> TensorDataset:
    return TensorDataset(torch.arange(n))


def test_val_and_test_splits_of_equal_length_are_two_index_spaces() -> None:
    train, val, test = random_split(_data(), [10, 5, 5], generator=torch.Generator().manual_seed(0))
    shards = [_index_shard(d) for d in (train, val, test)]
    assert [s.name for s in shards] == ["index:Subset"] * 3
    assert len({s.digest["sha256"] for s in shards}) == 3


def test_the_same_split_is_the_same_index_space_on_every_rank() -> None:
    """Each rank builds its own objects: the identity is what they hold, not where."""
    one = random_split(_data(), [10, 10], generator=torch.Generator().manual_seed(1))[1]
    two = random_split(_data(), [10, 10], generator=torch.Generator().manual_seed(1))[1]
    assert one is not two
    assert _index_shard(one).digest == _index_shard(two).digest
    # a plain dataset is still named by its class and length, as before
    assert _index_shard(_data()).digest == _index_shard(_data()).digest


def test_subsets_of_different_datasets_differ_and_concats_by_their_parts() -> None:
    assert _index_shard(Subset(_data(20), [0, 1])).digest \
        != _index_shard(Subset(_data(30), [0, 1])).digest
    assert _index_shard(ConcatDataset([Subset(_data(), [0]), Subset(_data(), [1])])).digest \
        != _index_shard(ConcatDataset([Subset(_data(), [1]), Subset(_data(), [0])])).digest
