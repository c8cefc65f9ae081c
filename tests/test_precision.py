"""The fast precision mode (``models.precision``): bf16 convolutions for the backbone and
super-resolution, fp32 everywhere else; exact stays fp32 and untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import open_generator
from models.precision import PRECISIONS, check_precision, default_precision, planes_at, superresolve_at
from renderers.render_args import QualityArgs, RenderArgs
from renderers.renderer import GeneratorRenderer


def test_precision_names_and_defaults():
    assert PRECISIONS == ("exact", "fast")
    assert default_precision("cpu") == "fast" and default_precision("cuda") == "exact"
    with pytest.raises(ValueError, match="'bogus' is not one of exact, fast"):
        check_precision("bogus")
    args = RenderArgs(quality=QualityArgs(precision="bogus"))
    with pytest.raises(ValueError, match="precision 'bogus'"):
        args.check()


def test_exact_is_the_default_and_unchanged():
    G = open_generator("tiny")
    renderer = GeneratorRenderer(G)
    a = renderer.render(RenderArgs()).image
    b = renderer.render(RenderArgs(quality=QualityArgs(precision="exact"))).image
    assert torch.equal(a, b)


@pytest.mark.parametrize("preset", ["tiny", "volumegan-tiny", "pigan-tiny", "stylesdf-tiny"])
def test_fast_renders_every_mode_in_fp32_close_to_exact(preset):
    G = open_generator(preset)
    renderer = GeneratorRenderer(G)
    for mode, key in (("rgb", "image"), ("raw", "image_raw"), ("depth", "depth"), ("normals", "normals")):
        exact = getattr(renderer.render(RenderArgs(mode=mode)), key)
        fast = getattr(renderer.render(RenderArgs(mode=mode, quality=QualityArgs(precision="fast"))), key)
        assert fast.dtype == torch.float32 and torch.isfinite(fast).all(), (preset, mode)
        assert (fast - exact).abs().mean().item() < 0.01, (preset, mode)
    if preset == "pigan-tiny":  # no convolutions: fast is exact
        assert torch.equal(renderer.render(RenderArgs()).image,
                           renderer.render(RenderArgs(quality=QualityArgs(precision="fast"))).image)
    mesh = renderer.render(RenderArgs(mode="mesh", mesh_resolution=32, quality=QualityArgs(precision="fast"))).mesh
    assert mesh is not None  # meshes always come from the fp32 path


def test_fast_meets_its_error_bounds_on_the_eg3d_fixture(ref128_generator, ref128_cases):
    """README 'Performance': fast against exact, max abs <= 0.05 and mean <= 0.01 on the [-1, 1] image."""
    G = ref128_generator
    for i in range(3):
        z, c = torch.from_numpy(ref128_cases[f"{i}_z"]), torch.from_numpy(ref128_cases[f"{i}_c"])
        with torch.no_grad():
            ws = G.mapping(z, c, truncation_psi=float(ref128_cases[f"{i}_psi"]))
            exact = G.synthesis(ws, c, noise_mode="const")
            planes = planes_at(G, ws, "fast", "cpu")
            features, depth = G.render_neural(planes, c, G.neural_rendering_resolution)
            image = superresolve_at(G, features, ws, "fast", "cpu")
        error = (image - exact["image"]).abs()
        assert error.max().item() <= 0.05 and error.mean().item() <= 0.01, (i, error.max().item(), error.mean().item())
        depth_error = (depth - exact["image_depth"]).abs() / exact["image_depth"].abs().max()
        assert depth_error.max().item() <= 0.01
        assert np.isfinite(image.numpy()).all()
