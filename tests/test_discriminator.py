"""EG3D dual discriminator: official state-dict layout, conditioning, R1 gradients, minibatch std,
raw-image resizing and configs."""

from __future__ import annotations

import math
import time

import pytest
import torch

from models.discriminator import (
    DISCRIMINATOR_PRESETS,
    DiscriminatorConfig,
    DualDiscriminator,
    MinibatchStdLayer,
    build_discriminator,
    discriminator_preset,
)
from models.eg3d import EG3D_PRESETS, eg3d_preset
from ops.resize import filtered_resizing


def official_dual_d_layout(
    c_dim: int, img_resolution: int, channel_base: int = 32768, channel_max: int = 512,
    img_channels: int = 3, mapping_layers: int = 8,
) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes, in order, of NVlabs' DualDiscriminator with the resnet
    architecture, written out from the official class tree rather than from our modules:

    * DualDiscriminator registers b{R}..b8, mapping (c_dim > 0), b4, then a resample_filter buffer;
      a module's own tensors precede its children's in state_dict order.
    * DiscriminatorBlock: resample_filter buffer, then fromrgb (first block only), conv0, conv1, skip.
    * Conv2dLayer: weight, bias (not for skip), resample_filter [4, 4].
    * MappingNetwork(z_dim=0, w_dim=cmap_dim, num_ws=None): embed, fc0..fc7, no w_avg.
    * DiscriminatorEpilogue: mbstd (no tensors), conv, fc, out.
    """
    ch = {r: min(channel_base // r, channel_max) for r in [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]}
    cmap_dim = ch[4] if c_dim > 0 else 0
    layout: dict[str, tuple[int, ...]] = {"resample_filter": (4, 4)}

    def conv(prefix: str, cin: int, cout: int, k: int, bias: bool = True) -> None:
        layout[f"{prefix}.weight"] = (cout, cin, k, k)
        if bias:
            layout[f"{prefix}.bias"] = (cout,)
        layout[f"{prefix}.resample_filter"] = (4, 4)

    def fc(prefix: str, fin: int, fout: int) -> None:
        layout[f"{prefix}.weight"] = (fout, fin)
        layout[f"{prefix}.bias"] = (fout,)

    res = img_resolution
    while res >= 8:
        tmp, out = ch[res], ch[res // 2]
        layout[f"b{res}.resample_filter"] = (4, 4)
        if res == img_resolution:
            conv(f"b{res}.fromrgb", 2 * img_channels, tmp, 1)
        conv(f"b{res}.conv0", tmp, tmp, 3)
        conv(f"b{res}.conv1", tmp, out, 3)
        conv(f"b{res}.skip", tmp, out, 1, bias=False)
        res //= 2
    if c_dim > 0:
        fc("mapping.embed", c_dim, cmap_dim)
        for i in range(mapping_layers):
            fc(f"mapping.fc{i}", cmap_dim, cmap_dim)
    conv("b4.conv", ch[4] + 1, ch[4], 3)
    fc("b4.fc", ch[4] * 16, ch[4])
    fc("b4.out", ch[4], cmap_dim if cmap_dim else 1)
    return layout


# Total trainable parameters of the official FFHQ-512 D (c_dim=25), by hand from
# channels(r) = min(32768 // r, 512) = {512: 64, 256: 128, 128: 256, >=64: 512}:
#   b512 (fromrgb 6->64 + conv0 64->64 + conv1 64->128 + skip 64->128):      119,424
#   b256 475,520; b128 1,901,312; b64, b32, b16, b8 4,981,760 each:         22,303,872
#   b4 (conv 513->512 3x3 + fc 8192->512 + out 512->512):                 6,821,888
#   mapping (embed 25->512 + 8 x fc 512->512):                            2,114,560
FFHQ512_D_PARAMS = 31_359_744


@pytest.fixture(scope="module")
def ffhq_d() -> DualDiscriminator:
    return build_discriminator(discriminator_preset("ffhq512"))


@pytest.fixture()
def tiny_d() -> DualDiscriminator:
    torch.manual_seed(0)
    return build_discriminator(discriminator_preset("tiny"))


def tiny_inputs(n: int = 4, raw: int = 32, seed: int = 1) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    res = discriminator_preset("tiny").img_resolution
    img = {"image": torch.randn(n, 3, res, res, generator=g), "image_raw": torch.randn(n, 3, raw, raw, generator=g)}
    return img, torch.randn(n, 25, generator=g)


# --- official layout --------------------------------------------------------------------------

def test_ffhq512_state_dict_matches_official_layout(ffhq_d) -> None:
    sd = ffhq_d.state_dict()
    spot = {  # hand-written from the official FFHQ-512 D
        "resample_filter": (4, 4),
        "b512.resample_filter": (4, 4),
        "b512.fromrgb.weight": (64, 6, 1, 1),
        "b512.fromrgb.bias": (64,),
        "b512.conv0.weight": (64, 64, 3, 3),
        "b512.conv1.weight": (128, 64, 3, 3),
        "b512.conv1.resample_filter": (4, 4),
        "b512.skip.weight": (128, 64, 1, 1),
        "b256.conv0.weight": (128, 128, 3, 3),
        "b64.conv1.bias": (512,),
        "b8.conv1.weight": (512, 512, 3, 3),
        "b4.conv.weight": (512, 513, 3, 3),
        "b4.fc.weight": (512, 8192),
        "b4.out.weight": (512, 512),
        "b4.out.bias": (512,),
        "mapping.embed.weight": (512, 25),
        "mapping.fc7.weight": (512, 512),
    }
    for name, shape in spot.items():
        assert tuple(sd[name].shape) == shape, name
    for absent in ("b256.fromrgb.weight", "b512.skip.bias", "mapping.w_avg", "mapping.fc8.weight"):
        assert absent not in sd
    expected = official_dual_d_layout(25, 512)
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == list(expected.items())
    assert sum(p.numel() for p in ffhq_d.parameters()) == FFHQ512_D_PARAMS
    # Only the FIR filters are buffers.
    assert {k for k, _ in ffhq_d.named_buffers()} == {k for k in expected if k.endswith("resample_filter")}


def test_official_style_state_dict_loads_strict(ffhq_d) -> None:
    g = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=g) for k, shape in official_dual_d_layout(25, 512).items()}
    ffhq_d.load_state_dict(official, strict=True)
    assert torch.equal(ffhq_d.b4.fc.weight, official["b4.fc.weight"])
    assert torch.equal(ffhq_d.b512.conv0.resample_filter, official["b512.conv0.resample_filter"])


def test_fp16_blocks_follow_num_fp16_res(ffhq_d) -> None:
    # fp16_resolution = max(2 ** (log2(512) + 1 - 4), 8) = 64.
    assert [r for r in ffhq_d.block_resolutions if getattr(ffhq_d, f"b{r}").use_fp16] == [512, 256, 128, 64]
    assert ffhq_d.img_channels == 6


@pytest.mark.parametrize("name", ["shapenet128", "tiny"])
def test_other_presets_match_official_layout(name: str) -> None:
    cfg = discriminator_preset(name)
    D = build_discriminator(cfg)
    assert isinstance(D, DualDiscriminator) and D.kind == cfg.kind == "eg3d_dual"
    expected = official_dual_d_layout(cfg.c_dim, cfg.img_resolution, cfg.channel_base, cfg.channel_max)
    assert [(k, tuple(v.shape)) for k, v in D.state_dict().items()] == list(expected.items())


def test_unconditional_has_no_mapping() -> None:
    D = DualDiscriminator(c_dim=0, img_resolution=16, channel_base=128, channel_max=8, num_fp16_res=0, conv_clamp=None)
    sd = D.state_dict()
    assert not any(k.startswith("mapping.") for k in sd)
    assert tuple(sd["b4.out.weight"].shape) == (1, 8)
    out = D({"image": torch.randn(4, 3, 16, 16), "image_raw": torch.randn(4, 3, 8, 8)}, torch.zeros(4, 0))
    assert out.shape == (4, 1)


def test_freeze_layers_makes_buffers_under_the_same_names() -> None:
    cfg = DiscriminatorConfig.from_dict({**discriminator_preset("tiny").to_dict(), "freeze_layers": 2})
    D = build_discriminator(cfg)
    params = {k for k, _ in D.named_parameters()}
    # Layers count from the top: b64.fromrgb is layer 0, b64.conv0 layer 1.
    assert "b64.fromrgb.weight" not in params and "b64.conv0.bias" not in params
    assert "b64.conv1.weight" in params
    # Same names (frozen buffers come after resample_filter in order, as in the official layer).
    assert set(D.state_dict()) == set(build_discriminator(discriminator_preset("tiny")).state_dict())


# --- forward behaviour ------------------------------------------------------------------------

def test_output_shape_and_conditioning(tiny_d) -> None:
    img, c = tiny_inputs()
    with torch.no_grad():
        out = tiny_d(img, c)
        assert out.shape == (4, 1) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert not torch.allclose(tiny_d(img, c + 1.0), out)  # the camera label matters
        img_other_raw = {**img, "image_raw": torch.randn_like(img["image_raw"])}
        assert not torch.allclose(tiny_d(img_other_raw, c), out)  # the raw image matters
        # Raw images of any resolution are resized to the final one.
        assert tiny_d({**img, "image_raw": torch.randn(4, 3, 64, 64)}, c).shape == (4, 1)


def test_disc_c_noise_perturbs_copy_of_labels() -> None:
    torch.manual_seed(0)
    cfg = DiscriminatorConfig.from_dict({**discriminator_preset("tiny").to_dict(), "disc_c_noise": 1.0})
    D = build_discriminator(cfg)
    img, c = tiny_inputs()
    c_before = c.clone()
    with torch.no_grad():
        a, b = D(img, c), D(img, c)
    assert torch.equal(c, c_before)
    assert not torch.allclose(a, b)


def test_r1_double_backward(tiny_d) -> None:
    img, c = tiny_inputs()
    image = img["image"].requires_grad_(True)
    image_raw = img["image_raw"].requires_grad_(True)
    logits = tiny_d({"image": image, "image_raw": image_raw}, c)
    g_img, g_raw = torch.autograd.grad(logits.sum(), [image, image_raw], create_graph=True)
    assert g_img.shape == image.shape and g_raw.shape == image_raw.shape
    assert g_img.abs().sum() > 0 and g_raw.abs().sum() > 0
    penalty = g_img.square().sum(dim=[1, 2, 3]) + g_raw.square().sum(dim=[1, 2, 3])
    penalty.mean().backward()
    grads = dict(tiny_d.named_parameters())
    # The output bias shifts the features linearly, so it has no effect on input gradients.
    assert {k for k, p in grads.items() if p.grad is None} == {"b4.out.bias"}
    assert all(torch.isfinite(p.grad).all() for p in grads.values() if p.grad is not None)
    assert tiny_d.b64.conv0.weight.grad.abs().sum() > 0


def test_fp16_flags_are_ignored_on_cpu() -> None:
    torch.manual_seed(0)
    D = DualDiscriminator(c_dim=25, img_resolution=32, channel_base=256, channel_max=16, num_fp16_res=4)
    assert D.b32.use_fp16
    img = {"image": torch.randn(4, 3, 32, 32), "image_raw": torch.randn(4, 3, 16, 16)}
    c = torch.randn(4, 25)
    with torch.no_grad():
        out = D(img, c)
        assert out.dtype == torch.float32
        assert torch.equal(out, D(img, c, force_fp32=True))


def test_tiny_forward_backward_runs(tiny_d) -> None:
    img, c = tiny_inputs(n=4)
    image = img["image"].requires_grad_(True)
    t0 = time.perf_counter()
    loss = torch.nn.functional.softplus(tiny_d({**img, "image": image}, c)).mean()
    loss.backward()
    print(f"\ntiny D forward+backward, batch 4 @64: {1e3 * (time.perf_counter() - t0):.1f} ms")
    assert image.grad is not None


# --- minibatch standard deviation --------------------------------------------------------------

def test_minibatch_std_known_values() -> None:
    # Group size 2 over N=4 forms groups {0, 2} and {1, 3} (stride N / G), as the official reshape does.
    x = torch.tensor([[0.0, 1.0], [10.0, 0.0], [2.0, 5.0], [10.0, 4.0]]).reshape(4, 2, 1, 1)
    y = MinibatchStdLayer(group_size=2)(x)
    assert y.shape == (4, 3, 1, 1)
    assert torch.equal(y[:, :2], x)
    # Group {0, 2}: stds 1 and 2 -> 1.5. Group {1, 3}: stds sqrt(1e-8) = 1e-4 and 2 -> 1.00005.
    expected = torch.tensor([1.5, 1.00005, 1.5, 1.00005])
    assert torch.allclose(y[:, 2, 0, 0], expected, atol=1e-6)
    # Two feature groups: one std per channel (channel 0 and channel 1 separately).
    y2 = MinibatchStdLayer(group_size=2, num_channels=2)(x)
    assert torch.allclose(y2[:, 2, 0, 0], torch.tensor([1.0, 1e-4, 1.0, 1e-4]), atol=1e-6)
    assert torch.allclose(y2[:, 3, 0, 0], torch.full((4,), 2.0), atol=1e-6)
    # Whole batch as one group; spatial positions are averaged, the result broadcast over H, W.
    x3 = torch.randn(3, 4, 2, 2)
    y3 = MinibatchStdLayer(group_size=None)(x3)
    assert torch.allclose(y3[:, 4], ((x3.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()).expand(3, 2, 2))


def test_minibatch_std_group_clamped_to_batch_and_divisibility() -> None:
    layer = MinibatchStdLayer(group_size=4)
    x = torch.randn(2, 3, 4, 4)
    # N < group_size: G = min(4, N) = 2, a single group.
    assert torch.allclose(layer(x), MinibatchStdLayer(group_size=None)(x))
    # N = 6 is not divisible by G = 4; the official reshape fails there too.
    with pytest.raises(ValueError, match="divisible"):
        layer(torch.randn(6, 3, 4, 4))


# --- filtered_resizing -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["antialiased", "none", 0.5])
def test_filtered_resizing_identity_at_same_size(mode) -> None:
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(filtered_resizing(x, 16, filter_mode=mode), x, atol=1e-6)


@pytest.mark.parametrize("mode", ["antialiased", "classic", "none", 0.25])
@pytest.mark.parametrize("size", [8, 32])
def test_filtered_resizing_shapes(mode, size: int) -> None:
    assert filtered_resizing(torch.randn(2, 3, 16, 16), size, filter_mode=mode).shape == (2, 3, size, size)


def test_filtered_resizing_antialiased_downsample() -> None:
    const = torch.full((1, 3, 64, 64), 0.7)
    assert torch.allclose(filtered_resizing(const, 16), const[:, :, :16, :16], atol=1e-6)
    # Stripes 0110 0110 ... (mean 0.5): plain bilinear at 4x samples only the 1s (aliasing to a
    # constant 1), the antialiased resize averages them to 0.5 away from the border.
    x = torch.arange(64)
    stripes = ((x % 4 == 1) | (x % 4 == 2)).float().expand(1, 1, 64, 64)
    assert torch.allclose(filtered_resizing(stripes, 16)[..., 1:-1], torch.tensor(0.5), atol=1e-5)
    assert torch.equal(filtered_resizing(stripes, 16, filter_mode="none"), torch.ones(1, 1, 16, 16))


def test_filtered_resizing_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError):
        filtered_resizing(torch.zeros(1, 1, 4, 4), 2, filter_mode="bicubic")
    with pytest.raises(ValueError):
        filtered_resizing(torch.zeros(1, 1, 4, 4), 2, filter_mode=1.5)


# --- configuration -----------------------------------------------------------------------------

def test_config_round_trips_and_rejects_unknown_keys() -> None:
    cfg = DiscriminatorConfig(c_dim=16, img_resolution=64, cmap_dim=32, disc_c_noise=0.5, mbstd_group_size=2)
    assert DiscriminatorConfig.from_dict(cfg.to_dict()) == cfg
    # Written as the registered kind; the form without a kind (runs before registration) still reads.
    assert cfg.to_dict()["kind"] == "eg3d_dual"
    assert DiscriminatorConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "kind"}) == cfg
    with pytest.raises(ValueError, match="not an EG3D dual discriminator config"):
        DiscriminatorConfig.from_dict({**cfg.to_dict(), "kind": "resnet"})
    with pytest.raises(ValueError, match="bogus"):
        DiscriminatorConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert DiscriminatorConfig.from_official(cfg.to_official()) == cfg
    with pytest.raises(ValueError, match="mapping_kwargs.num_layers"):
        DiscriminatorConfig.from_official({**cfg.to_official(), "mapping_kwargs": {"num_layers": 2}})


def test_official_ffhq_kwargs() -> None:
    official = {  # as EG3D's train.py builds them for FFHQ-512
        "class_name": "training.dual_discriminator.DualDiscriminator", "c_dim": 25, "img_resolution": 512,
        "img_channels": 3, "channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256,
        "disc_c_noise": 0, "block_kwargs": {"freeze_layers": 0}, "mapping_kwargs": {},
        "epilogue_kwargs": {"mbstd_group_size": 4},
    }
    assert DiscriminatorConfig.from_official(official) == discriminator_preset("ffhq512")


def test_presets_cover_generator_presets() -> None:
    assert set(DISCRIMINATOR_PRESETS) == set(EG3D_PRESETS)
    for name in DISCRIMINATOR_PRESETS:
        assert discriminator_preset(name).img_resolution == eg3d_preset(name).img_resolution
    with pytest.raises(ValueError):
        discriminator_preset("nope")
