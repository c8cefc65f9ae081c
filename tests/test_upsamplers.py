"""2D upsamplers of the non-EG3D presets: StyleGAN2-block upsampler (incl. StyleNeRF nn_cat) and GIRAFFE's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.stylegan2 import SynthesisBlock
from models.upsamplers import (
    GiraffeNeuralRenderer,
    NNCatSynthesisLayer,
    NNCatUpsample,
    StyleGANUpsampler,
    quad_average_upsample,
)

W_DIM = 16
TINY = dict(channel_base=256, channel_max=32)  # channels 32 at 8 px, 16 at 16 px, 8 at 32 px


def make_upsampler(in_res=8, out_res=32, in_channels=12, seed=0, **kwargs) -> StyleGANUpsampler:
    torch.manual_seed(seed)
    up = StyleGANUpsampler(in_channels, in_res, out_res, W_DIM, **{**TINY, **kwargs})
    with torch.no_grad():  # noise strengths start at 0; make noise visible so noise modes are testable
        for name, p in up.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return up


def inputs(up: StyleGANUpsampler, batch=2, seed=1, num_ws=None):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, up.in_channels, up.in_resolution, up.in_resolution, generator=g)
    ws = torch.randn(batch, up.num_ws if num_ws is None else num_ws, W_DIM, generator=g)
    return features, ws


# --- StyleGANUpsampler -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["stylegan", "nn_cat"])
@pytest.mark.parametrize("in_res,out_res", [(8, 8), (8, 16), (8, 32), (4, 32), (16, 16)])
def test_styleganupsampler_output_shape_and_dtype(in_res, out_res, mode):
    up = make_upsampler(in_res, out_res, upsample_mode=mode)
    features, ws = inputs(up)
    img = up(features, ws)
    assert img.shape == (2, 3, out_res, out_res)
    assert img.dtype == torch.float32
    assert torch.isfinite(img).all()


def test_styleganupsampler_block_layout_and_num_ws():
    up = make_upsampler(8, 32)
    assert up.block_resolutions == [8, 16, 32]
    assert up.channels == {8: 32, 16: 16, 32: 8}  # min(channel_base // q, channel_max)
    first, last = up.b8, up.b32
    assert not first.upsample and first.conv0.up == 1 and first.conv0.in_channels == 12
    assert up.b16.upsample and up.b16.conv0.up == 2 and up.b16.conv0.in_channels == 32
    assert last.torgb.out_channels == 3 and last.is_last
    assert up.num_ws == 2 * 3 + 1  # two convs per block + the last toRGB
    assert make_upsampler(8, 8).num_ws == 3
    # VolumeGAN's 32 -> 256 and StyleSDF's 64 -> 1024 default-sized layouts build too.
    assert StyleGANUpsampler(512, 32, 256, 512).num_ws == 9
    assert StyleGANUpsampler(256, 64, 1024, 256, channel_base=65536).channels[1024] == 64


def test_styleganupsampler_consumes_exactly_num_ws():
    up = make_upsampler(8, 32)
    features, ws = inputs(up, num_ws=up.num_ws + 2)
    ref = up(features, ws[:, : up.num_ws])
    # Extra trailing ws are ignored ...
    torch.testing.assert_close(up(features, ws), ref)
    # ... while each of the first num_ws changes the image, including the final toRGB's w.
    for idx in range(up.num_ws):
        bumped = ws[:, : up.num_ws].clone()
        bumped[:, idx] += 1.0
        assert not torch.allclose(up(features, bumped), ref), f"w index {idx} unused"
    with pytest.raises(ValueError, match=f"needs {up.num_ws} ws"):
        up(features, ws[:, : up.num_ws - 1])


def test_styleganupsampler_shares_w_between_torgb_and_next_conv0():
    up = make_upsampler(8, 16)
    features, ws = inputs(up)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = args[0].clone()  # returns None: the layer's output is left alone
        return hook

    up.b8.torgb.affine.register_forward_hook(record("torgb8"))
    up.b16.conv0.affine.register_forward_hook(record("conv0_16"))
    up(features, ws)
    torch.testing.assert_close(seen["torgb8"], ws[:, 2])
    torch.testing.assert_close(seen["conv0_16"], ws[:, 2])


def test_styleganupsampler_noise_modes():
    up = make_upsampler(8, 16)
    features, ws = inputs(up)
    a, b = up(features, ws, noise_mode="const"), up(features, ws, noise_mode="const")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert up(features, ws).equal(a)  # 'const' is the default
    r1, r2 = up(features, ws, noise_mode="random"), up(features, ws, noise_mode="random")
    assert not torch.allclose(r1, r2)
    assert not torch.allclose(up(features, ws, noise_mode="none"), a)


def test_styleganupsampler_depends_on_features():
    up = make_upsampler(8, 16)
    features, ws = inputs(up)
    assert not torch.allclose(up(features, ws), up(features + 0.5, ws))


def test_nn_cat_mode_differs_from_stylegan_and_uses_nn_cat_layers():
    sg = make_upsampler(8, 32, upsample_mode="stylegan", seed=3)
    nc = make_upsampler(8, 32, upsample_mode="nn_cat", seed=3)
    assert sg.num_ws == nc.num_ws
    assert not isinstance(nc.b8.conv0, NNCatSynthesisLayer)  # the non-upsampling first block is unchanged
    for res in (16, 32):
        layer = getattr(nc, f"b{res}").conv0
        assert isinstance(layer, NNCatSynthesisLayer) and layer.up == 1 and layer.resolution == res
        assert isinstance(layer.upsampler, NNCatUpsample)
    # Copy every shared parameter so the only difference left is the upsampling path.
    nc_state = nc.state_dict()
    nc_state.update({k: v for k, v in sg.state_dict().items() if k in nc_state})
    nc.load_state_dict(nc_state)
    features, ws = inputs(sg)
    out_sg, out_nc = sg(features, ws), nc(features, ws)
    assert out_nc.shape == out_sg.shape == (2, 3, 32, 32)
    assert not torch.allclose(out_sg, out_nc, atol=1e-3)


def test_quad_average_upsample_values():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    y = quad_average_upsample(x)
    assert y.shape == (1, 1, 6, 6)
    # Output (1, 1) lies in the quad of rows 0..1, cols 0..1; (2, 3) in rows 0..1, cols 1..2; (3, 3) in rows 1..2, cols 1..2.
    assert y[0, 0, 1, 1] == x[0, 0, :2, :2].mean()
    assert y[0, 0, 2, 3] == x[0, 0, :2, 1:].mean()
    assert y[0, 0, 3, 3] == x[0, 0, 1:, 1:].mean()
    # Corners replicate the border, and a constant image stays constant.
    assert y[0, 0, 0, 0] == x[0, 0, 0, 0]
    torch.testing.assert_close(quad_average_upsample(torch.full((2, 3, 4, 4), 2.5)), torch.full((2, 3, 8, 8), 2.5))
    # Channels do not mix (pixel_shuffle order is respected).
    two = torch.stack([x[0, 0], -x[0, 0]]).unsqueeze(0)
    torch.testing.assert_close(quad_average_upsample(two)[:, 1], -y[:, 0])


def test_nn_cat_upsample_shape_and_grad():
    torch.manual_seed(0)
    layer = NNCatUpsample(5)
    x = torch.randn(2, 5, 6, 6, requires_grad=True)
    y = layer(x)
    assert y.shape == (2, 5, 12, 12)
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0 and layer.adapter.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["stylegan", "nn_cat"])
def test_styleganupsampler_gradients_reach_features_and_ws(mode):
    up = make_upsampler(8, 32, upsample_mode=mode)
    features, ws = inputs(up)
    features.requires_grad_(True)
    ws.requires_grad_(True)
    up(features, ws).square().mean().backward()
    assert features.grad.abs().sum() > 0
    per_w = ws.grad.abs().sum(dim=(0, 2))
    assert (per_w > 0).all(), per_w
    assert all(p.grad is not None for n, p in up.named_parameters() if "noise_strength" not in n)


def test_styleganupsampler_matches_manual_synthesis_blocks():
    up = make_upsampler(8, 16)
    features, ws = inputs(up)
    x, img = up.b8(features, None, ws[:, 0:3], noise_mode="const")
    x, img = up.b16(x, img, ws[:, 2:5], noise_mode="const")
    torch.testing.assert_close(up(features, ws), img)
    assert isinstance(up.b16, SynthesisBlock)


@pytest.mark.parametrize("in_res,out_res", [(8, 4), (8, 24), (0, 8), (6, 18), (8, 8.0)])
def test_styleganupsampler_bad_resolutions(in_res, out_res):
    with pytest.raises(ValueError, match=f"in_resolution={in_res}.*out_resolution={out_res}"):
        StyleGANUpsampler(8, in_res, out_res, W_DIM, **TINY)


def test_styleganupsampler_bad_inputs():
    with pytest.raises(ValueError, match="upsample_mode"):
        StyleGANUpsampler(8, 8, 16, W_DIM, upsample_mode="bilinear", **TINY)
    up = make_upsampler(8, 16)
    features, ws = inputs(up)
    with pytest.raises(ValueError, match="features"):
        up(features[:, :-1], ws)
    with pytest.raises(ValueError, match="features"):
        up(features[..., :4, :4], ws)
    with pytest.raises(ValueError, match="ws"):
        up(features, ws[..., :-1])


# --- GiraffeNeuralRenderer ---------------------------------------------------------------------

def make_giraffe(in_channels=16, in_res=4, out_res=32, min_channels=4, seed=0, **kwargs) -> GiraffeNeuralRenderer:
    torch.manual_seed(seed)
    return GiraffeNeuralRenderer(in_channels, in_res, out_res, min_channels=min_channels, **kwargs)


@pytest.mark.parametrize("in_res,out_res", [(4, 4), (4, 8), (4, 32), (8, 32)])
def test_giraffe_shape_and_range(in_res, out_res):
    g = make_giraffe(in_res=in_res, out_res=out_res)
    features = 10 * torch.randn(3, 16, in_res, in_res)  # large inputs push the sigmoid to its ends
    img = g(features)
    assert img.shape == (3, 3, out_res, out_res)
    assert img.min() >= -1 and img.max() <= 1
    assert img.min() < 0 < img.max()  # uses both halves of the range, not [0, 1]


def test_giraffe_channel_halving_floors_at_min_channels():
    g = make_giraffe(in_channels=16, in_res=4, out_res=64, min_channels=4)  # 4 blocks
    assert g.block_channels == [8, 4, 4, 4]
    assert [b.out_channels for b in g.blocks] == [8, 4, 4, 4]
    assert [b.in_channels for b in g.blocks] == [16, 8, 4, 4]
    assert [c.in_channels for c in g.to_rgb] == [16, 8, 4, 4, 4]
    assert all(b.kernel_size == (3, 3) for b in g.blocks) and all(c.kernel_size == (3, 3) for c in g.to_rgb)
    assert isinstance(g.conv_in, torch.nn.Identity)
    # GIRAFFE FFHQ-256 defaults: 256 ch at 16 px, 4 blocks, 128 -> 64 -> 32 -> 32.
    assert GiraffeNeuralRenderer().block_channels == [128, 64, 32, 32]


def test_giraffe_feature_channels_adds_1x1_conv_in():
    g = make_giraffe(in_channels=16, feature_channels=32, in_res=4, out_res=16, min_channels=4)
    assert isinstance(g.conv_in, torch.nn.Conv2d) and g.conv_in.kernel_size == (1, 1)
    assert (g.conv_in.in_channels, g.conv_in.out_channels) == (16, 32)
    assert g.block_channels == [16, 8]
    assert g(torch.randn(1, 16, 4, 4)).shape == (1, 3, 16, 16)


def test_giraffe_rgb_skip_sums_every_scale():
    g = make_giraffe(in_res=4, out_res=32)  # 3 blocks -> 4 RGB convs
    biases = [0.3, -0.7, 0.25, 0.1]
    with torch.no_grad():
        for conv, b in zip(g.to_rgb, biases):
            conv.weight.zero_()
            conv.bias.fill_(b)
    img = g(torch.randn(2, 16, 4, 4))
    # Bilinear upsampling keeps constants, so the logits are exactly the sum of all scales' biases.
    expected = 2 * torch.sigmoid(torch.tensor(sum(biases))) - 1
    torch.testing.assert_close(img, expected.expand_as(img))


def test_giraffe_last_rgb_zeroed_equals_upsampled_earlier_skips():
    g = make_giraffe(in_res=4, out_res=32)
    features = torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        g.to_rgb[-1].weight.zero_()
        g.to_rgb[-1].bias.zero_()
        # Recompute the earlier scales by hand: nearest x2 + 3x3 conv + LReLU per block, RGB at each scale.
        x = features
        skip = g.to_rgb[0](x)
        for i, block in enumerate(g.blocks[:-1]):
            x = F.leaky_relu(block(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2)
            skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False) + g.to_rgb[i + 1](x)
        expected = 2 * torch.sigmoid(F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)) - 1
        torch.testing.assert_close(g(features), expected)


def test_giraffe_every_rgb_conv_contributes_and_gradients_flow():
    g = make_giraffe(in_res=4, out_res=16)
    features = torch.randn(2, 16, 4, 4, requires_grad=True)
    g(features).square().mean().backward()
    assert features.grad.abs().sum() > 0
    for conv in list(g.to_rgb) + list(g.blocks):
        assert conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("in_res,out_res", [(16, 8), (16, 48), (0, 16), (12, 36)])
def test_giraffe_bad_resolutions(in_res, out_res):
    with pytest.raises(ValueError, match=f"in_resolution={in_res}.*out_resolution={out_res}"):
        GiraffeNeuralRenderer(16, in_res, out_res)


def test_giraffe_rejects_mismatched_features():
    g = make_giraffe(in_res=4, out_res=8)
    with pytest.raises(ValueError, match="features"):
        g(torch.randn(1, 8, 4, 4))


# --- progressive growing ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["stylegan", "nn_cat"])
def test_growing_stops_at_a_block_and_fades_its_rgb_in(mode):
    """max_resolution=R is the full upsampler when R is the last block; at an inner block the image
    is that block's skip sum (what a smaller upsampler with the same weights would give); alpha
    blends the newest block's skip image with the upsampled one below it, linearly."""
    from ops.stylegan2 import upsample2d

    up = make_upsampler(upsample_mode=mode)
    features, ws = inputs(up)
    full = up(features, ws)
    torch.testing.assert_close(up(features, ws, max_resolution=32), full, rtol=0, atol=0)
    at16 = up(features, ws, max_resolution=16)
    assert at16.shape[-1] == 16
    below = upsample2d(at16, up.b32.resample_filter)
    torch.testing.assert_close(up(features, ws, max_resolution=32, alpha=0.0), below, rtol=0, atol=1e-6)
    half = up(features, ws, max_resolution=32, alpha=0.5)
    torch.testing.assert_close(half, 0.5 * (full + below), rtol=0, atol=1e-5)
    # The first block has nothing below it: alpha does not apply.
    torch.testing.assert_close(up(features, ws, max_resolution=8, alpha=0.3), up(features, ws, max_resolution=8))
    with pytest.raises(ValueError, match="max_resolution 12 is not one of the blocks"):
        up(features, ws, max_resolution=12)


