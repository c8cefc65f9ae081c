"""StyleGAN2 functional building blocks (plain-torch references).

These reproduce the arithmetic of NVlabs' ``torch_utils/ops`` reference paths (bias_act,
upfirdn2d, conv2d_resample) and ``modulated_conv2d``, which EG3D runs on the CPU. Fused CUDA
kernels, when added, must be tested against these for values and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# --- bias + activation ------------------------------------------------------------------------

class Activation(NamedTuple):
    func: Callable[[torch.Tensor, float], torch.Tensor]
    default_alpha: float
    default_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}
"""Activation functions with their default slope (alpha) and variance-preserving gain."""


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``: bias broadcast along ``dim``, then activation, gain and clamp."""
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.default_alpha)
    gain = float(gain if gain is not None else spec.default_gain)
    clamp = float(clamp if clamp is not None else -1)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# --- FIR resampling ---------------------------------------------------------------------------

DEFAULT_RESAMPLE_FILTER = (1, 3, 3, 1)
"""StyleGAN2's default low-pass taps for 2x resampling (binomial, separable)."""


def setup_filter(f: Sequence[float] | np.ndarray | torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Filter tensor for :func:`upfirdn2d`: 1-D taps become their separable 2-D outer product."""
    f = torch.as_tensor(np.asarray(f, dtype=np.float32))
    if f.ndim == 1:
        f = f.ger(f)
    if normalize:
        f = f / f.sum()
    return f


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) padding from an int, a pair (x, y) or a quad."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    return tuple(int(p) for p in padding)  # type: ignore[return-value]


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 2-D filter; 1x1 when there is none."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR filter, downsample (keep every n-th pixel).

    Args:
        x: [N, C, H, W].
        f: [fh, fw] filter (or None for identity).
        padding: int, (x, y) or (x0, x1, y0, y1); negative values crop.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    batch, channels, in_h, in_w = x.shape
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)

    if upx > 1 or upy > 1:
        x = x.reshape([batch, channels, in_h, 1, in_w, 1])
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([batch, channels, in_h * upy, in_w * upx])

    # Skipping the no-op pads changes no value; it saves two copies of x (and keeps a channels-last x so).
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)
    return x[:, :, ::downy, ::downx]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int = 0, gain: float = 1) -> torch.Tensor:
    """Upsample by ``up`` with FIR filter ``f``, keeping the image centred."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int = 0, flip_filter: bool = False, gain: float = 1
) -> torch.Tensor:
    """Downsample by ``down`` after FIR filtering with ``f``, keeping the image centred."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: int = 0, gain: float = 1) -> torch.Tensor:
    """FIR filter with 'same' output size."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, gain=gain)


# --- convolution with resampling --------------------------------------------------------------

def _conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    # torch convolutions are correlations; flip_weight=False asks for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if (torch.is_autocast_enabled(x.device.type) and x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)):
        # A channels-last input (the fast precision's layers) wants a channels-last weight too: with one
        # NCHW operand oneDNN falls back to its NCHW kernels and converts the output (2-3x slower).
        # Only under autocast: fp32 point features can look channels-last ([N, C, M, 1] views), and the
        # exact path must keep its kernels and so its round-off.
        if w.shape[2:] == (1, 1) and groups == 1 and not transpose and stride == 1 and _padding4(padding) == (0,) * 4:
            # A 1x1 convolution of NHWC pixels is one matrix product; oneDNN would convert all of x
            # to NCHW first when there are few output channels (toRGB: 3).
            out = torch.matmul(x.permute(0, 2, 3, 1), w.reshape(w.shape[0], -1).t().to(x.dtype))
            return out.permute(0, 3, 1, 2)
        w = w.contiguous(memory_format=torch.channels_last)
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling, in the cheapest equivalent order.

    Args:
        x: [N, C_in, H, W].
        w: [C_out, C_in / groups, kh, kw].
        f: FIR filter for resampling.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # Transposed convolution does the zero insertion; the FIR filter then smooths.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv2d(x, w, groups=groups, flip_weight=flip_weight)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution.

    Args:
        x: [N, C_in, H, W].
        weight: [C_out, C_in, kh, kw].
        styles: [N, C_in] per-sample input-channel scales.
        noise: optional tensor broadcastable to the output, added after demodulation.
        fused: one grouped convolution with per-sample weights (fast at small batch) instead of
            scaling activations around a shared convolution; results agree to round-off.

    Returns:
        [N, C_out, H', W'].
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so that fp16 activations cannot overflow; demodulation undoes the scale.
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if demodulate and fused:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)

    if not fused:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch,
                        flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise.to(x.dtype))  # a bf16 x (fast precision) would otherwise add in a slow mixed-dtype loop
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_matmul(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
    """A modulated 1x1 convolution of point features as one batched matrix product (StyleGAN2's fused
    weights ``W[o, i] s[i]``, demodulated per output row): x [N, C_in, M], weight [C_out, C_in, 1, 1] (or
    [C_out, C_in]), styles [N, C_in] -> [N, C_out, M]. Unlike a convolution its sums do not depend on
    the thread count, which matters where outputs steer sample positions (StyleNeRF's densities)."""
    w = weight.reshape(weight.shape[0], -1).unsqueeze(0) * styles.unsqueeze(1)
    if demodulate:
        w = w * (w.square().sum(dim=2, keepdim=True) + 1e-8).rsqrt()
    return torch.matmul(w.to(x.dtype), x)
