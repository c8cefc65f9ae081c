"""Mapping networks of the pipeline: z (and optionally the camera) -> ws [N, num_ws, w_dim].

Each kind declares the ws it ``provides``: 'stylegan' (w broadcast to every layer), 'film'
(pi-GAN's per-layer FiLM frequencies and phases) or 'z' (the codes themselves, GRAF/GIRAFFE).
The decoder, embedder and upsampler declare what they read; the config checks the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.registry import ComponentConfig, Registry
from models.siren import FiLMMapping
from models.stylegan2 import MappingNetwork

MAPPINGS: Registry = Registry("mapping")


def truncate(ws: torch.Tensor, avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """Pull ws [N, L, C] towards ``avg`` (broadcastable) by ``psi`` on the first ``cutoff`` layers."""
    if psi == 1:
        return ws
    ws = ws.clone()
    layers = slice(None) if cutoff is None else slice(0, cutoff)
    ws[:, layers] = avg.expand_as(ws)[:, layers].lerp(ws[:, layers], psi)
    return ws


def truncate_affine(ws: torch.Tensor, avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    """:func:`truncate` in pi-GAN's arithmetic, ``avg + psi * (ws - avg)`` (``torch.lerp`` rounds
    differently for psi >= 0.5, which the importance pass amplifies)."""
    if psi == 1:
        return ws
    ws = ws.clone()
    layers = slice(None) if cutoff is None else slice(0, cutoff)
    avg = avg.expand_as(ws)[:, layers]
    ws[:, layers] = avg + psi * (ws[:, layers] - avg)
    return ws


@MAPPINGS.register("stylegan2")
class StyleGAN2Mapping(MappingNetwork):
    """StyleGAN2's MLP to one w, broadcast to every layer (optionally conditioned on the camera)."""

    provides: ClassVar[str] = "stylegan"

    @dataclass
    class Config(ComponentConfig):
        z_dim: int = 512
        """Latent z size."""
        w_dim: int = 512
        """w size."""
        layers: int = 8
        """Fully connected layers."""
        camera_conditioning: bool = False
        """Feed the 25-d camera label to the mapping network (EG3D's generator pose conditioning)."""
        lr_multiplier: float = 0.01
        """Learning-rate multiplier of the mapping layers."""
        camera_scale: float = 1.0
        """The camera label is multiplied by this before the mapping (EG3D's ``c_scale``)."""
        zero_camera: bool = False
        """Condition on a zero camera (EG3D's ``c_gen_conditioning_zero``: pose conditioning off)."""
        hidden: int = 0
        """Width of the hidden layers (0: ``w_dim``; VolumeGAN's ``mapping_fmaps``)."""

    def __init__(self, config: Config, c_dim: int, num_ws: int, film_width: int = 0):
        super().__init__(config.z_dim, c_dim if config.camera_conditioning else 0, config.w_dim, num_ws,
                         num_layers=config.layers, lr_multiplier=config.lr_multiplier,
                         layer_features=config.hidden or None)
        self.camera_scale, self.zero_camera = float(config.camera_scale), bool(config.zero_camera)

    def forward(self, z, c, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        if self.c_dim:
            c = (torch.zeros_like(c) if self.zero_camera else c) * self.camera_scale
        return super().forward(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                               update_emas=update_emas)

    @staticmethod
    def ws_width(config: Config, film_width: int) -> int:
        return config.w_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(layers=min(config.layers, 2), z_dim=32, w_dim=min(config.w_dim, 32))


def epigraf_camera_angles(c: torch.Tensor) -> torch.Tensor:
    """EpiGRAF's (yaw, pitch) [N, 2] of cameras c [N, 25]: in its world (``ops.camera.EPIGRAF_WORLD``:
    our (x, y, z) is its (-z, y, x)) the camera is at r (sin p cos y, cos p, sin p sin y)."""
    origin = c[:, [3, 7, 11]]
    pitch = torch.acos((origin[:, 1] / origin.norm(dim=-1)).clamp(-1, 1))
    return torch.stack([torch.atan2(-origin[:, 0], origin[:, 2]), pitch], dim=-1)


@MAPPINGS.register("epigraf")
class EpiGRAFMapping(MappingNetwork):
    """EpiGRAF's mapping (``layers.MappingNetwork``): StyleGAN2's, conditioned on a one-hot class
    label (Megascans releases) and optionally on the raw camera (yaw, pitch), each mapped to
    ``sign(a) (|a| mod 2 pi) / 2 pi``; in eval mode the camera is the stored ``mean_camera_pose``
    (the official inference passes no angles). The class is ``class_index`` (the app sets it)."""

    provides: ClassVar[str] = "stylegan"

    @dataclass
    class Config(ComponentConfig):
        z_dim: int = 512
        """Latent z size."""
        w_dim: int = 512
        """w size."""
        layers: int = 2
        """Fully connected layers."""
        classes: int = 0
        """Class-label size (one-hot; Megascans Plants 198, Food 10; 0: unconditional)."""
        camera_conditioning: bool = False
        """Condition on the raw camera yaw and pitch (``camera_cond`` with ``camera_raw_scalars``)."""
        lr_multiplier: float = 0.01
        """Learning-rate multiplier of the mapping layers."""
        class_mean_samples: int = 0
        """With classes, psi != 1 in eval pulls toward the mean ws of this many z (seed 0) of the rendered
        class, as ``ws psi + mean (1 - psi)`` (EpiGRAF's inference script: 256); 0: toward ``w_avg``."""

    def __init__(self, config: Config, c_dim: int, num_ws: int, film_width: int = 0):
        super().__init__(config.z_dim, config.classes + 2 * bool(config.camera_conditioning), config.w_dim, num_ws,
                         num_layers=config.layers, lr_multiplier=config.lr_multiplier)
        self.classes, self.camera_conditioning = int(config.classes), bool(config.camera_conditioning)
        self.class_mean_samples = int(config.class_mean_samples)
        self._class_means: dict[tuple, torch.Tensor] = {}
        self.class_index = 0
        """The class rendered (an index into the one-hot label; the app's class control)."""
        self.register_buffer("mean_camera_pose", torch.tensor([0.0, math.pi / 2, 0.0]))

    @staticmethod
    def ws_width(config: Config, film_width: int) -> int:
        return config.w_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(layers=min(config.layers, 2), z_dim=32, w_dim=min(config.w_dim, 32))

    def condition(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """[n, classes (+ 2)]: the one-hot class and the wrapped camera angles."""
        device = self.w_avg.device
        parts = []
        if self.classes:
            index = torch.full((n,), int(self.class_index), dtype=torch.long, device=device)
            parts.append(torch.nn.functional.one_hot(index, self.classes).float())
        if self.camera_conditioning:
            angles = epigraf_camera_angles(c.float()) if self.training else self.mean_camera_pose[:2].expand(n, 2)
            parts.append(angles.sign() * ((angles.abs() % (2.0 * math.pi)) / (2.0 * math.pi)))
        return torch.cat(parts, dim=1) if parts else torch.zeros(n, 0, device=device)

    @torch.no_grad()
    def class_mean(self) -> torch.Tensor:
        """[num_ws, w_dim] mean ws of ``class_mean_samples`` z (seed 0) of the current class, cached per
        class and weights."""
        key = (int(self.class_index), *(p._version for p in self.parameters()))
        if key not in self._class_means:
            rng = torch.Generator().manual_seed(0)
            z = torch.randn(self.class_mean_samples, self.z_dim, generator=rng).to(self.w_avg.device)
            c = torch.zeros(len(z), 25, device=z.device)
            self._class_means = {key: super().forward(z, self.condition(c, len(z))).mean(0)}
        return self._class_means[key]

    def forward(self, z, c, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        per_class = self.classes and self.class_mean_samples and truncation_psi != 1 and not self.training
        ws = super().forward(z, self.condition(c, z.shape[0]), truncation_psi=1 if per_class else truncation_psi,
                             truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        if not per_class:
            return ws
        layers = slice(None) if truncation_cutoff is None else slice(0, truncation_cutoff)
        ws = ws.clone()
        ws[:, layers] = ws[:, layers] * truncation_psi + self.class_mean()[layers] * (1 - truncation_psi)
        return ws


@MAPPINGS.register("film")
class FiLMMappingNetwork(nn.Module):
    """pi-GAN's mapper as a ws producer: ws [N, L, 2 width] = (raw frequencies | phases) per FiLM
    layer, with a tracked average for truncation (pi-GAN truncates the same way)."""

    provides: ClassVar[str] = "film"

    @dataclass
    class Config(ComponentConfig):
        z_dim: int = 256
        """Latent z size."""
        layers: int = 3
        """Hidden layers."""
        hidden: int = 256
        """Hidden width."""
        affine_truncation: bool = False
        """Truncate in pi-GAN's arithmetic, avg + psi (ws - avg), instead of ``torch.lerp`` (which rounds
        differently for psi >= 0.5)."""

    def __init__(self, config: Config, c_dim: int, num_ws: int, film_width: int):
        super().__init__()
        self.z_dim, self.num_ws, self.w_dim = config.z_dim, num_ws, 2 * film_width
        self.truncate = truncate_affine if config.affine_truncation else truncate
        self.film = FiLMMapping(config.z_dim, hidden=config.hidden, hidden_layers=config.layers, out_layers=num_ws,
                                width=film_width)
        self.register_buffer("w_avg", torch.zeros([num_ws, 2 * film_width]))

    @staticmethod
    def ws_width(config: Config, film_width: int) -> int:
        return 2 * film_width

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(layers=min(config.layers, 2), hidden=32, z_dim=32)

    def film_ws(self, frequencies: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        """pi-GAN's flat mapping outputs [N, L * width] (raw frequencies, phases; layer l owns
        [l * width, (l + 1) * width)) as our ws [N, L, 2 width]."""
        n = frequencies.shape[0]
        return torch.cat([frequencies.reshape(n, self.num_ws, -1), phases.reshape(n, self.num_ws, -1)], dim=-1)

    def forward(self, z, c=None, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        frequencies, phases = self.film(z)
        ws = torch.cat([frequencies, phases], dim=-1).float()  # fp32 ws under autocast (--amp), as w_avg
        if update_emas:
            self.w_avg.copy_(ws.detach().mean(0).lerp(self.w_avg, 0.995))
        return self.truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


@MAPPINGS.register("none")
class IdentityMapping(nn.Module):
    """GRAF/GIRAFFE use z directly: ws = z [N, 1, z_dim]; truncation pulls z towards 0, its mean.
    ``z_dim`` must be what the decoder's codes read (the config checks it)."""

    provides: ClassVar[str] = "z"
    num_ws = 1

    @dataclass
    class Config(ComponentConfig):
        z_dim: int = 256
        """Latent z size: the shape and appearance codes of every field, concatenated."""

    def __init__(self, config: Config, c_dim: int = 0, num_ws: int = 1, film_width: int = 0):
        super().__init__()
        self.z_dim = self.w_dim = config.z_dim
        self.register_buffer("w_avg", torch.zeros([config.z_dim]))

    @staticmethod
    def ws_width(config: Config, film_width: int) -> int:
        return config.z_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config  # the pipeline sets z_dim to what the reduced codes need

    def forward(self, z, c=None, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        return truncate(z[:, None].float(), self.w_avg, truncation_psi, truncation_cutoff)


class PlainMappingLinear(nn.Linear):
    """StyleSDF's ``MappingLinear``: ``x @ W.T + b`` with plain weights (no equalized-lr scaling,
    no lr multiplier), Kaiming-normal fan-in init with leaky-ReLU(0.2) gain, bias U(+-1/sqrt(fan_in))."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            bound = in_features ** -0.5
            nn.init.uniform_(self.bias, -bound, bound)


@MAPPINGS.register("stylesdf")
class StyleSDFMapping(nn.Module):
    """StyleSDF's renderer mapping (``Generator.style``): ``layers`` plain linear layers, each
    ``leaky_relu(x W^T + b, 0.2)`` at scale 1, on z without normalisation; one w broadcast to every
    layer. Truncation is the official ``avg + psi (w - avg)``, only for psi < 1."""

    provides: ClassVar[str] = "stylegan"

    @dataclass
    class Config(ComponentConfig):
        z_dim: int = 256
        """Latent z size."""
        w_dim: int = 256
        """w size (StyleSDF's ``style_dim``; the SIREN's width must equal it)."""
        layers: int = 3
        """Plain linear layers."""

    def __init__(self, config: Config, c_dim: int, num_ws: int, film_width: int = 0):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = config.z_dim, 0, config.w_dim, num_ws
        self.layers = nn.ModuleList(PlainMappingLinear(config.z_dim if i == 0 else config.w_dim, config.w_dim)
                                    for i in range(config.layers))
        self.register_buffer("w_avg", torch.zeros([num_ws, config.w_dim]))

    @staticmethod
    def ws_width(config: Config, film_width: int) -> int:
        return config.w_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(layers=min(config.layers, 2), z_dim=32, w_dim=min(config.w_dim, 32))

    def forward(self, z, c=None, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        x = z.float()
        for layer in self.layers:
            x = torch.nn.functional.leaky_relu(layer(x), 0.2)
        ws = x[:, None].repeat(1, self.num_ws, 1).float()  # fp32 ws under autocast (--amp), as w_avg
        if update_emas:
            self.w_avg.copy_(ws.detach().mean(0).lerp(self.w_avg, 0.995))
        if truncation_psi >= 1:
            return ws
        return truncate_affine(ws, self.w_avg, truncation_psi, truncation_cutoff)
