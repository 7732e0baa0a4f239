"""Hugging Face Trainer and PyTorch Lightning under one provenance (#15 item 9).

A tiny model built in-process (nothing downloaded), one rank, a real
coordinator on loopback: the callback records the framework's parameters and
checkpoints, and zero-code capture the data the sampler yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from slsa_dist.capture import _runtime
from slsa_dist.collect._coordinator import CoordinatorThread
from slsa_dist.model._provenance import Provenance
from slsa_dist.verify._bundle import verify_bundle
from slsa_dist.verify._policy import AllOf, Artifacts, Complete

from support.rank import in_process_rank

pytestmark = [pytest.mark.grpc, pytest.mark.timeout(240)]


@pytest.fixture
def rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CoordinatorThread]:
    with in_process_rank(tmp_path, monkeypatch, "fw") as server:
        yield server


def _finish(server: CoordinatorThread) -> Provenance:
    runtime = _runtime.current()
    assert runtime is not None
    assert runtime.finish(timeout=30)
    bundle = server.wait_finalized(60).bundle
    return verify_bundle(bundle, keys=[server.signer.public()]).provenance  # type: ignore[attr-defined]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    return x, x.sum(dim=1, keepdim=True)


def test_a_hugging_face_trainer_run(rank: CoordinatorThread, tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    from slsa_dist.hf import SlsaTrainerCallback

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            out = self.linear(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    x, y = _data()
    dataset = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=2,
                             per_device_train_batch_size=8, learning_rate=0.05, seed=3,
                             save_strategy="epoch", report_to=[], use_cpu=True,
                             logging_strategy="no", dataloader_num_workers=0)
    Trainer(model=Tiny(), args=args, train_dataset=dataset,
            callbacks=[SlsaTrainerCallback()]).train()
    provenance = _finish(rank)
    hyper = provenance.external_parameters["hyperparameters"]
    assert (hyper["seed"], hyper["per_device_train_batch_size"]) == (3, 8)
    assert hyper["learning_rate"] == 0.05  # a float stays a number (#27 item 7)
    checkpoints = {c.name for c in provenance.checkpoints()}
    assert {"hf/checkpoint-8", "hf/checkpoint-16"} <= checkpoints, checkpoints
    (subject,) = provenance.statement.subjects
    assert subject.name == "hf/checkpoint-16"  # the last checkpoint saved
    verify_bundle(Path(rank.coordinator.out_dir) / "fw.intoto.jsonl",  # type: ignore[union-attr]
                  keys=[rank.signer.public()],  # type: ignore[attr-defined]
                  policy=AllOf(Artifacts(tmp_path / "hf" / "checkpoint-16"), Complete()))
    (record,) = provenance.rank_records()
    assert record.samples == 2 * 64  # every sample, both epochs, counted by the sampler


def test_a_lightning_fit(rank: CoordinatorThread, tmp_path: Path) -> None:
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from slsa_dist.lightning import SlsaCallback

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.linear = torch.nn.Linear(4, 1)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                          index: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.linear(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])

    x, y = _data()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path / "pl"), callbacks=[SlsaCallback()])
    trainer.fit(Tiny(), DataLoader(TensorDataset(x, y), batch_size=8))
    provenance = _finish(rank)
    hyper = provenance.external_parameters["hyperparameters"]
    assert (hyper["lr"], hyper["max_epochs"]) == (0.05, 2)
    (subject,) = provenance.statement.subjects
    assert subject.name.endswith(".ckpt")
    saved = tmp_path / subject.name
    verify_bundle(Path(rank.coordinator.out_dir) / "fw.intoto.jsonl",  # type: ignore[union-attr]
                  keys=[rank.signer.public()],  # type: ignore[attr-defined]
                  policy=AllOf(Artifacts(saved), Complete()))
    (record,) = provenance.rank_records()
    assert record.samples == 2 * 64