# --- VolumeGAN's official synthesis -------------------------------------------------------------------

def test_volumegan_synthesis_layout_and_growth() -> None:
    from models.upsamplers import VolumeGANSynthesis

    torch.manual_seed(0)
    config = VolumeGANSynthesis.Config(channel_base=256, channel_max=512, conv_clamp=256.0)
    up = VolumeGANSynthesis(config, channels=16, in_resolution=16, out_resolution=64, w_dim=32)
    assert up.num_ws == 6  # index 0 unused, layer1..4, outputs read 3 and 5
    names = {n for n, _ in up.named_parameters()}
    assert {"layer1.weight", "layer4.affine.weight", "output2.bias"} <= names and "layer5.weight" not in names
    assert tuple(up.layer1.weight.shape) == (8, 16, 1, 1) and tuple(up.layer3.weight.shape) == (4, 8, 1, 1)
    features, ws = torch.randn(2, 16, 16, 16), torch.randn(2, 6, 32)
    image, raw = up.upsample(features, ws)
    assert image.shape == (2, 3, 64, 64) and torch.equal(raw, features[:, :3])
    assert torch.equal(up(features, ws, max_resolution=16), features[:, :3])  # no layer at the rendering size
    half = up(features, ws, max_resolution=32)
    assert half.shape == (2, 3, 32, 32)
    assert torch.equal(up(features, ws, max_resolution=64, alpha=1.0), image)
    w0 = ws.clone()
    w0[:, 0] = 0  # the first ws is unused
    assert torch.equal(up(features, w0), image)
    with pytest.raises(ValueError, match="feature channels"):
        VolumeGANSynthesis(config, channels=12, in_resolution=16, out_resolution=64, w_dim=32)
