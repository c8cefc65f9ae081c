"""EG3D's pose-conditioned dual discriminator, parameter-compatible with NVlabs' ``DualDiscriminator``.

Module, parameter and buffer names and shapes are the official ones (``b512.fromrgb.weight``,
``b4.fc.weight``, ``mapping.embed.weight``, top-level ``resample_filter``, ...), so the ``D`` state
dict of an official EG3D network pickle loads with ``load_state_dict(strict=True)``.

The discriminator sees the final image and the upsampled raw neural rendering stacked along
channels (6 channels for RGB), runs StyleGAN2's residual discriminator on that, and conditions the
logit on the camera through a projection with a mapped label embedding.

It is the registered discriminator kind ``eg3d_dual`` (:class:`EG3DDualDiscriminator`, config
:class:`DiscriminatorConfig`; ``models.discriminator_registry``). The registered class only adds
the config-taking constructor and the kind's facts: its modules are :class:`DualDiscriminator`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from models.discriminator_registry import DISCRIMINATORS, DiscriminatorFacts
from models.registry import ComponentConfig
from models.stylegan2 import FullyConnectedLayer, MappingNetwork
from models.typed_config import dataclass_from_dict
from ops.resize import filtered_resizing
from ops.stylegan2 import ACTIVATIONS, DEFAULT_RESAMPLE_FILTER, bias_act, conv2d_resample, downsample2d, setup_filter

Architecture = Literal["orig", "skip", "resnet"]


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias, activation, clamp.

    With ``trainable=False`` (Freeze-D) weight and bias are buffers instead of parameters, under the
    same names, as in the official layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].default_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_init = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_init) if bias_init is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_init is not None:
                self.register_buffer("bias", bias_init)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """x [N, C_in, H, W] -> [N, C_out, H * up / down, W * up / down]; ``gain`` scales output and clamp."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: (fromrgb) -> conv0 -> conv1 (down 2), plus a residual skip.

    ``fromrgb`` exists in the first block (``in_channels == 0``) and in every block of the 'skip'
    architecture; ``skip`` (1x1, down 2, no bias) only in 'resnet', where the output is
    ``(skip(x) + conv1(conv0(x))) * sqrt(0.5)`` (both branches carry the sqrt(0.5) gain).
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: Architecture = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 (first block) or tmp_channels={tmp_channels}, got {in_channels}")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))

        # Freeze-D counts layers across the whole network; the first `freeze_layers` are frozen.
        self.num_layers = 0

        def next_trainable() -> bool:
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=next_trainable(), **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, trainable=next_trainable(),
                                 resample_filter=resample_filter, **common)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=next_trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, in_channels, R, R] (None in the first block), img [N, img_channels, R, R] (used by
        fromrgb) -> (x [N, out_channels, R/2, R/2], img downsampled for 'skip', else None)."""
        if (x if x is not None else img).device.type != "cuda":
            force_fp32 = True  # fp16 convolutions are slow or unsupported on CPU
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class MinibatchStdLayer(nn.Module):
    """Appends the within-group feature standard deviation as extra channels.

    The batch is split into groups of ``G = min(group_size, N)`` samples taken with stride
    ``N / G`` (sample i is in group ``i % (N / G)``); N must be divisible by G, as in the official
    layer (whose reshape fails otherwise). ``group_size=None`` uses the whole batch as one group.
    """

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C + num_channels, H, W]."""
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        if n % g or c % f:
            raise ValueError(f"minibatch std: batch {n} must be divisible by the group size {g} "
                             f"and channels {c} by num_channels {f}")
        y = x.reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W] std over each group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]; row i gets group i % n, matching the reshape
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch std, 3x3 conv, dense, output (projection-conditioned on ``cmap``)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: Architecture = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        """x [N, C, 4, 4], img (for 'skip'), cmap [N, cmap_dim] or None -> logits [N, 1] (float32)."""
        del force_fp32  # the head always runs in fp32
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            # Projection discriminator: logit = <features, embedded label> / sqrt(cmap_dim).
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class DualDiscriminator(nn.Module):
    """EG3D's discriminator over the final image and the raw neural rendering, conditioned on camera.

    ``img_channels`` is the colour channel count of one image; the network's input has twice as
    many (``self.img_channels`` stores the doubled count, like the official class).
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        architecture: Architecture = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,
        disc_c_noise: float = 0,
        block_kwargs: dict[str, Any] | None = None,
        mapping_kwargs: dict[str, Any] | None = None,
        epilogue_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {img_resolution}")
        img_channels *= 2  # final image and upsampled raw image, stacked
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2], resolution=res,
                first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution, **(block_kwargs or {}), **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}), **common)
        # Unused by the default 'antialiased' resize; kept because official state dicts carry it.
        self.register_buffer("resample_filter", setup_filter(DEFAULT_RESAMPLE_FILTER))
        self.disc_c_noise = disc_c_noise

    def forward(
        self, img: dict[str, torch.Tensor], c: torch.Tensor, update_emas: bool = False, force_fp32: bool = False
    ) -> torch.Tensor:
        """Logits of an image pair.

        Args:
            img: {'image': [N, 3, R, R], 'image_raw': [N, 3, r, r]} (any r; resized to R).
            c: [N, c_dim] camera label (ignored when c_dim == 0).
            update_emas: accepted for API compatibility; the discriminator tracks no averages.
            force_fp32: run the fp16 blocks in fp32 even on CUDA.

        Returns:
            [N, 1] float32 logits.
        """
        del update_emas
        image = img["image"]
        image_raw = filtered_resizing(img["image_raw"], size=image.shape[-1], f=self.resample_filter)
        x, skip_img = None, torch.cat([image, image_raw], dim=1)
        for res in self.block_resolutions:
            x, skip_img = getattr(self, f"b{res}")(x, skip_img, force_fp32=force_fp32)

        cmap = None
        if self.c_dim > 0:
            if self.disc_c_noise > 0:
                # Out of place: the official `c +=` would also corrupt the caller's labels.
                c = c + torch.randn_like(c) * c.std(0) * self.disc_c_noise
            cmap = self.mapping(None, c)
        return self.b4(x, skip_img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"


# --- configuration ----------------------------------------------------------------------------

@dataclass
class DiscriminatorConfig(ComponentConfig):
    """Architecture of an EG3D dual discriminator (the config of the registered kind ``eg3d_dual``)."""

    c_dim: int = 25
    """Conditioning label dimensionality (25 for EG3D cameras, 0 for unconditional)."""
    img_resolution: int = 512
    """Resolution of the final image (the raw image is resized to it)."""
    img_channels: int = 3
    """Colour channels of one image (the network sees twice as many)."""
    channel_base: int = 32768
    """Feature maps: channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Channel cap."""
    num_fp16_res: int = 4
    """Blocks (from the top resolution) that run in fp16 on CUDA."""
    conv_clamp: float | None = 256
    """Clamp on conv outputs (256 when fp16 is on, else usually None)."""
    cmap_dim: int | None = None
    """Dimensionality of the mapped label; None: channels at resolution 4."""
    disc_c_noise: float = 0.0
    """Std (relative to the batch std of c) of noise added to the label before conditioning."""
    mbstd_group_size: int | None = 4
    """Minibatch-std group size (None: whole batch); the batch must be divisible by it."""
    mbstd_num_channels: int = 1
    """Minibatch-std feature channels (0 disables the layer)."""
    architecture: str = "resnet"
    """Block architecture: 'resnet' (EG3D), 'skip' or 'orig'."""
    freeze_layers: int = 0
    """Freeze-D: the first this many conv layers are fixed buffers (official ``--freezed``)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        """Inverse of :meth:`to_dict` (``{"kind": "eg3d_dual", **fields}``), also reading the dicts
        written before discriminators were registered (the same fields, no ``kind``); unknown keys
        are an error that names them."""
        values = dict(data)
        if "kind" in values and values.pop("kind") != cls.kind:
            raise ValueError(f"not an EG3D dual discriminator config (kind {data['kind']!r})")
        return dataclass_from_dict(cls, values, "discriminator config")

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        if self.img_resolution < 8 or self.img_resolution & (self.img_resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {self.img_resolution}")

    def to_official(self) -> dict[str, Any]:
        """Official ``DualDiscriminator`` constructor kwargs for this config."""
        return {
            "c_dim": self.c_dim, "img_resolution": self.img_resolution, "img_channels": self.img_channels,
            "architecture": self.architecture, "channel_base": self.channel_base, "channel_max": self.channel_max,
            "num_fp16_res": self.num_fp16_res, "conv_clamp": self.conv_clamp, "cmap_dim": self.cmap_dim,
            "disc_c_noise": self.disc_c_noise,
            "block_kwargs": {"freeze_layers": self.freeze_layers},
            "mapping_kwargs": {},
            "epilogue_kwargs": {"mbstd_group_size": self.mbstd_group_size,
                                "mbstd_num_channels": self.mbstd_num_channels},
        }

    @classmethod
    def from_official(cls, init_kwargs: dict[str, Any]) -> DiscriminatorConfig:
        """Config from official ``DualDiscriminator`` constructor kwargs; unsupported options raise."""
        kw = dict(init_kwargs)
        kw.pop("class_name", None)
        block = dict(kw.pop("block_kwargs", {}) or {})
        mapping = dict(kw.pop("mapping_kwargs", {}) or {})
        epilogue = dict(kw.pop("epilogue_kwargs", {}) or {})
        defaults = cls()
        config = cls(
            c_dim=int(kw.pop("c_dim")),
            img_resolution=int(kw.pop("img_resolution")),
            img_channels=int(kw.pop("img_channels", 3)),
            channel_base=int(kw.pop("channel_base", defaults.channel_base)),
            channel_max=int(kw.pop("channel_max", defaults.channel_max)),
            num_fp16_res=int(kw.pop("num_fp16_res", defaults.num_fp16_res)),
            conv_clamp=kw.pop("conv_clamp", defaults.conv_clamp),
            cmap_dim=kw.pop("cmap_dim", None),
            disc_c_noise=float(kw.pop("disc_c_noise", 0.0)),
            mbstd_group_size=epilogue.pop("mbstd_group_size", defaults.mbstd_group_size),
            mbstd_num_channels=int(epilogue.pop("mbstd_num_channels", defaults.mbstd_num_channels)),
            architecture=str(kw.pop("architecture", defaults.architecture)),
            freeze_layers=int(block.pop("freeze_layers", 0)),
        )
        kw.pop("sr_upsample_factor", None)  # accepted and ignored by the official discriminators
        leftovers = {**{f"block_kwargs.{k}": v for k, v in block.items()},
                     **{f"mapping_kwargs.{k}": v for k, v in mapping.items()},
                     **{f"epilogue_kwargs.{k}": v for k, v in epilogue.items()}, **kw}
        if leftovers:
            raise ValueError(f"unsupported discriminator options: {', '.join(sorted(leftovers))}")
        return config


@DISCRIMINATORS.register("eg3d_dual")
class EG3DDualDiscriminator(DiscriminatorFacts, DualDiscriminator):
    """EG3D's dual discriminator as a registered kind: built from a :class:`DiscriminatorConfig`,
    with exactly :class:`DualDiscriminator`'s modules, parameter names and call."""

    dual = True
    label_conditioned = True

    Config = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig):
        super().__init__(**config.to_official())
        self.config = config

    @staticmethod
    def tiny(config: DiscriminatorConfig) -> DiscriminatorConfig:
        """A cheap CPU discriminator: narrow channels, fp32, no clamp."""
        return config.replace(channel_base=2048, channel_max=64, num_fp16_res=0, conv_clamp=None)


