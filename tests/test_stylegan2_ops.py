"""StyleGAN2 building blocks: bias_act, FIR resampling, resampling convolution, modulated conv."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.stylegan2 import FullyConnectedLayer, SynthesisLayer
from ops.stylegan2 import (
    bias_act,
    conv2d_resample,
    downsample2d,
    filter2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

FIR = (1, 3, 3, 1)  # StyleGAN2's default resampling filter


# --- bias_act ---------------------------------------------------------------------------------

def test_bias_act_linear_and_lrelu_by_hand() -> None:
    x = torch.tensor([[[-2.0, 0.5]], [[3.0, -0.25]]]).reshape(2, 2, 1)  # [N=2, C=2, 1]
    b = torch.tensor([0.5, -1.0])
    # Bias runs along dim 1: channel 0 gets +0.5, channel 1 gets -1.
    shifted = torch.tensor([[[-1.5], [-0.5]], [[3.5], [-1.25]]])
    assert torch.equal(bias_act(x, b), shifted)  # linear, gain 1
    lrelu = torch.where(shifted > 0, shifted, 0.2 * shifted) * math.sqrt(2)
    assert torch.allclose(bias_act(x, b, act="lrelu"), lrelu)
    assert torch.allclose(bias_act(x, b, act="lrelu", alpha=0.1, gain=3.0),
                          torch.where(shifted > 0, shifted, 0.1 * shifted) * 3.0)
    # Clamp applies after the gain: sqrt(2) * 3.5 = 4.95 -> 2; -0.2 * 1.5 * sqrt(2) stays.
    clamped = bias_act(x, b, act="lrelu", clamp=2.0)
    assert torch.allclose(clamped, lrelu.clamp(-2.0, 2.0))
    assert clamped.max().item() == 2.0
    # Bias along another dimension.
    y = torch.zeros(2, 3)
    assert torch.equal(bias_act(y, torch.tensor([1.0, 2.0]), dim=0), torch.tensor([[1.0] * 3, [2.0] * 3]))


# --- filters ----------------------------------------------------------------------------------

def test_setup_filter() -> None:
    f = setup_filter(FIR)
    assert f.shape == (4, 4)
    assert f.sum().item() == pytest.approx(1.0)
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    raw = setup_filter(FIR, normalize=False)
    assert raw.sum().item() == pytest.approx(64.0)
    two_d = setup_filter(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.allclose(two_d, torch.tensor([[0.1, 0.2], [0.3, 0.4]]))


def _naive_upfirdn2d(
    x: np.ndarray, f: np.ndarray, up: tuple[int, int], down: tuple[int, int],
    padding: tuple[int, int, int, int], flip_filter: bool, gain: float,
) -> np.ndarray:
    """Loop reference: zero-insert, pad/crop, convolve (or correlate), keep every down-th pixel.

    x: [N, C, H, W]; f: [fh, fw]; up/down: (x, y); padding: (x0, x1, y0, y1).
    """
    n, c, h, w = x.shape
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding
    fh, fw = f.shape
    upsampled = np.zeros((n, c, h * upy, w * upx))
    for i in range(h):
        for j in range(w):
            upsampled[:, :, i * upy, j * upx] = x[:, :, i, j]
    ph, pw = h * upy + py0 + py1, w * upx + px0 + px1
    padded = np.zeros((n, c, ph, pw))
    for i in range(h * upy):
        for j in range(w * upx):
            if 0 <= i + py0 < ph and 0 <= j + px0 < pw:
                padded[:, :, i + py0, j + px0] = upsampled[:, :, i, j]
    taps = f * gain if flip_filter else f[::-1, ::-1] * gain  # convolution flips the filter
    out = np.zeros((n, c, ph - fh + 1, pw - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("ncab,ab->nc", padded[:, :, i : i + fh, j : j + fw], taps)
    return out[:, :, ::downy, ::downx]


CASES = [
    # up, down, padding (x0, x1, y0, y1), flip_filter, gain
    ((1, 1), (1, 1), (0, 0, 0, 0), False, 1.0),
    ((2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),
    ((1, 1), (2, 2), (1, 1, 1, 1), False, 1.0),
    ((2, 1), (1, 2), (3, 0, 1, 2), True, 2.5),
    ((3, 3), (2, 2), (1, 2, 0, 3), False, 1.0),
    ((2, 2), (1, 1), (-1, 2, 1, -2), False, 1.0),  # negative padding crops
]


@pytest.mark.parametrize("up,down,padding,flip_filter,gain", CASES)
def test_upfirdn2d_matches_naive_loop(up, down, padding, flip_filter, gain) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    f = torch.rand(3, 4, generator=g, dtype=torch.float64)  # asymmetric, so flips matter
    out = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    expected = _naive_upfirdn2d(x.numpy(), f.numpy(), up, down, padding, flip_filter, gain)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_upfirdn2d_separable_filter_equals_outer_product() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 6, 7, generator=g, dtype=torch.float64)
    taps = torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64)
    sep = upfirdn2d(x, taps, up=2, padding=(1, 2, 2, 1), gain=3.0)
    full = upfirdn2d(x, torch.outer(taps, taps), up=2, padding=(1, 2, 2, 1), gain=3.0)
    assert torch.allclose(sep, full, atol=1e-12)


def test_identity_filters_are_no_ops() -> None:
    x = torch.randn(2, 3, 7, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(upfirdn2d(x, None), x)
    assert torch.equal(upfirdn2d(x, torch.ones(1, 1)), x)
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1.0
    assert torch.equal(filter2d(x, delta), x)
    # An off-centre delta shifts the image: a true convolution with a tap at (row 0, col 1)
    # moves content up by one row.
    up_shift = torch.zeros(3, 3)
    up_shift[0, 1] = 1.0
    shifted = filter2d(x, up_shift)
    assert torch.equal(shifted[:, :, :-1], x[:, :, 1:])
    assert torch.equal(shifted[:, :, -1], torch.zeros_like(x[:, :, -1]))


def test_upsample_constant_stays_constant() -> None:
    x = torch.full((1, 2, 8, 8), 3.0)
    y = upsample2d(x, setup_filter(FIR))
    assert y.shape == (1, 2, 16, 16)
    # Each polyphase component of [1, 3, 3, 1] / 8 sums to 1/2 per axis; the up^2 gain makes it 1,
    # so the interior (1 pixel from the zero padding is enough for a 4-tap filter) is unchanged.
    assert torch.allclose(y[:, :, 1:-1, 1:-1], torch.full((1, 2, 14, 14), 3.0), atol=1e-6)
    assert y[0, 0, 0, 0].item() < 3.0  # borders see the zero padding
    down = downsample2d(torch.full((1, 1, 16, 16), 3.0), setup_filter(FIR))
    assert down.shape == (1, 1, 8, 8)
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.full((1, 1, 6, 6), 3.0), atol=1e-6)


def test_down_of_up_is_a_centred_low_pass() -> None:
    size = 32
    wx, wy = 2 * math.pi / 16, 2 * math.pi / 11
    coords = torch.arange(size, dtype=torch.float64)
    x = (torch.sin(wx * coords + 0.3)[None, :] + torch.cos(wy * coords - 1.0)[:, None]).expand(1, 1, size, size)
    f = setup_filter(FIR).double()
    y = downsample2d(upsample2d(x, f), f)
    assert y.shape == x.shape
    # Per axis, [1, 3, 3, 1] / 8 has |H(W)| = cos^3(W / 2). A sinusoid of frequency w passes the
    # upsampling filter at W = w / 2 and the downsampling one again: gain cos^6(w / 4). Its image
    # at pi - w / 2 comes back through decimation with gain sin^6(w / 4) and unknown phase. Any
    # half-pixel misalignment would instead shift the phase and cost ~w / 2 ~ 0.2 of amplitude.
    expected = torch.sin(wx * coords + 0.3)[None, :] * math.cos(wx / 4) ** 6 \
        + torch.cos(wy * coords - 1.0)[:, None] * math.cos(wy / 4) ** 6
    expected = expected.expand(1, 1, size, size)
    bound = math.sin(wx / 4) ** 6 + math.sin(wy / 4) ** 6 + 1e-12
    # The zero padding only reaches the outermost low-res pixel (two 4-tap filters at the high
    # rate span under 2 low-res pixels); 2 leaves a margin.
    border = 2
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    assert (y[inner] - expected[inner]).abs().max().item() <= bound
    assert (y[inner] - x[inner]).abs().max().item() <= 1 - math.cos(wy / 4) ** 6 + 1 - math.cos(wx / 4) ** 6 + bound


# --- conv2d_resample --------------------------------------------------------------------------

def _weight_for_torch(w: torch.Tensor, flip_weight: bool) -> torch.Tensor:
    """torch convolutions correlate; flip_weight=False asks for a true convolution."""
    return w if flip_weight else w.flip([2, 3])


@pytest.mark.parametrize("kernel,groups,flip_weight", [(3, 1, True), (3, 1, False), (3, 2, False), (1, 1, True), (1, 2, False)])
def test_conv2d_resample_up_equals_upsample_then_conv(kernel: int, groups: int, flip_weight: bool) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, kernel, kernel, generator=g, dtype=torch.float64)
    f = setup_filter(FIR).double()
    p = kernel // 2
    out = conv2d_resample(x, w, f=f, up=2, padding=p, groups=groups, flip_weight=flip_weight)
    # NVlabs' generic path: zero-insert, pad by p plus the filter's centring margin (2, 1 for a
    # 4-tap filter and up = 2), FIR with gain up^2, then a valid convolution.
    upsampled = upfirdn2d(x, f, up=2, padding=[p + 2, p + 1, p + 2, p + 1], gain=4)
    expected = F.conv2d(upsampled, _weight_for_torch(w, flip_weight), groups=groups)
    assert out.shape == expected.shape == (2, 6, 12, 12)
    assert torch.allclose(out, expected, atol=1e-10)


@pytest.mark.parametrize("kernel,groups,flip_weight", [(3, 1, True), (3, 2, False), (1, 1, True), (1, 2, False)])
def test_conv2d_resample_down_equals_conv_then_downsample(kernel: int, groups: int, flip_weight: bool) -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 12, 12, generator=g, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, kernel, kernel, generator=g, dtype=torch.float64)
    f = setup_filter(FIR).double()
    p = kernel // 2
    out = conv2d_resample(x, w, f=f, down=2, padding=p, groups=groups, flip_weight=flip_weight)
    # Generic path: pad once by p plus the margin (1, 1 for a 4-tap filter and down = 2), valid
    # convolution, then FIR filter and keep every second pixel.
    convolved = F.conv2d(F.pad(x, [p + 1] * 4), _weight_for_torch(w, flip_weight), groups=groups)
    expected = upfirdn2d(convolved, f, down=2)
    assert out.shape == expected.shape == (2, 6, 6, 6)
    assert torch.allclose(out, expected, atol=1e-10)


def test_conv2d_resample_plain_is_conv2d() -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 3, 7, 7, generator=g)
    w = torch.randn(5, 3, 3, 3, generator=g)
    assert torch.allclose(conv2d_resample(x, w, padding=1), F.conv2d(x, w, padding=1), atol=1e-6)
    assert torch.allclose(conv2d_resample(x, w, padding=1, flip_weight=False),
                          F.conv2d(x, w.flip([2, 3]), padding=1), atol=1e-6)


# --- modulated convolution --------------------------------------------------------------------

def _modconv_inputs(up: int, seed: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch, c_in, c_out, size = 3, 4, 5, 8
    out_size = size * up
    return {
        "x": torch.randn(batch, c_in, size, size, generator=g),
        "weight": torch.randn(c_out, c_in, 3, 3, generator=g),
        "styles": torch.rand(batch, c_in, generator=g) + 0.5,
        "noise": torch.randn(batch, 1, out_size, out_size, generator=g) * 0.3,
    }


@pytest.mark.parametrize("demodulate,up,with_noise", list(itertools.product([True, False], [1, 2], [True, False])))
def test_modulated_conv2d_fused_matches_unfused(demodulate: bool, up: int, with_noise: bool) -> None:
    inputs = _modconv_inputs(up)
    cotangent = torch.randn(3, 5, 8 * up, 8 * up, generator=torch.Generator().manual_seed(9))
    kwargs = dict(up=up, padding=1, resample_filter=setup_filter(FIR), demodulate=demodulate, flip_weight=(up == 1))
    results = []
    for fused in (True, False):
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        out = modulated_conv2d(leaves["x"], leaves["weight"], leaves["styles"],
                               noise=leaves["noise"] if with_noise else None, fused=fused, **kwargs)
        (out * cotangent).sum().backward()
        grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()}
        results.append((out.detach(), grads))
    (fused_out, fused_grads), (plain_out, plain_grads) = results
    assert fused_out.shape == (3, 5, 8 * up, 8 * up)
    # Same arithmetic in a different order: float32 round-off on outputs of magnitude ~10 is
    # ~1e-6; 1e-5 relative to the largest value leaves room and still catches any real change.
    scale = plain_out.abs().max().item()
    assert (fused_out - plain_out).abs().max().item() <= 1e-5 * max(scale, 1.0)
    for name in inputs:
        ref = plain_grads[name]
        tol = 1e-5 * max(ref.abs().max().item(), 1.0)
        assert (fused_grads[name] - ref).abs().max().item() <= tol, name
    if with_noise:
        assert torch.allclose(fused_grads["noise"], cotangent.sum(1, keepdim=True), atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_demodulation_gives_unit_norm_effective_weights(fused: bool) -> None:
    inputs = _modconv_inputs(1)
    batch, c_in = inputs["styles"].shape
    c_out = inputs["weight"].shape[0]
    # An impulse in input channel i at the centre of a 5x5 image reads out the effective kernel
    # for channel i (flipped, which does not change its norm) in the central 3x3 of the output.
    energy = torch.zeros(batch, c_out, dtype=torch.float64)
    for i in range(c_in):
        impulse = torch.zeros(batch, c_in, 5, 5)
        impulse[:, i, 2, 2] = 1.0
        out = modulated_conv2d(impulse, inputs["weight"], inputs["styles"], padding=1, fused=fused)
        energy += out[:, :, 1:4, 1:4].double().square().sum(dim=(2, 3))
    # ||w * s * d|| = 1 for every sample and output channel (up to the 1e-8 inside the rsqrt).
    assert torch.allclose(energy, torch.ones_like(energy), atol=1e-5)
    out = modulated_conv2d(impulse, inputs["weight"], inputs["styles"], padding=1, demodulate=False, fused=fused)
    assert (out.square().sum(dim=(2, 3)) - 1).abs().max() > 0.1  # without demodulation it is not


def test_normalize_2nd_moment() -> None:
    x = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2
    y = normalize_2nd_moment(x)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(4, 3), atol=1e-5)
    # It rescales only: the direction of every slice along dim 1 is kept.
    assert torch.allclose(F.normalize(y, dim=1), F.normalize(x, dim=1), atol=1e-6)
    z = normalize_2nd_moment(x, dim=2)
    assert torch.allclose(z.square().mean(dim=2), torch.ones(4, 7), atol=1e-5)


# --- layers -----------------------------------------------------------------------------------

def test_fully_connected_lr_multiplier() -> None:
    torch.manual_seed(0)
    in_features, out_features, lr_mul = 256, 128, 0.01
    layer = FullyConnectedLayer(in_features, out_features, activation="linear", lr_multiplier=lr_mul, bias_init=0.5)
    # Stored parameters are divided by lr_mul; the runtime gain lr_mul / sqrt(in) restores them.
    effective = layer.weight * lr_mul / math.sqrt(in_features)
    assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=0.05)
    # So the effective weight has the He-like std 1 / sqrt(in) whatever lr_mul is.
    assert effective.std().item() == pytest.approx(1 / math.sqrt(in_features), rel=0.05)
    assert torch.allclose(layer.bias * lr_mul, torch.full((out_features,), 0.5))
    x = torch.randn(3, in_features)
    expected = x @ effective.T + 0.5
    assert torch.allclose(layer(x), expected, atol=1e-5)
    # The gradient reaching the stored weight is the effective weight's gradient times
    # lr_mul / sqrt(in); Adam normalises gradient scale away, so the stored step is ~lr and the
    # effective step is lr * lr_mul / sqrt(in): that is what the multiplier is for.
    layer(x).sum().backward()
    effective_grad = torch.ones(out_features, 1) * x.sum(0, keepdim=True)  # d sum(x W^T) / dW
    assert torch.allclose(layer.weight.grad, effective_grad * lr_mul / math.sqrt(in_features), atol=1e-6)
    assert torch.allclose(layer.bias.grad, torch.full((out_features,), 3 * lr_mul))
    # Non-linear layers go through bias_act: lrelu with slope 0.2 and gain sqrt(2).
    lrelu = FullyConnectedLayer(in_features, out_features, activation="lrelu", lr_multiplier=lr_mul)
    pre = x @ (lrelu.weight * lr_mul / math.sqrt(in_features)).T
    assert torch.allclose(lrelu(x), F.leaky_relu(pre, 0.2) * math.sqrt(2), atol=1e-5)


def test_synthesis_layer_noise_modes() -> None:
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 6, w_dim=8, resolution=8)
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)  # zero at init, which would hide the noise entirely
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(2, 8)
    with torch.no_grad():
        const_a = layer(x, w, noise_mode="const")
        const_b = layer(x, w, noise_mode="const")
        random_a = layer(x, w, noise_mode="random")
        random_b = layer(x, w, noise_mode="random")
        none = layer(x, w, noise_mode="none")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(random_a, random_b)
    assert not torch.allclose(const_a, none)
    # 'const' adds the stored noise_const buffer, the same image for every sample.
    expected_diff = (layer.noise_const * 0.5).expand(2, 6, 8, 8)
    pre_const = const_a / math.sqrt(2)
    pre_none = none / math.sqrt(2)
    # Undo lrelu where both pre-activations are positive: the difference is exactly the noise.
    both_pos = (pre_const > 0) & (pre_none > 0)
    assert both_pos.float().mean() > 0.2
    assert torch.allclose((pre_const - pre_none)[both_pos], expected_diff[both_pos], atol=1e-5)
