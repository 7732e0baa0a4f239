"""The demo's data step: scikit-learn's bundled digits CSV -> normalized, shuffled shards.

    python examples/demo/data.py --source digits.csv.gz --out DIR [--shards 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def digits_csv() -> Path:
    """The digits data file that ships inside scikit-learn (nothing is downloaded)."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    table = np.loadtxt(args.source or digits_csv(), delimiter=",")
    features = (table[:, :-1] / 16.0).astype(np.float32)  # cleaning: pixel range -> [0, 1]
    labels = table[:, -1].astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(labels))
    args.out.mkdir(parents=True, exist_ok=True)
    for index, part in enumerate(np.array_split(order, args.shards)):
        with (args.out / f"digits-{index:05d}.npz").open("wb") as handle:
            np.savez(handle, x=features[part], y=labels[part])
    print(f"wrote {args.shards} shards, {len(labels)} samples, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
