"""SIREN-FiLM ops (ops/siren.py: encoding values, init statistics, FiLM arithmetic) and the pi-GAN
layers built from them (models/siren.py: FiLM-SIREN layer, mapper, decoder)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.siren import FiLMMapping, FiLMSiren, SirenFiLMDecoder
from ops.siren import (
    film_frequencies,
    positional_encoding,
    siren_uniform_bound,
)

# --- positional encoding ---------------------------------------------------------------------

def test_positional_encoding_sizes():
    x = torch.rand(2, 5, 3)
    assert positional_encoding(x, 10).shape == (2, 5, 63)  # VolumeGAN PE(10) of xyz, methods.md §3.2
    assert positional_encoding(x, 10, include_input=False).shape == (2, 5, 60)
    assert positional_encoding(x, 4).shape == (2, 5, 27)
    torch.testing.assert_close(positional_encoding(x, 0), x)
    torch.testing.assert_close(positional_encoding(x, 10)[..., :3], x)


def test_positional_encoding_values_no_pi():
    h = math.pi / 2
    x = torch.tensor([[0.0, h]], dtype=torch.float64)
    # Layout [x | sin(x) | cos(x) | sin(2x) | cos(2x)], each block D = 2 wide.
    expected = torch.tensor([[0.0, h, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(positional_encoding(x, 2), expected, atol=1e-12, rtol=0)

    # x = 1: frequencies are 2^k (not 2^k * pi) for k = 0..9.
    enc = positional_encoding(torch.ones(1, dtype=torch.float64), 10, include_input=False)
    want = [f(2.0**k) for k in range(10) for f in (math.sin, math.cos)]
    torch.testing.assert_close(enc, torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=0)


# --- initialisation statistics ---------------------------------------------------------------

def _check_uniform(w: torch.Tensor, bound: float) -> None:
    """Samples look like U(-bound, bound): within bounds, reach them, std = bound/sqrt(3)."""
    n = w.numel()
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    # Sampling error of the std of a uniform: std * sqrt((kurtosis - 1) / (4 n)), kurtosis 1.8.
    std = bound / math.sqrt(3)
    assert abs(w.std().item() - std) < 6 * std * math.sqrt(0.8 / (4 * n))
    assert abs(w.mean().item()) < 6 * std / math.sqrt(n)


def test_siren_init_statistics():
    torch.manual_seed(0)
    n = 1024
    hidden = FiLMSiren(n, n)
    bound = math.sqrt(6 / n) / 25  # frequency_init(25), methods.md §3.3
    assert siren_uniform_bound(n) == pytest.approx(bound)
    _check_uniform(hidden.linear.weight.detach(), bound)

    first = FiLMSiren(n, n, is_first=True)
    _check_uniform(first.linear.weight.detach(), 1 / n)
    assert first.linear.weight.abs().max().item() < bound  # 1/1024 is well below sqrt(6/1024)/25

    # Bias: PyTorch Linear default U(-1/sqrt(n), 1/sqrt(n)), untouched by the SIREN init.
    b = hidden.linear.bias.detach()
    assert b.abs().max().item() <= 1 / math.sqrt(n)
    assert b.abs().max().item() > 0.95 / math.sqrt(n)


def test_decoder_layer_inits():
    torch.manual_seed(1)
    dec = SirenFiLMDecoder()
    assert dec.layers[0].linear.weight.abs().max().item() <= 1 / 3
    assert dec.layers[0].linear.weight.abs().max().item() > 0.9 / 3
    for layer in [*(l.linear for l in dec.layers[1:]), dec.sigma_head, dec.color_film.linear, dec.rgb_head]:
        bound = math.sqrt(6 / layer.in_features) / 25
        w = layer.weight.detach()
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.9 * bound
    assert dec.color_film.linear.in_features == 3 + 256


# --- activation statistics through depth -----------------------------------------------------

def test_activation_distribution_is_stable_through_depth():
    """With nominal FiLM (raw f = 0 -> freq 30, phase 0) the sine outputs keep std ~ 0.7.

    Prediction for hidden layers: pre = 30 (W x + b) has variance
    30^2 (n Var(W) E[x^2] + Var(b)) = 2 (30/25)^2 E[x^2] + 30^2 / (3 n); for a zero-mean Gaussian
    pre-activation of std s, std(sin) = sqrt((1 - exp(-2 s^2)) / 2), about 0.70 at s ~ 1.6.
    """
    torch.manual_seed(0)
    width, depth = 256, 6
    freq = film_frequencies(torch.zeros(1, width))
    assert torch.all(freq == 30)
    phase = torch.zeros(1, width)
    x = torch.rand(1, 4096, 3) * 2 - 1
    for i in range(depth):
        layer = FiLMSiren(x.shape[-1], width, is_first=(i == 0))
        with torch.no_grad():
            pre = freq.unsqueeze(1) * layer.linear(x)
            if i > 0:
                predicted = math.sqrt(2 * (30 / 25) ** 2 * x.pow(2).mean().item() + 30**2 / (3 * width))
                assert pre.std().item() == pytest.approx(predicted, rel=0.15), i
            x = layer(x, freq, phase)
        assert 0.5 <= x.std().item() <= 0.8, (i, x.std().item())
        assert abs(x.mean().item()) < 0.1, (i, x.mean().item())


# --- FiLM layer arithmetic -------------------------------------------------------------------

def test_film_layer_matches_formula():
    torch.manual_seed(0)
    layer = FiLMSiren(5, 7)
    x = torch.randn(2, 4, 5)
    freq = film_frequencies(torch.randn(2, 7))
    phase = torch.randn(2, 7)
    W, b = layer.linear.weight, layer.linear.bias
    expected = torch.sin(freq[:, None, :] * (x @ W.T + b) + phase[:, None, :])
    torch.testing.assert_close(layer(x, freq, phase), expected, rtol=0, atol=0)


def test_film_frequencies():
    raw = torch.tensor([-2.0, 0.0, 1.0])
    torch.testing.assert_close(film_frequencies(raw), torch.tensor([0.0, 30.0, 45.0]))


def test_film_layer_gradcheck():
    torch.manual_seed(0)
    layer = FiLMSiren(3, 4).double()
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    # Small freq keeps the sine's finite-difference error low; gradcheck still covers every input.
    freq = torch.rand(2, 4, dtype=torch.float64, requires_grad=True) + 0.5
    phase = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x, freq, phase))

    out = layer(x, freq, phase).sum()
    gf, gp = torch.autograd.grad(out, (freq, phase))
    assert gf.abs().sum() > 0 and gp.abs().sum() > 0


# --- mapping network -------------------------------------------------------------------------

def test_mapping_shapes_and_split():
    torch.manual_seed(0)
    m = FiLMMapping()
    z = torch.randn(3, 256)
    freqs, phases = m(z)
    assert freqs.shape == (3, 9, 256) and phases.shape == (3, 9, 256)
    assert len(m.hidden) == 3 and m.out.out_features == 9 * 256 * 2

    # Explicit forward: LReLU 0.2 hidden layers, first half = frequencies, second = phases.
    h = z
    for layer in m.hidden:
        h = F.leaky_relu(h @ layer.weight.T + layer.bias, 0.2)
    flat = h @ m.out.weight.T + m.out.bias
    torch.testing.assert_close(freqs.reshape(3, -1), flat[:, : 9 * 256])
    torch.testing.assert_close(phases.reshape(3, -1), flat[:, 9 * 256 :])


def test_mapping_last_layer_scaled_by_quarter():
    torch.manual_seed(5)
    scaled = FiLMMapping()
    torch.manual_seed(5)
    unscaled = FiLMMapping(last_scale=1.0)
    torch.testing.assert_close(scaled.out.weight, 0.25 * unscaled.out.weight, rtol=0, atol=0)
    torch.testing.assert_close(scaled.out.bias, unscaled.out.bias, rtol=0, atol=0)
    for a, b in zip(scaled.hidden, unscaled.hidden):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    # Kaiming-normal fan-in with LReLU(0.2) gain before the 0.25: std = 0.25 * sqrt(2 / 1.04) / sqrt(256).
    want = 0.25 * math.sqrt(2 / (1 + 0.2**2)) / 16
    assert scaled.out.weight.std().item() == pytest.approx(want, rel=0.01)


# --- decoder ---------------------------------------------------------------------------------

def _decoder_inputs(seed: int, n: int = 2, p: int = 64):
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(n, p, 3, generator=g) - 0.5) * 0.24  # inside pi-GAN's 0.24 box
    directions = F.normalize(torch.randn(n, p, 3, generator=g), dim=-1)
    freqs = torch.randn(n, 9, 256, generator=g) * 0.1
    phases = torch.randn(n, 9, 256, generator=g) * 0.1
    return points, directions, freqs, phases


def test_decoder_shapes_ranges_determinism():
    torch.manual_seed(0)
    dec = SirenFiLMDecoder()
    inputs = _decoder_inputs(0)
    out = dec(*inputs)
    assert out["sigma"].shape == (2, 64, 1) and out["rgb"].shape == (2, 64, 3)
    assert torch.isfinite(out["sigma"]).all()
    assert out["sigma"].min() < 0 < out["sigma"].max()  # raw density: ReLU lives in the renderer
    assert (out["rgb"] > 0).all() and (out["rgb"] < 1).all()

    again = dec(*inputs)
    torch.testing.assert_close(again["sigma"], out["sigma"], rtol=0, atol=0)
    torch.testing.assert_close(again["rgb"], out["rgb"], rtol=0, atol=0)
    torch.manual_seed(0)
    twin = SirenFiLMDecoder()
    torch.testing.assert_close(twin(*inputs)["rgb"], out["rgb"], rtol=0, atol=0)

    with pytest.raises(ValueError):
        dec(inputs[0], inputs[1], inputs[2][:, :8], inputs[3][:, :8])


def test_decoder_matches_explicit_composition():
    """x 2/0.24 scaling, 15f + 30, slice order and [direction, h] concatenation."""
    torch.manual_seed(0)
    dec = SirenFiLMDecoder(width=16, depth=3)
    g = torch.Generator().manual_seed(3)
    points = torch.rand(2, 5, 3, generator=g) * 0.24 - 0.12
    dirs = F.normalize(torch.randn(2, 5, 3, generator=g), dim=-1)
    freqs = torch.randn(2, 4, 16, generator=g)
    phases = torch.randn(2, 4, 16, generator=g)

    def film(lin, x, f, p):
        return torch.sin((15 * f + 30)[:, None] * (x @ lin.weight.T + lin.bias) + p[:, None])

    h = points * (2 / 0.24)
    for i, layer in enumerate(dec.layers):
        h = film(layer.linear, h, freqs[:, i], phases[:, i])
    sigma = h @ dec.sigma_head.weight.T + dec.sigma_head.bias
    c = film(dec.color_film.linear, torch.cat([dirs, h], -1), freqs[:, 3], phases[:, 3])
    rgb = torch.sigmoid(c @ dec.rgb_head.weight.T + dec.rgb_head.bias)

    out = dec(points, dirs, freqs, phases)
    torch.testing.assert_close(out["sigma"], sigma)
    torch.testing.assert_close(out["rgb"], rgb)


def test_direction_only_affects_colour():
    torch.manual_seed(0)
    dec = SirenFiLMDecoder()
    points, dirs, freqs, phases = _decoder_inputs(1)
    a = dec(points, dirs, freqs, phases)
    b = dec(points, -dirs, freqs, phases)
    torch.testing.assert_close(a["sigma"], b["sigma"], rtol=0, atol=0)
    assert (a["rgb"] - b["rgb"]).abs().max() > 1e-4
