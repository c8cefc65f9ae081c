"""Pipeline discriminators (resnet, coordconv, patch, dcgan): shapes, gradients, progressive
fade-in, patch hyper-modulation, CoordConv heads, spectral norm, label conditioning, configs, the
registered kinds' facts and -tiny reductions, and configs saved before the kinds were registered."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import models.pipeline_discriminators as pd
from models.discriminator import DiscriminatorConfig, DualDiscriminator
from models.pipeline_discriminators import (
    DISCRIMINATORS,
    DiscriminatorOutput,
    PipelineDiscriminatorConfig,
    discriminator_config_from_dict,
    fade_downsample,
)
from models.registry import ComponentConfig
from ops.patch_sampling import PatchParams
from training.config import TrainConfig
from training.presets import train_preset, with_stage

RES = 32
BATCH = 4
PIPELINE_KINDS = ("resnet", "coordconv", "patch", "dcgan")
"""The pipeline discriminator kinds (every registered kind but EG3D's dual one)."""


def fields_of(kind: str) -> set[str]:
    return {f.name for f in dataclasses.fields(DISCRIMINATORS.get(kind).Config)}


def tiny(kind: str, **overrides) -> ComponentConfig:
    """A CPU-cheap config: 8-32 channels at 32x32 (the small widths the kind has; ``overrides`` as given)."""
    small = dict(img_resolution=RES, channel_base=256, channel_max=32, ndf=8, patch_fourier_dim=16, patch_mapping_dim=16)
    kw = {name: value for name, value in small.items() if name in fields_of(kind)}
    return discriminator_config_from_dict({"kind": kind, **kw, **overrides})


def build(kind: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return DISCRIMINATORS.build(tiny(kind, **overrides))


def images(res: int = RES, n: int = BATCH, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(seed))


PROGRESSIVE = {
    "resnet": dict(progressive=True),
    "coordconv": dict(),  # always progressive
    "patch": dict(progressive=True),
}


# --- every kind: shapes, dtypes, gradients ----------------------------------------------------

def test_pipeline_kinds_are_registered() -> None:
    assert set(DISCRIMINATORS.kinds()) == set(PIPELINE_KINDS) | {"eg3d_dual"}
    for kind in PIPELINE_KINDS:
        assert not DISCRIMINATORS.get(kind).dual and issubclass(DISCRIMINATORS.get(kind).Config, PipelineDiscriminatorConfig)


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
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
    c = torch.randn(BATCH, cfg.c_dim) if D.label_conditioned and cfg.c_dim else None
    patch = torch.tensor([[0.5, 0.1, 0.3]]).repeat(BATCH, 1) if D.reads_patch else None
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
    cfg = pd.PatchDiscriminator.Config(channel_base=256, channel_max=32)
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


# --- config ---------------------------------------------------------------------------------

def test_config_round_trip_and_unknown_keys() -> None:
    cfg = tiny("coordconv", pose_dim=2, latent_dim=256, mbstd_group_size=None, min_resolution=16)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["kind"] == "coordconv"
    assert discriminator_config_from_dict(data) == cfg
    assert DISCRIMINATORS.config_from_dict(data) == cfg
    assert discriminator_config_from_dict({"kind": "resnet"}) == DISCRIMINATORS.default_config("resnet")
    with pytest.raises(ValueError, match="unknown discriminator 'coordconv' config keys: bogus, zeta"):
        discriminator_config_from_dict({**data, "zeta": 1, "bogus": 2})


def test_config_defaults() -> None:
    cfg = DISCRIMINATORS.default_config("resnet")
    assert (cfg.kind, cfg.img_resolution, cfg.channel_base, cfg.channel_max) == ("resnet", 256, 32768, 512)
    patch = DISCRIMINATORS.default_config("patch")
    assert (patch.patch_fourier_dim, patch.patch_fourier_scale, patch.patch_mapping_dim) == (256, 1000.0, 512)
    assert cfg.mbstd_group_size == 4 and DISCRIMINATORS.default_config("dcgan").ndf == 64 and not cfg.progressive


def _config_classes() -> list[type]:
    """Every dataclass a registered discriminator config is made of (kind configs and their bases)."""
    seen: list[type] = []
    for kind in DISCRIMINATORS.kinds():
        for klass in DISCRIMINATORS.get(kind).Config.__mro__:
            if dataclasses.is_dataclass(klass) and klass is not ComponentConfig and klass not in seen:
                seen.append(klass)
    return seen


@pytest.mark.parametrize("klass", _config_classes(), ids=lambda k: k.__qualname__)
def test_every_config_field_has_a_docstring(klass: type) -> None:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(klass)))
    cls = tree.body[0]
    assert isinstance(cls, ast.ClassDef) and cls.name == klass.__name__
    documented = set()
    for stmt, nxt in zip(cls.body, cls.body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                and isinstance(nxt.value.value, str) and nxt.value.value.strip():
            documented.add(stmt.target.id)
    own = {stmt.target.id for stmt in cls.body if isinstance(stmt, ast.AnnAssign) and "ClassVar" not in ast.unparse(stmt)}
    assert own and documented == own


def test_each_kind_config_holds_only_its_fields() -> None:
    assert fields_of("resnet") == {"img_resolution", "img_channels", "channel_base", "channel_max", "mbstd_group_size",
                                   "min_resolution", "c_dim", "progressive"}
    assert fields_of("patch") == fields_of("resnet") | {"patch_fourier_dim", "patch_fourier_scale", "patch_mapping_dim"}
    assert fields_of("coordconv") == fields_of("resnet") - {"c_dim", "progressive"} | {"pose_dim", "latent_dim"}
    assert fields_of("dcgan") == {"img_resolution", "img_channels", "ndf", "channel_max"}


def test_facts_of_the_kinds() -> None:
    facts = ("dual", "supports_progressive", "always_progressive", "label_conditioned", "pose_head", "reads_patch")
    table = {kind: tuple(name for name in facts if getattr(DISCRIMINATORS.get(kind), name)) for kind in DISCRIMINATORS.kinds()}
    assert table == {
        "eg3d_dual": ("dual", "label_conditioned"),
        "resnet": ("supports_progressive", "label_conditioned"),
        "patch": ("supports_progressive", "label_conditioned", "reads_patch"),
        "coordconv": ("supports_progressive", "always_progressive", "pose_head"),
        "dcgan": (),
    }
    # A fact's fields are in exactly the kinds with the fact.
    for kind in DISCRIMINATORS.kinds():
        cls, names = DISCRIMINATORS.get(kind), fields_of(kind)
        assert cls.label_conditioned == ("c_dim" in names)
        assert cls.pose_head == ({"pose_dim", "latent_dim"} <= names)
        assert cls.reads_patch == ("patch_fourier_dim" in names)
        assert (cls.supports_progressive and not cls.always_progressive) == ("progressive" in names)
        assert cls.supports_progressive == ("min_resolution" in names)
    assert tiny("coordconv").is_progressive and not tiny("resnet").is_progressive
    assert tiny("resnet", progressive=True).is_progressive and not tiny("dcgan").is_progressive


def test_tiny_reductions() -> None:
    """Each kind's -tiny reduction (``training.presets`` applies it to every ``<method>-tiny``)."""
    full = {kind: DISCRIMINATORS.default_config(kind) for kind in DISCRIMINATORS.kinds()}
    small = {kind: DISCRIMINATORS.get(kind).tiny(config) for kind, config in full.items()}
    for kind in ("resnet", "patch", "coordconv"):
        assert (small[kind].channel_base, small[kind].channel_max, small[kind].min_resolution) == (256, 16, 8)
    assert (small["patch"].patch_fourier_dim, small["patch"].patch_mapping_dim) == (16, 16)
    assert (small["dcgan"].ndf, small["dcgan"].channel_max) == (8, 16)
    assert small["eg3d_dual"] == DiscriminatorConfig(img_resolution=512, channel_base=2048, channel_max=64,
                                                     num_fp16_res=0, conv_clamp=None)
    # Nothing else changes, and the input is left alone.
    assert small["resnet"].replace(channel_base=32768, channel_max=512) == full["resnet"]
    assert full["resnet"].channel_base == 32768


@pytest.mark.parametrize("overrides,message", [
    (dict(kind="stylegan"), "unknown discriminator 'stylegan'"),
    (dict(img_resolution=48), "img_resolution must be a power of two"),
    (dict(img_resolution=4), "img_resolution must be a power of two >= 8"),
    (dict(progressive=True, min_resolution=4), "min_resolution must be a power of two in"),
    (dict(progressive=True, min_resolution=64), "min_resolution must be a power of two in"),
    (dict(kind="dcgan", progressive=True), "'dcgan' config keys: progressive .*progressive is a field of resnet, patch"),
    (dict(kind="coordconv", c_dim=3), "'coordconv' config keys: c_dim .*c_dim is a field of eg3d_dual, resnet, patch"),
    (dict(kind="resnet", pose_dim=2), "'resnet' config keys: pose_dim .*pose_dim is a field of coordconv"),
    (dict(kind="patch", patch_fourier_dim=7), "patch_fourier_dim must be even"),
    (dict(kind="patch", patch_fourier_scale=0.0), "patch_fourier_scale must be positive"),
    (dict(mbstd_group_size=-1), "mbstd_group_size"),
    (dict(channel_base=16), "leaves no channels"),
])
def test_build_rejects_inconsistent_configs(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DISCRIMINATORS.build(tiny(**{"kind": "resnet", **overrides}))


def test_build_returns_the_kind_class() -> None:
    expected = {"resnet": pd.ResNetDiscriminator, "coordconv": pd.CoordConvDiscriminator,
                "patch": pd.PatchDiscriminator, "dcgan": pd.DCGANDiscriminator}
    for kind, cls in expected.items():
        D = build(kind)
        assert type(D) is cls and D.config.kind == kind and D.kind == kind
    D = DISCRIMINATORS.build(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=8, num_fp16_res=0))
    assert isinstance(D, DualDiscriminator) and D.kind == "eg3d_dual"


# --- configs saved before the kinds were registered -------------------------------------------

LEGACY = json.loads((Path(__file__).parent / "fixtures" / "legacy_discriminators.json").read_text())
"""Discriminator dicts as runs wrote them before the kinds were registered (EG3D's without a
``kind``, the lumped pipeline config with every field), and the state-dict names and shapes the
code of that time built from them (``tests/fixtures/make_legacy_discriminators.py``)."""


def test_legacy_fixture_covers_every_kind() -> None:
    kinds = {discriminator_config_from_dict(case["discriminator"]).kind for case in LEGACY.values()}
    assert kinds == set(DISCRIMINATORS.kinds())
    assert any("kind" not in case["discriminator"] for case in LEGACY.values())  # EG3D's old form


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_legacy_config_reads_and_builds_the_same_network(name: str) -> None:
    old = LEGACY[name]["discriminator"]
    config = discriminator_config_from_dict(old)
    # A saved run (training_options.json, training state) reads it the same way.
    assert TrainConfig.from_dict({"discriminator": old}).discriminator == config
    # The kind keeps every value it had; fields of other kinds are gone.
    assert {f.name: getattr(config, f.name) for f in dataclasses.fields(config)} == \
        {k: v for k, v in old.items() if k in fields_of(config.kind)}
    with torch.device("meta"):
        D = DISCRIMINATORS.build(config)
    assert [[k, list(v.shape)] for k, v in D.state_dict().items()] == LEGACY[name]["state"]
    # Written in the new form ({"kind", **the kind's fields}), which reads back to the same config.
    new = json.loads(TrainConfig(discriminator=config).to_json())["discriminator"]
    assert new == {"kind": config.kind, **dataclasses.asdict(config)}
    assert set(new) == {"kind"} | fields_of(config.kind)
    assert discriminator_config_from_dict(new) == config


@pytest.mark.parametrize("name", sorted(n for n in LEGACY if n.endswith(("-tiny", "-tiny-stage2")) or n == "tiny"))
def test_tiny_presets_keep_their_legacy_discriminators(name: str) -> None:
    """The -tiny reductions the kinds declare give exactly the discriminators the presets had."""
    config = train_preset(name.removesuffix("-stage2"))
    if name.endswith("-stage2"):
        config = with_stage(config, 2)
    assert config.discriminator == discriminator_config_from_dict(LEGACY[name]["discriminator"])


def test_legacy_reader_refuses_settings_the_lumped_config_refused() -> None:
    old = LEGACY["pigan-tiny"]["discriminator"]
    assert old["kind"] == "coordconv" and "ndf" in old
    with pytest.raises(ValueError, match="sets c_dim=3 on a 'coordconv' discriminator"):
        discriminator_config_from_dict({**old, "c_dim": 3})
    # coordconv was always progressive: its old 'progressive' flag changed nothing.
    assert discriminator_config_from_dict({**old, "progressive": True}) == discriminator_config_from_dict(old)
    dcgan = LEGACY["graf-tiny"]["discriminator"]
    with pytest.raises(ValueError, match="sets progressive=True on a 'dcgan'"):
        discriminator_config_from_dict({**dcgan, "progressive": True})
    # EG3D's config never had the lumped fields.
    eg3d = LEGACY["tiny"]["discriminator"]
    with pytest.raises(ValueError, match="unknown discriminator 'eg3d_dual' config keys: ndf"):
        discriminator_config_from_dict({**eg3d, "kind": "eg3d_dual", "ndf": 8})
    with pytest.raises(ValueError, match="bogus"):
        discriminator_config_from_dict({**eg3d, "bogus": 1})
