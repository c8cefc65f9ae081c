"""pi-GAN's SIREN-FiLM layers (pi-GAN, GRAM, StyleSDF): the FiLM-SIREN layer, the mapping network
and the decoder.

The functions they are built from (``positional_encoding``, ``siren_init_``, ``film_frequencies``,
``check_film_params``) and the sources, conventions and assumptions are in ``ops/siren.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ops.siren import PIGAN_BOX_SIDE, PIGAN_DEPTH, PIGAN_WIDTH, check_film_params, film_frequencies, siren_init_

# --- FiLM-SIREN layer ------------------------------------------------------------------------

class FiLMSiren(nn.Module):
    """``sin(freq * (W x + b) + phase)`` with per-sample FiLM frequency and phase.

    The frequency multiplies the biased pre-activation (bias inside the product), as in
    methods.md §3.3 "sin(freq·Wx + phase)" with ``Wx`` an ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, is_first: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.is_first = is_first
        self.linear = siren_init_(nn.Linear(in_features, out_features), is_first=is_first)

    def forward(self, x: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: [N, P, in].
            freq: [N, out], already transformed (see :func:`film_frequencies`).
            phase: [N, out].

        Returns:
            [N, P, out].
        """
        h = self.linear(x)
        return torch.sin(freq.unsqueeze(1) * h + phase.unsqueeze(1))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, is_first={self.is_first}"


# --- mapping network -------------------------------------------------------------------------

class FiLMMapping(nn.Module):
    """pi-GAN's ``CustomMappingNetwork``: z -> raw FiLM frequencies and phases of every layer.

    ``hidden_layers`` FC layers with LeakyReLU 0.2, then one linear layer to
    ``out_layers * width * 2`` values; that layer's weights are scaled by 0.25 after init
    (methods.md §3.3/§3.5). Frequencies are returned raw: apply :func:`film_frequencies` before use.
    """

    def __init__(
        self,
        z_dim: int = 256,
        hidden: int = 256,
        hidden_layers: int = 3,
        out_layers: int = PIGAN_DEPTH + 1,
        width: int = PIGAN_WIDTH,
        last_scale: float = 0.25,
    ) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ValueError(f"hidden_layers must be >= 1, got {hidden_layers}")
        self.out_layers = out_layers
        self.width = width
        dims = [z_dim] + [hidden] * hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(hidden, out_layers * width * 2)
        with torch.no_grad():
            for layer in [*self.hidden, self.out]:
                nn.init.kaiming_normal_(layer.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            # Small last layer: FiLM parameters start near the mapper's bias, so freq ~ 30.
            self.out.weight.mul_(last_scale)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            z: [N, z_dim].

        Returns:
            (frequencies, phases), each [N, out_layers, width]; frequencies are raw.
        """
        x = z
        for layer in self.hidden:
            x = F.leaky_relu(layer(x), 0.2)
        x = self.out(x)
        half = self.out_layers * self.width
        frequencies = x[:, :half].reshape(-1, self.out_layers, self.width)
        phases = x[:, half:].reshape(-1, self.out_layers, self.width)
        return frequencies, phases


# --- decoder ---------------------------------------------------------------------------------

class SirenFiLMDecoder(nn.Module):
    """pi-GAN's ``SPATIALSIRENBASELINE`` decoder (methods.md §3.5).

    points x 2/box_side -> ``depth`` FiLM-SIREN layers -> h; sigma = Linear(h);
    rgb = sigmoid(Linear(FiLMSiren(cat([direction, h])))). FiLM parameters: ``depth + 1`` slices,
    the last for the colour layer. See the module docstring for the assumptions.
    """

    def __init__(
        self,
        width: int = PIGAN_WIDTH,
        depth: int = PIGAN_DEPTH,
        in_features: int = 3,
        dir_features: int = 3,
        box_side: float = PIGAN_BOX_SIDE,
    ) -> None:
        super().__init__()
        self.width = width
        self.depth = depth
        self.coordinate_scale = 2.0 / box_side
        self.layers = nn.ModuleList(
            FiLMSiren(in_features if i == 0 else width, width, is_first=(i == 0)) for i in range(depth)
        )
        self.sigma_head = siren_init_(nn.Linear(width, 1))
        self.color_film = FiLMSiren(dir_features + width, width)
        self.rgb_head = siren_init_(nn.Linear(width, 3))

    @property
    def num_film_layers(self) -> int:
        """How many (frequency, phase) slices the decoder consumes: ``depth + 1``."""
        return self.depth + 1

    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        frequencies: torch.Tensor,
        phases: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            points: [N, P, 3] world points.
            directions: [N, P, 3] ray directions.
            frequencies: [N, depth + 1, width] **raw** mapper output (``15 f + 30`` applied here).
            phases: [N, depth + 1, width].

        Returns:
            ``sigma`` [N, P, 1] raw density (any real; the renderer applies ReLU) and
            ``rgb`` [N, P, 3] in (0, 1).
        """
        check_film_params(frequencies, phases, (points.shape[0], self.num_film_layers, self.width))
        freq = film_frequencies(frequencies)
        x = points * self.coordinate_scale
        for i, layer in enumerate(self.layers):
            x = layer(x, freq[:, i], phases[:, i])
        sigma = self.sigma_head(x)
        color = self.color_film(torch.cat([directions, x], dim=-1), freq[:, -1], phases[:, -1])
        rgb = torch.sigmoid(self.rgb_head(color))
        return {"sigma": sigma, "rgb": rgb}
