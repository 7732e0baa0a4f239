"""Small models on disk for signing tests: a config and three ~200 kB parts."""

from __future__ import annotations

import os
from pathlib import Path


def sharded_model(root: Path) -> Path:
    """``root/config.json`` and ``root/shards/part-{0,1,2}.bin`` (200,000+i random bytes)."""
    (root / "shards").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    for i in range(3):
        (root / "shards" / f"part-{i}.bin").write_bytes(os.urandom(200_000 + i))
    return root
