"""Pipeline discriminators (resnet, coordconv, patch, dcgan): shapes, gradients, progressive
fade-in, patch hyper-modulation, CoordConv heads, spectral norm, label conditioning and configs."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json

import pytest
import torch
import torch.nn.functional as F

import models.pipeline_discriminators as pd
from models.pipeline_discriminators import (
    PIPELINE_DISCRIMINATOR_KINDS,
    DiscriminatorOutput,
    PipelineDiscriminatorConfig,
    build_pipeline_discriminator,
    fade_downsample,
)
from ops.patch_sampling import PatchParams

RES = 32
BATCH = 4


def tiny(kind: str, **overrides) -> PipelineDiscriminatorConfig:
    """A CPU-cheap config: 8-32 channels at 32x32."""
    kw = dict(kind=kind, img_resolution=RES, channel_base=256, channel_max=32, ndf=8,
              patch_fourier_dim=16, patch_mapping_dim=16)
    kw.update(overrides)
    return PipelineDiscriminatorConfig(**kw)


def build(kind: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_pipeline_discriminator(tiny(kind, **overrides))


def images(res: int = RES, n: int = BATCH, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(seed))


PROGRESSIVE = {
    "resnet": dict(progressive=True),
    "coordconv": dict(),  # always progressive
    "patch": dict(progressive=True),
}


# --- every kind: shapes, dtypes, gradients ----------------------------------------------------

@pytest.mark.parametrize("kind", PIPELINE_DISCRIMINATOR_KINDS)
def test_output_shapes_and_dtypes(kind: str) -> None:
    heads = dict(pose_dim=2, latent_dim=4) if kind == "coordconv" else {}
    D = build(kind, **heads)
    out = D(images())
    assert isinstance(out, DiscriminatorOutput)
    assert out.logits.shape == (BATCH, 1) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    if kind == "coordconv":
        assert out.pose.shape == (BATCH, 2) and out.pose.dtype == torch.float32
        assert out.latent.shape == (BATCH, 4) and out.latent.dtype == torch.float32
    else:
        assert out.pose is None and out.latent is None
    # A float64 input still gives float32 logits.
    assert D(images().double()).logits.dtype == torch.float32


@pytest.mark.parametrize("kind,overrides", [
    ("resnet", {}),
    ("resnet", dict(c_dim=5, progressive=True)),
    ("coordconv", dict(pose_dim=2, latent_dim=4)),
    ("patch", {}),
    ("patch", dict(progressive=True, c_dim=3)),
    ("dcgan", {}),
])
def test_gradients_reach_input_and_every_parameter(kind: str, overrides: dict) -> None:
    D = build(kind, **overrides)
    cfg = D.config
    c = torch.randn(BATCH, cfg.c_dim) if cfg.c_dim else None
    patch = torch.tensor([[0.5, 0.1, 0.3]]).repeat(BATCH, 1) if kind == "patch" else None
    # Progressive models: one call per input resolution, each fading, so every fromRGB is used.
    resolutions = [RES // 2**i for i in range(3)] if cfg.is_progressive else [RES]
    inputs = [images(r).requires_grad_(True) for r in resolutions]
    loss = 0.0
    for x in inputs:
        out = D(x, c=c, patch=patch, alpha=0.5)
        loss = loss + sum(t.square().sum() for t in out if t is not None)
    loss.backward()
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in D.named_parameters():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"zero gradient at {name}"


# --- progressive input and fade-in ------------------------------------------------------------

@pytest.mark.parametrize("kind", list(PROGRESSIVE))
def test_progressive_fade_endpoints(kind: str) -> None:
    D = build(kind, **PROGRESSIVE[kind]).eval()
    for res in (RES, RES // 2):
        x = images(res)
        direct = D(x)
        # alpha = 1 is the plain path at res.
        assert torch.equal(D(x, alpha=1.0).logits, direct.logits)
        # alpha = 0 is a plain call with the 2x2-box-downsampled image at res / 2.
        low = D(F.avg_pool2d(x, 2))
        faded = D(x, alpha=0.0)
        for a, b in zip(faded, low):
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        # In between it is neither end.
        half = D(x, alpha=0.5).logits
        assert not torch.allclose(half, direct.logits, atol=1e-4)
        assert not torch.allclose(half, low.logits, atol=1e-4)
    # fade_downsample is that 2x2 box filter.
    x = images()
    assert torch.equal(fade_downsample(x), F.avg_pool2d(x, 2))


@pytest.mark.parametrize("kind", list(PROGRESSIVE))
def test_progressive_accepts_lower_resolutions(kind: str) -> None:
    D = build(kind, min_resolution=8, **PROGRESSIVE[kind])
    assert D.input_resolutions == [32, 16, 8]
    for res in (32, 16, 8):
        assert D(images(res)).logits.shape == (BATCH, 1)
    # At min_resolution there is no lower fromRGB to fade from: alpha has no effect.
    x = images(8)
    assert torch.equal(D(x, alpha=0.3).logits, D(x).logits)


@pytest.mark.parametrize("kind", list(PROGRESSIVE))
def test_progressive_rejects_bad_inputs(kind: str) -> None:
    D = build(kind, min_resolution=16, **PROGRESSIVE[kind])
    with pytest.raises(ValueError, match="not a power of two"):
        D(images(24))
    with pytest.raises(ValueError, match="below min_resolution 16"):
        D(images(8))
    with pytest.raises(ValueError, match="above img_resolution 32"):
        D(images(64))
    with pytest.raises(ValueError, match=r"\[N, 3, R, R\]"):
        D(torch.randn(BATCH, 3, 32, 16))
    with pytest.raises(ValueError, match=r"\[N, 3, R, R\]"):
        D(torch.randn(BATCH, 4, 32, 32))
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            D(images(), alpha=alpha)


@pytest.mark.parametrize("kind", ["resnet", "patch", "dcgan"])
def test_non_progressive_takes_only_img_resolution(kind: str) -> None:
    D = build(kind).eval()  # eval: no spectral-norm power iteration between the two calls
    with pytest.raises(ValueError, match="non-progressive .* takes 32x32 inputs, got 16x16"):
        D(images(16))
    # alpha is accepted (there is nothing to fade) and changes nothing.
    x = images()
    assert torch.equal(D(x, alpha=0.25).logits, D(x).logits)


# --- resnet -----------------------------------------------------------------------------------

def test_resnet_label_conditioning() -> None:
    D = build("resnet", c_dim=5).eval()
    x = images()
    c = torch.randn(BATCH, 5, generator=torch.Generator().manual_seed(2))
    a = D(x, c=c).logits
    assert torch.equal(a, D(x, c=c.clone()).logits)
    b = D(x, c=c + 1.0).logits
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"c must be \[4, 5\], got None"):
        D(x)
    with pytest.raises(ValueError, match=r"c must be \[4, 5\]"):
        D(x, c=torch.randn(BATCH, 3))
    # Unconditional: c is ignored, like EG3D's discriminator with c_dim == 0.
    U = build("resnet").eval()
    assert torch.equal(U(x, c=torch.randn(BATCH, 5)).logits, U(x).logits)
    assert not hasattr(U, "mapping")


def test_resnet_minibatch_std_couples_samples_unless_off() -> None:
    x = images()
    y = x.clone()
    y[0] = -y[0]
    D = build("resnet").eval()
    assert D.epilogue.mbstd is not None
    a, b = D(x).logits, D(y).logits
    assert not torch.allclose(a[1:], b[1:])  # sample 0 moves the group std seen by the others
    off = build("resnet", mbstd_group_size=0).eval()
    assert off.epilogue.mbstd is None
    a, b = off(x).logits, off(y).logits
    torch.testing.assert_close(a[1:], b[1:])
    assert not torch.allclose(a[0], b[0])


def test_resnet_channels_follow_channel_base_and_max() -> None:
    D = build("resnet", progressive=True)
    # min(256 // r, 32): 8 at 32, 16 at 16, 32 at 8 and at 4.
    assert D.fromrgb["32"].out_channels == 8 and D.fromrgb["16"].out_channels == 16
    assert D.blocks["32"].conv1.out_channels == 16 and D.blocks["8"].conv1.out_channels == 32
    assert D.epilogue.in_channels == 32


# --- patch ------------------------------------------------------------------------------------

def test_patch_none_is_full_image_and_patch_changes_logits() -> None:
    D = build("patch").eval()
    x = images()
    full = D(x).logits
    torch.testing.assert_close(D(x, patch=torch.tensor([[1.0, 0.0, 0.0]]).repeat(BATCH, 1)).logits, full)
    torch.testing.assert_close(D(x, patch=PatchParams.full_image(BATCH)).logits, full)
    zoomed = D(x, patch=torch.tensor([[0.5, 0.25, 0.25]]).repeat(BATCH, 1)).logits
    assert not torch.allclose(zoomed, full, atol=1e-4)
    shifted = D(x, patch=torch.tensor([[0.5, 0.25, 0.30]]).repeat(BATCH, 1)).logits
    assert not torch.allclose(shifted, zoomed, atol=1e-5)  # offsets alone matter too
    with pytest.raises(ValueError, match=r"patch must be \[4, 3\]"):
        D(x, patch=torch.ones(BATCH, 2))


def test_patch_modulation_is_per_sample() -> None:
    # Without mbstd, sample i's logit depends only on its own image and patch.
    D = build("patch", mbstd_group_size=0).eval()
    x = images()
    patch = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.1, 0.2], [0.25, 0.5, 0.5], [0.75, 0.0, 0.25]])
    base = D(x, patch=patch).logits
    moved = patch.clone()
    moved[2] = torch.tensor([0.3, 0.6, 0.1])
    out = D(x, patch=moved).logits
    assert not torch.allclose(out[2], base[2])
    torch.testing.assert_close(out[[0, 1, 3]], base[[0, 1, 3]])
    # Each row equals the same row evaluated alone.
    torch.testing.assert_close(D(x[1:2], patch=patch[1:2]).logits, base[1:2])


def test_patch_fourier_frequencies_are_a_fixed_buffer() -> None:
    a, b = build("patch", seed=0), build("patch", seed=123)
    assert "patch_freqs" in dict(a.named_buffers())
    assert "patch_freqs" in a.state_dict()
    assert all(p is not a.patch_freqs for p in a.parameters())
    assert a.patch_freqs.shape == (3, 8)  # patch_fourier_dim 16 = sin and cos of 8 frequencies
    assert torch.equal(a.patch_freqs, b.patch_freqs)  # deterministic, independent of the seed
    # Every frequency column reads exactly one of (scale, offset_x, offset_y); all three are read.
    assert ((a.patch_freqs != 0).sum(dim=0) == 1).all()
    assert ((a.patch_freqs != 0).sum(dim=1) > 0).all()
    # Highest frequency pi; lowest keeps multiplier * [0, 1] within one half period.
    cfg = PipelineDiscriminatorConfig(kind="patch", channel_base=256, channel_max=32)
    freqs = pd.PatchDiscriminator._fourier_frequencies(cfg.patch_fourier_dim // 2, cfg.patch_fourier_scale)
    nonzero = freqs[freqs != 0]
    assert torch.isclose(nonzero.max(), torch.tensor(torch.pi))
    assert nonzero.min() * cfg.patch_fourier_scale <= torch.pi


def test_patch_blocks_modulate_their_second_conv() -> None:
    D = build("patch")
    for res in D.block_resolutions:
        block = D.blocks[str(res)]
        assert isinstance(block.conv1, pd._HyperModulatedConv)
        assert block.conv1.affine.in_features == 16  # patch_mapping_dim
        assert block.conv1.affine.out_features == block.conv1.weight.shape[1]
        assert not isinstance(block.conv0, pd._HyperModulatedConv)


# --- coordconv --------------------------------------------------------------------------------

def test_coordconv_output_split() -> None:
    D = build("coordconv", pose_dim=2, latent_dim=4).eval()
    captured = {}
    D.out.register_forward_hook(lambda m, i, o: captured.setdefault("raw", o.flatten(1)))
    out = D(images())
    raw = captured["raw"]
    assert raw.shape == (BATCH, 1 + 4 + 2)
    # Order: logit, latent, pose.
    assert torch.equal(torch.cat([out.logits, out.latent, out.pose], dim=1), raw)
    only_pose = build("coordconv", pose_dim=2)(images())
    assert only_pose.pose.shape == (BATCH, 2) and only_pose.latent is None
    plain = build("coordconv")(images())
    assert plain.pose is None and plain.latent is None and plain.logits.shape == (BATCH, 1)


def test_coordconv_convs_see_two_coordinate_channels() -> None:
    D = build("coordconv")
    block = D.blocks["32"]
    assert block.conv0.in_channels == D.config.channels(32) + 2
    assert block.conv1.in_channels == D.config.channels(16) + 2
    # Only the coordinate channels drive this conv: output varies over space although input is constant.
    with torch.no_grad():
        block.conv0.weight.zero_()
        block.conv0.bias.zero_()
        block.conv0.weight[:, -2:, 1, 1] = 1.0  # x + y
    y = block.conv0(pd._with_coords(torch.zeros(1, D.config.channels(32), 8, 8)))
    assert torch.allclose(y[0, 0, 0, 0], torch.tensor(-2.0)) and torch.allclose(y[0, 0, -1, -1], torch.tensor(2.0))
    assert torch.allclose(y[0, 0, 0, -1], torch.tensor(0.0), atol=1e-6)  # x = 1 at the right, y = -1 at the top


# --- dcgan ------------------------------------------------------------------------------------

def test_dcgan_layers_are_spectrally_normalised() -> None:
    D = build("dcgan")
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4  # 32 -> 16 -> 8 -> 4, then the 4x4 logit conv
    assert [c.out_channels for c in convs] == [8, 16, 32, 1]
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in D.modules()) == 2
    with torch.no_grad():
        for conv in convs:
            conv.parametrizations.weight.original.mul_(5.0)  # far from unit norm
    D.train()
    for _ in range(20):  # one power iteration per forward in train mode
        D(images())
    D.eval()
    for conv in convs:
        raw = torch.linalg.matrix_norm(conv.parametrizations.weight.original.flatten(1), ord=2)
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert raw > 1.5
        assert abs(sigma.item() - 1.0) < 0.02


def test_dcgan_width_cap() -> None:
    D = build("dcgan", ndf=16, channel_max=24)
    assert [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 24, 24, 1]


# --- config -----------------------------------------------------------------------------------

def test_config_round_trip_and_unknown_keys() -> None:
    cfg = tiny("coordconv", pose_dim=2, latent_dim=256, mbstd_group_size=None, min_resolution=16)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert PipelineDiscriminatorConfig.from_dict(data) == cfg
    assert PipelineDiscriminatorConfig.from_dict({}) == PipelineDiscriminatorConfig()
    with pytest.raises(ValueError, match="unknown pipeline discriminator config keys: bogus, zeta"):
        PipelineDiscriminatorConfig.from_dict({**data, "zeta": 1, "bogus": 2})


def test_config_defaults() -> None:
    cfg = PipelineDiscriminatorConfig()
    assert (cfg.kind, cfg.img_resolution, cfg.channel_base, cfg.channel_max) == ("resnet", 256, 32768, 512)
    assert (cfg.patch_fourier_dim, cfg.patch_fourier_scale, cfg.patch_mapping_dim) == (256, 1000.0, 512)
    assert cfg.mbstd_group_size == 4 and cfg.ndf == 64 and not cfg.progressive


def test_every_config_field_has_a_docstring() -> None:
    tree = ast.parse(inspect.getsource(pd))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PipelineDiscriminatorConfig")
    documented = set()
    for stmt, nxt in zip(cls.body, cls.body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                and isinstance(nxt.value.value, str) and nxt.value.value.strip():
            documented.add(stmt.target.id)
    assert documented == {f.name for f in dataclasses.fields(PipelineDiscriminatorConfig)}


@pytest.mark.parametrize("overrides,message", [
    (dict(kind="stylegan"), "unknown discriminator kind 'stylegan'"),
    (dict(img_resolution=48), "img_resolution must be a power of two"),
    (dict(img_resolution=4), "img_resolution must be a power of two >= 8"),
    (dict(progressive=True, min_resolution=4), "min_resolution must be a power of two in"),
    (dict(progressive=True, min_resolution=64), "min_resolution must be a power of two in"),
    (dict(kind="dcgan", progressive=True), "'dcgan' is not progressive"),
    (dict(kind="coordconv", c_dim=3), "c_dim conditioning is for kinds"),
    (dict(kind="resnet", pose_dim=2), "pose_dim/latent_dim heads are for kind 'coordconv'"),
    (dict(kind="patch", patch_fourier_dim=7), "patch_fourier_dim must be even"),
    (dict(kind="patch", patch_fourier_scale=0.0), "patch_fourier_scale must be positive"),
    (dict(mbstd_group_size=-1), "mbstd_group_size"),
    (dict(channel_base=16), "leaves no channels"),
])
def test_build_rejects_inconsistent_configs(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_pipeline_discriminator(tiny(**{"kind": "resnet", **overrides}))


def test_build_returns_the_kind_class() -> None:
    expected = {"resnet": pd.ResNetDiscriminator, "coordconv": pd.CoordConvDiscriminator,
                "patch": pd.PatchDiscriminator, "dcgan": pd.DCGANDiscriminator}
    for kind, cls in expected.items():
        D = build(kind)
        assert type(D) is cls and D.config.kind == kind
