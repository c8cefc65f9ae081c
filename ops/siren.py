"""SIREN-FiLM building blocks of the pi-GAN family (pi-GAN, GRAM, StyleSDF) plus NeRF encoding.

Sources are the tags of ``docs/methods.md`` (shared copy: ``/work/shared/docs/methods.md``):

* §3.5 pi-GAN decoder: 8 FiLM-SIREN layers of width 256, ``freq = 15 f + 30``, linear sigma
  head, colour ``FiLM([dir, h])`` -> linear to 3 -> sigmoid, input x 2/0.24 ``[P] siren/siren.py``.
* §3.3 GRAM (a pi-GAN descendant): FiLM form ``sin(freq * W x + phase)``, init
  ``frequency_init(25)`` and first layer ``U(-1/n, 1/n)``; mapper = pi-GAN ``CustomMappingNetwork``,
  z (256) -> 3 x FC 256 + LReLU 0.2 -> (8 + 1) * 256 * 2 values, last layer weights x 0.25.
* §3.2 VolumeGAN: NeRF PE of xyz with 10 frequencies and the input included is 63-d.

Conventions: ``n`` is a linear layer's fan-in; ``frequency_init(c)`` draws
``W ~ U(-sqrt(6/n)/c, sqrt(6/n)/c)`` (the SIREN bound ``sqrt(6/n)/omega_0`` with ``c`` in place of
omega_0; methods.md names ``frequency_init(25)`` without spelling out the formula, the formula
is pi-GAN's public code).

Assumptions (methods.md is silent; each is the simplest reading consistent with the pi-GAN code):

* Biases keep PyTorch's ``nn.Linear`` default ``U(-1/sqrt(n), 1/sqrt(n))``; neither the SIREN
  inits nor the mapper's init touch them.
* §3.5 gives no pi-GAN init; we use GRAM's (§3.3), which is pi-GAN's: ``frequency_init(25)`` for
  every linear layer of the decoder (FiLM layers, sigma head, colour FiLM, RGB head), then
  ``U(-1/n, 1/n)`` for the first FiLM layer only. The colour FiLM layer is *not* a "first" layer.
* Mapper hidden and output weights: Kaiming-normal, fan-in, LeakyReLU(0.2) gain (pi-GAN's
  ``kaiming_leaky_init``), applied before the x 0.25 on the last layer.
* Mapper output layout: the first half of the (8 + 1) * 256 * 2 values are frequencies, the second
  half phases; within each half, layer ``l`` owns the contiguous slice ``[l*W, (l+1)*W)`` and the
  last slice drives the colour FiLM layer.
* ``15 f + 30`` is applied to frequencies only; phases enter the sine unscaled.
* Colour FiLM input is ``cat([direction, h])`` (direction first), direction as given by the ray
  sampler (unit length there); the decoder does not renormalise it and does not scale it by 2/0.24.
* ``sigma`` is returned raw (no activation): §3.5 puts ReLU + annealed noise in the renderer.

This module holds the functions (encoding, init, FiLM arithmetic); the layers with weights built
from them (``FiLMSiren``, ``FiLMMapping``, ``SirenFiLMDecoder``) are in ``models/siren.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

PIGAN_WIDTH = 256
PIGAN_DEPTH = 8
PIGAN_BOX_SIDE = 0.24  # points x 2/0.24 before the MLP (methods.md §3.5 "Input x2/0.24")
FREQUENCY_INIT_SCALE = 25.0  # frequency_init(25), methods.md §3.3


# --- positional encoding ---------------------------------------------------------------------

def positional_encoding(x: torch.Tensor, num_frequencies: int, include_input: bool = True,
                        factor: float = 1.0) -> torch.Tensor:
    """NeRF positional encoding without a factor of pi (``factor`` pi: GIRAFFE's ``sin(2^k pi x)``).

    ``[x, sin(2^0 x), cos(2^0 x), ..., sin(2^(F-1) x), cos(2^(F-1) x)]``; each block is D wide.
    The frequencies are ``2^k`` (k = 0..F-1), **no pi**, as in NeRF's released code (the NeRF paper
    writes ``2^k pi``). For xyz with F = 10 and the input included this is 3 * 21 = 63-d, the size
    methods.md §3.2 gives for VolumeGAN's PE(10).

    Args:
        x: [..., D].
        num_frequencies: F >= 0.
        include_input: prepend ``x`` itself.
        factor: every frequency is ``2^k factor``, rounded once to x's dtype (as ``(2**k * pi) * x``).

    Returns:
        [..., D * (include_input + 2 F)].
    """
    if num_frequencies < 0:
        raise ValueError(f"num_frequencies must be >= 0, got {num_frequencies}")
    # Powers of two are exact in floating point, so 2^k x matches x * 2**k bit for bit.
    scales = 2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)
    if factor != 1.0:
        scales = scales * factor  # exact: a power of two times factor rounded to x's dtype
    scaled = x.unsqueeze(-2) * scales.unsqueeze(-1)  # [..., F, D]
    bands = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)  # [..., F, 2, D]
    bands = bands.flatten(-3)  # [..., F*2*D], order sin(f0), cos(f0), sin(f1), ...
    return torch.cat([x, bands], dim=-1) if include_input else bands


# --- initialisation --------------------------------------------------------------------------

def siren_uniform_bound(fan_in: int, is_first: bool = False, scale: float = FREQUENCY_INIT_SCALE) -> float:
    """Half-width of the uniform weight init: ``1/n`` (first layer) or ``sqrt(6/n)/scale``."""
    return 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / scale


@torch.no_grad()
def siren_init_(linear: nn.Linear, is_first: bool = False, scale: float = FREQUENCY_INIT_SCALE) -> nn.Linear:
    """Overwrite ``linear.weight`` with the pi-GAN SIREN init; the bias is left as it is."""
    bound = siren_uniform_bound(linear.weight.shape[-1], is_first, scale)
    linear.weight.uniform_(-bound, bound)
    return linear


# --- FiLM arithmetic ------------------------------------------------------------------------

def film_frequencies(raw: torch.Tensor) -> torch.Tensor:
    """pi-GAN's mapping-side frequency transform ``15 f + 30``.

    Source line: methods.md §3.5 Decoder, "8 FiLM-SIREN layers of width 256, freq = 15f + 30"
    (same in §3.3 GRAM; §3.4 StyleSDF writes it as "FiLM gamma = 15 Linear(w) + 30"). The +30
    centres the sine frequency at SIREN's omega_0 = 30 when the mapper outputs zero.
    """
    return 15.0 * raw + 30.0


def check_film_params(frequencies: torch.Tensor, phases: torch.Tensor, expected: tuple[int, int, int]) -> None:
    """Raise ValueError unless frequencies and phases are both ``expected`` = [N, layers, width]."""
    if tuple(frequencies.shape) != expected or tuple(phases.shape) != expected:
        raise ValueError(
            f"frequencies/phases must be {list(expected)}, got {list(frequencies.shape)} and {list(phases.shape)}"
        )


def encoded_size(num_frequencies: int, dims: int = 3) -> int:
    """Width of :func:`positional_encoding` of ``dims`` values with the input included."""
    return dims * (1 + 2 * num_frequencies)
