"""Checkpoints written by older code still load and render bit-identically.

``tests/fixtures/legacy/`` holds one generator checkpoint per trainable ``-tiny`` preset (plus
ablations and StyleSDF's stage 2), written and rendered by the code at commit 1a55160 with
``tests/fixtures/make_legacy_checkpoints.py``, and the bundled model's renders. Each case loads the
checkpoint with the public loader and recomputes the stored outputs from the stored inputs; any
difference, however small, fails. Do not regenerate the fixtures to make this pass: a failure means
a checkpoint users already have would now load or render differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator

REPO_ROOT = Path(__file__).resolve().parents[1]
LEGACY_DIR = REPO_ROOT / "tests" / "fixtures" / "legacy"
BUNDLED = "default_generator"
BUNDLED_PATH = REPO_ROOT / "assets" / "default_generator.safetensors"

EXPECTED = (
    "tiny", "eg3d-tiny", "pigan-tiny", "gram-tiny", "stylesdf-tiny", "stylesdf-tiny-stage2", "volumegan-tiny",
    "stylenerf-tiny", "graf-tiny", "giraffe-tiny", "epigraf-tiny", "eg3d-tiny-embedder-volume",
    "pigan-tiny-decoder-modulated_mlp", "eg3d-tiny-trained", BUNDLED,
)
"""Every fixture the legacy code wrote: a missing one fails."""

TRUNCATION_PSI = 0.7
"""As when the references were recorded."""
THREADS = 1
"""Torch CPU threads of the recording. Exact equality needs the same count: MKL's sgemm blocks
differently at 3+ threads than at 1-2 (e.g. the OSG decoder's addmm) and grouped 1x1 convolutions
(StyleGAN2's fused ToRGB) differ between 1 and 2+ threads, by up to ~1e-5, so conftest's
min(2, cores) would make the result depend on the machine. Same CPU family and torch build assumed."""


@pytest.fixture(autouse=True, scope="module")
def recording_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


def checkpoint_path(name: str) -> Path:
    return BUNDLED_PATH if name == BUNDLED else LEGACY_DIR / f"{name}.safetensors"


def fixture_names() -> list[str]:
    return sorted(set(EXPECTED) | {p.stem for p in LEGACY_DIR.glob("*.npz") if not p.stem.endswith("-state-step3")})


def test_every_preset_has_a_fixture():
    missing = [str(p.relative_to(REPO_ROOT)) for name in EXPECTED
               for p in (checkpoint_path(name), LEGACY_DIR / f"{name}.npz") if not p.is_file()]
    assert not missing, f"legacy fixtures missing: {', '.join(missing)}"
    orphans = sorted({p.stem for p in LEGACY_DIR.glob("*.safetensors")} - set(EXPECTED))
    assert not orphans, f"checkpoints without an entry in EXPECTED: {', '.join(orphans)}"


def assert_identical(name: str, key: str, actual: torch.Tensor, expected: np.ndarray) -> None:
    actual_np = actual.detach().cpu().numpy()
    assert actual_np.dtype == expected.dtype and actual_np.shape == expected.shape, (
        f"{name}: {key} is {actual_np.dtype} {actual_np.shape}, was {expected.dtype} {expected.shape}")
    if not np.array_equal(actual_np, expected, equal_nan=True):
        error = float(np.nanmax(np.abs(actual_np.astype(np.float64) - expected)))
        pytest.fail(f"{name}: {key} differs from the legacy render (max abs error {error:.3g})")


@pytest.mark.parametrize("name", fixture_names())
def test_legacy_checkpoint_renders_identically(name):
    refs = np.load(LEGACY_DIR / f"{name}.npz")
    G = load_generator(checkpoint_path(name)).eval()
    z, c = torch.from_numpy(refs["z"]), torch.from_numpy(refs["c"])
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=TRUNCATION_PSI)
        assert_identical(name, "ws", ws, refs["ws"])
        out = G.synthesis(ws, c)
        for key in ("image", "image_raw", "image_depth"):
            assert_identical(name, key, out[key], refs[key])
        # "const" noise: EG3D's planes() defaults to random noise (the app passes the mode).
        fields = G.mesh_fields(G.planes(ws[:1], noise_mode="const"))
        assert_identical(name, "mesh_bounds", torch.tensor([float(b) for b in fields.bounds]), refs["mesh_bounds"])
        assert_identical(name, "mesh_field", fields.field(torch.from_numpy(refs["mesh_points"])), refs["mesh_field"])
    level = float("nan") if fields.level is None else fields.level
    assert_identical(name, "mesh_level", torch.tensor(level, dtype=torch.float32), refs["mesh_level"])
