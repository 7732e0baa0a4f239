"""Shared fixtures. Markers are declared in pyproject.toml (--strict-markers)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.cluster import Cluster

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))
# Processes the tests start (torchrun ranks, coordinators, the CLI) import this checkout,
# whatever their working directory: a relative PYTHONPATH would resolve elsewhere there,
# and the editable install may point at another work tree.
_ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_ROOT), str(_ROOT / "tests"),
     *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
       if p and Path(p).is_absolute())])

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip on a user's machine when a system component is missing; fail under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def vectors() -> Path:
    return ASSETS / "vectors"


@pytest.fixture
def chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """raw.csv -> clean (data step) -> model (training step) -> quantized (model step),
    real ``slsa-dist run`` bundles in a store, and a policy (support/chains.py)."""
    from support.chains import build_chain

    built = build_chain(tmp_path)
    capsys.readouterr()
    return built


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster of namespaces (3 nodes, a coordinator host, 3 software TPMs) for the
    session (support/cluster.py), with the digits shards and a signing key in its
    work folder; each test module runs its own jobs on it, with its own CA and ports."""
    from examples.demo import data as demo_data
    from support.background import signing_key
    from support.cluster import Cluster, unavailable

    why = unavailable()
    need(why is None, f"cluster: {why}")
    with Cluster(tmp_path_factory.mktemp("cluster"), nodes=3) as made:
        demo_data.main(["--out", str(made.workdir / "data")])
        signing_key(made.workdir)
        yield made


@pytest.fixture(scope="session")
def cluster_key(cluster: Cluster) -> Path:
    return cluster.workdir / "signing.key"
