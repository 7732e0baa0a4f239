"""What a saved file is, by the framework conventions (capture/_outputs.py)."""

from __future__ import annotations

import os

import pytest

from slsa_dist.capture._outputs import classify, named_subjects


@pytest.mark.parametrize(("path", "kind"), [
    ("out/training_args.bin", "auxiliary"),          # HF Trainer, after the weights
    ("out/checkpoint-500/optimizer.pt", "auxiliary"),
    ("out/checkpoint-500/scheduler.pt", "auxiliary"),
    ("out/checkpoint-500/rng_state_1.pth", "auxiliary"),
    ("out/checkpoint-500/scaler.pt", "auxiliary"),
    ("ckpt/optim_state_dict.pt", "auxiliary"),       # FSDP2 example, --dcp-api
    ("ckpt/lr_scheduler.pt", "auxiliary"),
    ("out/final/model.safetensors", "model"),
    ("out/final/model-00001-of-00003.safetensors", "model"),
    ("out/final/pytorch_model.bin", "model"),
    ("out/lora/adapter_model.safetensors", "model"),
    ("out/checkpoint-500/model.safetensors", "checkpoint-folder"),
    ("out/global_step40/pytorch_model.bin", "checkpoint-folder"),
    ("ckpt/model_state_dict.pt", "checkpoint"),      # plain torch.save: last one is it
    ("model/model.pt", "checkpoint"),
    ("epoch-3.pt", "checkpoint"),
    ("tokenizer_optimized.pt", "checkpoint"),        # a word containing "optim" is not it
])
def test_each_saved_file_is_read_by_its_framework_s_convention(path: str, kind: str) -> None:
    assert classify(path) == kind


def test_slsa_subject_names_paths_absolute(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: os.PathLike[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLSA_SUBJECT", os.pathsep.join(["out/final", "/abs/model.pt", ""]))
    assert named_subjects() == (os.path.join(os.fspath(tmp_path), "out", "final"),
                                "/abs/model.pt")
    monkeypatch.delenv("SLSA_SUBJECT")
    assert named_subjects() == ()
