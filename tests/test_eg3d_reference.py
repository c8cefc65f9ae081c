"""Our EG3D generator against outputs of the official NVlabs code (shared/fixtures/eg3d_ref128)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import FFHQ512_STATE_DICT_TXT, require

# float32 round-off on values of magnitude ~3 (see the fixture README); a real layer difference
# shows up orders of magnitude above this.
MAX_ABS_ERR = 1e-4


def reproduce_case(G, cases, i: int) -> dict[str, torch.Tensor]:
    z = torch.from_numpy(cases[f"{i}_z"])
    c = torch.from_numpy(cases[f"{i}_c"])
    psi = float(cases[f"{i}_psi"])
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=None)
        out = G.synthesis(ws, c, noise_mode="const")
    return {"ws": ws, **out}


@pytest.mark.parametrize("case", [0, 1, 2])
def test_reproduces_official_outputs(ref128_generator, ref128_cases, case):
    out = reproduce_case(ref128_generator, ref128_cases, case)
    assert set(out) == {"ws", "image", "image_raw", "image_depth"}
    for key in ("ws", "image", "image_raw", "image_depth"):
        expected = torch.from_numpy(ref128_cases[f"{case}_{key}"])
        assert out[key].shape == expected.shape, key
        err = (out[key] - expected).abs().max().item()
        assert err <= MAX_ABS_ERR, f"case {case} {key}: max abs err {err:.3g}"


def test_non_fused_modconv_agrees_with_fixture(ref128_generator, ref128_cases):
    """The training-time (non-grouped) modulated conv path gives the same images."""
    from models.stylegan2 import SynthesisBlock

    blocks = [m for m in ref128_generator.modules() if isinstance(m, SynthesisBlock)]
    saved = [b.fused_modconv_default for b in blocks]
    try:
        for b in blocks:
            b.fused_modconv_default = False
        out = reproduce_case(ref128_generator, ref128_cases, 1)
    finally:
        for b, s in zip(blocks, saved):
            b.fused_modconv_default = s
    for key in ("image", "image_raw", "image_depth"):
        err = (out[key] - torch.from_numpy(ref128_cases[f"1_{key}"])).abs().max().item()
        assert err <= MAX_ABS_ERR, f"{key}: {err:.3g}"


def test_cached_backbone_gives_same_image_for_new_camera(ref128_generator, ref128_cases):
    G = ref128_generator
    z = torch.from_numpy(ref128_cases["0_z"])
    c0, c1 = torch.from_numpy(ref128_cases["0_c"]), torch.from_numpy(ref128_cases["1_c"])
    with torch.no_grad():
        ws = G.mapping(z, c0)
        scene = G.planes(ws)  # the per-identity tri-planes, computed once (the viewer caches them)
        G.render_neural(scene, c0, G.neural_rendering_resolution)
        features, depth = G.render_neural(scene, c1, G.neural_rendering_resolution)
        image, _ = G.superresolve(features, ws)
        fresh = G.synthesis(ws, c1)
    assert torch.equal(image, fresh["image"])
    assert torch.equal(depth, fresh["image_depth"])


def test_truncation_cutoff_only_touches_first_layers(ref128_generator, ref128_cases):
    G = ref128_generator
    z = torch.from_numpy(ref128_cases["0_z"])
    c = torch.from_numpy(ref128_cases["0_c"])
    with torch.no_grad():
        full = G.mapping(z, c)
        cut = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=4)
    w_avg = G.mapping_network.w_avg
    assert torch.allclose(cut[:, :4], w_avg.lerp(full[:, :4], 0.5))
    assert torch.equal(cut[:, 4:], full[:, 4:])


def test_sample_mixed_matches_renderer_decoder(ref128_generator, ref128_cases):
    G = ref128_generator
    z = torch.from_numpy(ref128_cases["0_z"])
    c = torch.from_numpy(ref128_cases["0_c"])
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(1, 500, 3, generator=generator) - 0.5
    dirs = torch.nn.functional.normalize(torch.randn(1, 500, 3, generator=generator), dim=-1)
    with torch.no_grad():
        ws = G.mapping(z, c)
        mixed = G.sample_mixed(points, dirs, ws)
        direct = G.sample(points, dirs, z, c)
        planes = G.planes(ws, noise_mode="const")
        manual = G.run_decoder(planes, points, dirs)
    assert mixed["sigma"].shape == (1, 500, 1) and mixed["rgb"].shape == (1, 500, 32)
    assert torch.equal(mixed["sigma"], direct["sigma"])
    assert torch.equal(mixed["sigma"], manual["sigma"])
    # Outside the tri-plane box the features are zero, so sigma is the decoder's bias response.
    far = G.sample_mixed(torch.full((1, 2, 3), 5.0), dirs[:, :2], ws)["sigma"]
    assert torch.allclose(far[0, 0], far[0, 1])


def test_eg3d_attributes(ref128_generator):
    G = ref128_generator
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution) == (512, 25, 512, 128)
    assert G.neural_rendering_resolution == 64
    assert G.rendering_kwargs["depth_resolution"] == 12
    assert G.mapping_network.w_avg.shape == (512,)


def test_rendering_kwargs_are_live(ref128_generator, ref128_cases):
    """EG3D scripts edit G.rendering_kwargs in place; the renderer must honour it."""
    G = ref128_generator
    c = torch.from_numpy(ref128_cases["0_c"])
    ws = torch.from_numpy(ref128_cases["0_ws"])
    saved = dict(G.rendering_kwargs)
    try:
        G.rendering_kwargs["depth_resolution_importance"] = 0
        with torch.no_grad():
            out = G.synthesis(ws, c, neural_rendering_resolution=32)
    finally:
        G.rendering_kwargs.clear()
        G.rendering_kwargs.update(saved)
        G.neural_rendering_resolution = 64
    assert out["image_raw"].shape == (1, 3, 32, 32)
    assert out["image"].shape == (1, 3, 128, 128)
    assert not torch.allclose(
        torch.nn.functional.interpolate(out["image_depth"], size=64), torch.from_numpy(ref128_cases["0_image_depth"]),
        atol=1e-3,
    )


def parse_state_dict_listing(path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in require(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        rows.append((name, dims, dtype))
    return rows


def test_builds_official_ffhq512_layout():
    """Exactly the parameter names, shapes and dtypes of the official FFHQ-512 G_ema, in order."""
    from models.build import build_eg3d
    from models.methods.eg3d import pipeline_to_official_names

    expected = parse_state_dict_listing(FFHQ512_STATE_DICT_TXT)
    with torch.device("meta"):
        G = build_eg3d("ffhq512")
    # Our parameter names map to the official ones at import and export (models.methods.eg3d).
    official = pipeline_to_official_names(G.state_dict())
    actual = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in official.items()]
    assert len(expected) == 176
    missing = sorted({e[0] for e in expected} - {a[0] for a in actual})
    extra = sorted({a[0] for a in actual} - {e[0] for e in expected})
    assert not missing and not extra, f"missing {missing[:5]}, extra {extra[:5]}"
    assert sorted(actual) == sorted(expected)
    assert G.num_ws == 14
