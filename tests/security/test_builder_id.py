"""Item 6: ``builder.id`` means something.

Every deployment signed as the same ``.../builders/coordinator/v1`` whatever it
isolated, and ``verify`` without ``--builder-id`` accepted any builder silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slsa_dist.cli import main as cli_main
from slsa_dist.model._statement import BUILDER_IDS

ROOT = Path(__file__).resolve().parents[2]


def test_each_deployment_mode_has_its_own_builder_id() -> None:
    assert sorted(BUILDER_IDS) == ["kubernetes", "local", "ray", "slurm"]
    assert len(set(BUILDER_IDS.values())) == 4
    builder_doc = (ROOT / "docs" / "builder.md").read_text()
    for builder_id in BUILDER_IDS.values():
        assert builder_id in builder_doc


@pytest.mark.parametrize(("launcher", "mode"), [
    ("launch/local.sh", "local"), ("launch/slurm/train.sbatch", "slurm"),
    ("launch/k8s/coordinator.yaml", "kubernetes")])
def test_each_launcher_passes_its_own_builder_id(launcher: str, mode: str) -> None:
    text = (ROOT / launcher).read_text()
    assert re.search(rf"(--builder-id[= ]|builder=)\"?{re.escape(BUILDER_IDS[mode])}", text), \
        launcher


def test_the_ray_callback_signs_as_the_ray_builder() -> None:
    assert 'builder_id=BUILDER_IDS["ray"]' in (ROOT / "slsa_dist" / "integrations" / "_ray.py").read_text()


def test_verify_without_a_builder_id_warns_and_a_different_one_fails(
        chain: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bundle = chain["quant"]
    assert cli_main(["verify", str(bundle), "--key", str(chain["public"])]) == 0
    out = capsys.readouterr().out
    assert "WARN  builder.id not checked (the provenance says " in out
    assert cli_main(["verify", str(bundle), "--key", str(chain["public"]),
                     "--builder-id", BUILDER_IDS["slurm"]]) == 1
    assert "FAIL  builder.id: expected 'https://slsa-dist.dev/builders/slurm/v1'" in \
        capsys.readouterr().out
