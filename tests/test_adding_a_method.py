"""The README's "Adding a method" example: a tenth method from two new files, no other edit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from models.build import build_pipeline
from models.method_registry import METHODS
from training.distributed import init_distributed
from training.loop import Trainer
from training.presets import train_preset
from training.recipes import RECIPES

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "adding_a_method"


def _load(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


@pytest.fixture
def voxgram():
    """Both example files registered, as if copied to models/methods/ and training/methods/."""
    _load(EXAMPLE / "models_method.py", "example_models_voxgram")
    _load(EXAMPLE / "training_method.py", "example_training_voxgram")
    yield "voxgram"
    METHODS.pop("voxgram", None)
    RECIPES.pop("voxgram", None)


def test_example_method_builds_trains_and_renders(voxgram):
    config = train_preset(f"{voxgram}-tiny")
    assert config.generator.preset == "voxgram-tiny" and config.generator.embedder.kind == "volume"
    config.batch = 2
    torch.manual_seed(0)
    labels = build_pipeline(config.generator).default_camera(batch=4).numpy()
    trainer = Trainer(config, init_distributed(1, "cpu"), labels)
    res = config.generator.img_resolution
    before = [p.detach().clone() for p in trainer.G.parameters()]
    trainer.step(torch.randint(0, 255, (2, 3, res, res), dtype=torch.uint8), torch.as_tensor(labels[:2]))
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))
    out = trainer.G_ema.eval()(torch.randn(1, trainer.G.z_dim), trainer.G.default_camera())
    assert out["image"].shape == (1, 3, res, res) and torch.isfinite(out["image"]).all()