def build_discriminator(config: DiscriminatorConfig) -> DualDiscriminator:
    """The discriminator described by ``config`` (an :class:`EG3DDualDiscriminator`)."""
    return DISCRIMINATORS.build(config)


def discriminator_preset(name: str) -> DiscriminatorConfig:
    """Discriminators for the generator presets of the same name (see ``models.eg3d.eg3d_preset``).

    * ``ffhq512`` / ``afhq512``: the official 512 discriminator (fp16 in the top 4 blocks, clamp 256).
    * ``shapenet128``: the official one at 128x128.
    * ``ref128``: 128x128 with the reference fixture's small channels (not an official layout).
    * ``tiny``: cheap CPU discriminator for tests and demos (fp32, no clamp).
    """
    if name in ("ffhq512", "afhq512"):
        return DiscriminatorConfig()
    if name == "shapenet128":
        return DiscriminatorConfig(img_resolution=128)
    if name == "ref128":
        return DiscriminatorConfig(img_resolution=128, channel_base=2048, channel_max=64, num_fp16_res=0, conv_clamp=None)
    if name == "tiny":
        return EG3DDualDiscriminator.tiny(DiscriminatorConfig(img_resolution=64))
    raise ValueError(f"unknown discriminator preset {name!r}; expected one of {', '.join(DISCRIMINATOR_PRESETS)}")


DISCRIMINATOR_PRESETS = ("ffhq512", "afhq512", "shapenet128", "ref128", "tiny")
