"""Image-quality metrics for the trainer: sliced Wasserstein distance (SWD) on multi-scale patches.

SWD (Karras et al. 2018, "Progressive Growing of GANs") compares the distributions of local image
patches at every level of a Laplacian pyramid, so it is cheap enough to run on a CPU during
training and needs no pretrained network:

1. Each image becomes a Laplacian pyramid (5-tap binomial filter, halving until the coarsest level
   is ``min_resolution``): a level is ``image - up(down(image))``, the coarsest is the blurred image.
2. Every level of every image yields ``patches_per_image`` random 7x7x3 patches (147 numbers).
3. Per level and per image set, patches are normalised to zero mean and unit std per channel.
4. The distance between two equally sized patch sets is the mean over random unit directions of
   the 1-D Wasserstein-1 distance of the projections (sort both, mean absolute difference).
   As in the original, it is reported x1e3 per level, plus the average over levels.

Because each set is normalised on its own, a set-wide per-channel gain or offset (e.g. all fakes
slightly too bright) is invisible to SWD, as in the original; blur, noise, wrong textures and
wrong colour mixtures are not.

Randomness (patch positions, directions) comes from seeded generators, so a result is a function
of the images and the seed. Reals and fakes share patch positions when they share the seed:
positions do not depend on the content, so this adds no bias and two identical sets score 0.

The trainer-facing side: :func:`swd_metric` is a metric function
``(G, dataset, MetricOptions) -> dict[str, float]``, and this module defines what every metric
function shares (:class:`MetricOptions`, the generator and dataset protocols, the real and fake
image streams). The registry of them by name, :data:`training.evaluation.METRICS`, also holds FID
and KID (``training.fid``) and the view and geometry metrics (``training.view_metrics``);
``training.evaluation.compute_metrics`` runs several by name for the trainer and
``training.evaluation.evaluate`` for the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from models.poses import POSE_SAMPLERS, pose_config, pose_sampler
from models.protocol import Generator
from ops.resize import filtered_resizing
from ops.stylegan2 import setup_filter, upfirdn2d

PATCH_SIZE = 7
"""Side of the square patches whose distributions SWD compares (ProGAN's ``nhood_size``)."""

_BINOMIAL_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)  # the Gaussian of cv2.pyrDown / ProGAN's SWD


# --- Laplacian pyramid --------------------------------------------------------------------------

def pyramid_resolutions(resolution: int, min_resolution: int = 16) -> list[int]:
    """Level resolutions, finest first: ``resolution`` halved while it stays >= ``min_resolution``.

    E.g. 64 -> [64, 32, 16]. Raises ValueError if the image is smaller than ``min_resolution`` or a
    level to be halved has an odd size (the pyramid would not round-trip).
    """
    if min_resolution < PATCH_SIZE:
        raise ValueError(f"min_resolution must be >= the {PATCH_SIZE}px patch size, got {min_resolution}")
    if resolution < min_resolution:
        raise ValueError(f"images of {resolution}px are smaller than min_resolution={min_resolution}")
    levels = [resolution]
    while levels[-1] // 2 >= min_resolution:
        if levels[-1] % 2:
            raise ValueError(f"cannot halve the odd pyramid level {levels[-1]}px of a {resolution}px image")
        levels.append(levels[-1] // 2)
    return levels


def _pyr_down(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H/2, W/2]: blur, keep even pixels (cv2.pyrDown's alignment).

    ``ops.stylegan2.downsample2d`` would zero-pad; reflecting keeps image borders out of the
    Laplacian levels.
    """
    return upfirdn2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), f, down=2)


def _pyr_up(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, C, 2h, 2w]: zero insertion + blur, low-res pixel k landing on 2k.

    Not ``ops.stylegan2.upsample2d``: its half-pixel centring suits even filters, and with this odd
    filter it lands pixel k on 2k+1, one pixel off :func:`_pyr_down`.
    """
    return upfirdn2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), f, up=2, gain=4)


def laplacian_pyramid(images: torch.Tensor, min_resolution: int = 16) -> dict[int, torch.Tensor]:
    """Laplacian pyramid of float images [N, C, R, R], keyed by level resolution, finest first.

    Level ``r`` is [N, C, r, r]: the band-pass ``g_r - up(g_{r/2})`` of the Gaussian level ``g_r``,
    except the coarsest, which is the Gaussian level itself. Summing up the levels (upsampling from
    the coarsest) reconstructs the images exactly.
    """
    f = setup_filter(_BINOMIAL_TAPS).to(images.device)
    resolutions = pyramid_resolutions(images.shape[-1], min_resolution)
    pyramid: dict[int, torch.Tensor] = {}
    gaussian = images
    for res in resolutions[:-1]:
        down = _pyr_down(gaussian, f)
        pyramid[res] = gaussian - _pyr_up(down, f)
        gaussian = down
    pyramid[resolutions[-1]] = gaussian
    return pyramid


# --- patch descriptors --------------------------------------------------------------------------

def _as_signed_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float32 in [-1, 1] (float values are not clipped)."""
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1.0
    if images.is_floating_point():
        return images.float()
    raise ValueError(f"images must be uint8 in [0, 255] or float in [-1, 1], got dtype {images.dtype}")


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"{name} must be [N, 3, R, R] square RGB images, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")


@dataclass
class PatchDescriptors:
    """Normalised patch descriptors of one image set, ready for :func:`swd_from_descriptors`.

    per_level: resolution -> [num_images * patches_per_image, 147] float32 on the CPU (finest level
        first); each row is one 3x7x7 patch flattened channel-major, normalised per channel over the set.
    num_images: how many images the descriptors came from.
    """

    per_level: dict[int, torch.Tensor]
    num_images: int


def _draw_patch_corners(gen: torch.Generator, count: int, resolutions: Sequence[int],
                        patches_per_image: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Top-left patch corners (top [count, P], left [count, P]) per level for the next ``count`` images.

    One draw per batch, in image order: torch's CPU generator fills tensors sequentially, so the
    corners of image i do not depend on how the images are batched.
    """
    uniform = torch.rand(count, len(resolutions), 2, patches_per_image, generator=gen, dtype=torch.float64)
    corners = {}
    for level, res in enumerate(resolutions):
        top_left = (uniform[:, level] * (res - PATCH_SIZE + 1)).long()  # [count, 2, P] in [0, res - 7]
        corners[res] = (top_left[:, 0], top_left[:, 1])
    return corners


def _gather_patches(level: torch.Tensor, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """level [n, 3, r, r], corners [n, P] -> patches [n * P, 3, 7, 7]."""
    device = level.device
    top, left = top.to(device), left.to(device)
    offsets = torch.arange(PATCH_SIZE, device=device)
    image_index = torch.arange(level.shape[0], device=device)[:, None, None, None, None]
    channels = torch.arange(level.shape[1], device=device)[None, None, :, None, None]
    rows = top[:, :, None, None, None] + offsets[:, None]  # [n, P, 1, 7, 1]
    cols = left[:, :, None, None, None] + offsets  # [n, P, 1, 1, 7]
    return level[image_index, channels, rows, cols].flatten(0, 1)


def swd_descriptors(
    images: torch.Tensor | Iterable[torch.Tensor],
    patches_per_image: int = 128,
    seed: int = 0,
    min_resolution: int = 16,
    chunk_size: int = 64,
) -> PatchDescriptors:
    """Random 7x7 patches from every Laplacian level of an image set, normalised per channel.

    Args:
        images: [N, 3, R, R], or an iterable of such batches (e.g. generated on the fly), each
            uint8 in [0, 255] or float in [-1, 1] (see :func:`sliced_wasserstein`). The pyramid
            runs on the batches' device; the descriptors are collected on the CPU.
        patches_per_image: patches drawn per image and level.
        seed: seeds the patch positions; the i-th image of two sets gets the same positions.
        min_resolution: the coarsest pyramid level.
        chunk_size: images per pyramid batch when ``images`` is one tensor (bounds memory).
            Neither this nor the batching of an iterable changes the result.
    """
    batches = images.split(chunk_size) if isinstance(images, torch.Tensor) else images
    gen = torch.Generator().manual_seed(seed)
    resolutions: list[int] = []
    raw: dict[int, list[torch.Tensor]] = {}
    num_images = 0
    for batch in batches:
        _check_images(batch, "images")
        if not resolutions:
            resolutions = pyramid_resolutions(batch.shape[-1], min_resolution)
            raw = {res: [] for res in resolutions}
        elif batch.shape[-1] != resolutions[0]:
            raise ValueError(f"image batches differ in size: {batch.shape[-1]}px after {resolutions[0]}px")
        corners = _draw_patch_corners(gen, batch.shape[0], resolutions, patches_per_image)
        with torch.no_grad():
            pyramid = laplacian_pyramid(_as_signed_unit_float(batch), min_resolution)
            for res, level in pyramid.items():
                raw[res].append(_gather_patches(level, *corners[res]).cpu())
        num_images += batch.shape[0]
    if num_images == 0:
        raise ValueError("images is empty")

    per_level: dict[int, torch.Tensor] = {}
    for res, parts in raw.items():
        desc = torch.cat(parts)  # [N * P, 3, 7, 7]
        mean = desc.mean(dim=(0, 2, 3), keepdim=True)
        # Population std as in the original; the floor keeps flat (e.g. blank) images finite.
        std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-8)
        per_level[res] = ((desc - mean) / std).flatten(1)
    return PatchDescriptors(per_level, num_images)


# --- sliced Wasserstein distance ----------------------------------------------------------------

def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """[K, M] -> each row sorted ascending, [K, M].

    On the CPU, numpy's SIMD sort is several times faster than ``torch.sort``, and sorting dominates
    the distance step (the pyramid dominates the descriptors).
    """
    if x.device.type != "cpu":
        return x.sort(dim=1).values
    return torch.from_numpy(np.sort(x.detach().numpy(), axis=1))


def sliced_wasserstein_1d(
    a: torch.Tensor, b: torch.Tensor, dirs_per_repeat: int = 128, dir_repeats: int = 4, seed: int = 0
) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of projected samples.

    a, b: [M, D] samples of equal count M. Directions are drawn ``dirs_per_repeat`` at a time
    (``dir_repeats`` times, which bounds the [M, dirs_per_repeat] projection memory).
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"descriptor sets must both be [M, D] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(dir_repeats):
        dirs = torch.randn(a.shape[1], dirs_per_repeat, generator=gen).to(a.device)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        # Projections as [dirs, M] rows, so each sort runs over contiguous memory.
        proj_a = _sorted_rows(dirs.T @ a.T)
        proj_b = _sorted_rows(dirs.T @ b.T)
        total += (proj_a - proj_b).abs().mean().item()
    return total / dir_repeats


@dataclass
class SWDResult:
    """per_level: resolution -> distance x1e3 (finest first); mean: their average."""

    per_level: dict[int, float]
    mean: float
    num_images: int

    def as_metrics(self, prefix: str = "swd") -> dict[str, float]:
        """``{"swd": mean, "swd/16": ..., "swd/32": ...}`` with levels in increasing resolution."""
        out = {prefix: self.mean}
        out.update({f"{prefix}/{res}": self.per_level[res] for res in sorted(self.per_level)})
        return out


def swd_from_descriptors(
    reals: PatchDescriptors, fakes: PatchDescriptors, dirs_per_repeat: int = 128, dir_repeats: int = 4, seed: int = 0
) -> SWDResult:
    """SWD between two descriptor sets of the same levels and size (e.g. cached reals vs. fakes)."""
    if reals.per_level.keys() != fakes.per_level.keys():
        raise ValueError(f"pyramid levels differ: {list(reals.per_level)} vs {list(fakes.per_level)}")
    per_level = {
        res: 1e3 * sliced_wasserstein_1d(real, fakes.per_level[res], dirs_per_repeat, dir_repeats, seed)
        for res, real in reals.per_level.items()
    }
    return SWDResult(per_level, sum(per_level.values()) / len(per_level), fakes.num_images)


def sliced_wasserstein(
    reals: torch.Tensor,
    fakes: torch.Tensor,
    patches_per_image: int = 128,
    dirs_per_repeat: int = 128,
    dir_repeats: int = 4,
    seed: int = 0,
    min_resolution: int = 16,
) -> SWDResult:
    """Multi-scale sliced Wasserstein distance between two image sets (lower is closer).

    Args:
        reals, fakes: [N, 3, R, R] with the same N and R; each either uint8 in [0, 255] or float in
            [-1, 1] (uint8 ``u`` is read as ``u / 127.5 - 1``, so the two encodings of one image
            score the same). The two sets may use different encodings.
        patches_per_image: 7x7 patches per image and pyramid level.
        dirs_per_repeat, dir_repeats: number of random projection directions, in batches.
        seed: seeds patch positions and directions; the result is deterministic given it.
        min_resolution: coarsest pyramid level (R, R/2, ... down to it).
    """
    _check_images(reals, "reals")
    _check_images(fakes, "fakes")
    if reals.shape != fakes.shape:
        raise ValueError(f"reals and fakes must have the same count and size, "
                         f"got {tuple(reals.shape)} and {tuple(fakes.shape)}")
    with torch.no_grad():
        real_desc = swd_descriptors(reals, patches_per_image, seed, min_resolution)
        fake_desc = swd_descriptors(fakes, patches_per_image, seed, min_resolution)
        return swd_from_descriptors(real_desc, fake_desc, dirs_per_repeat, dir_repeats, seed)


# --- trainer-facing metric interface and the SWD metric ------------------------------------------

GeneratorLike = Generator
"""Metrics call ``G(z [B, z_dim], c [B, 25], truncation_psi=..., noise_mode=...)["image"]`` of the
generator contract (``models.protocol``)."""


class ImageLabelDatasetLike(Protocol):
    """Indexable dataset of ``(uint8 image [3, R, R], float32 camera label [25])`` (tensors or arrays).

    Optional, used when present: ``path`` (enables the real-descriptor cache), ``resolution`` (R),
    ``get_label(index)`` (a label without decoding the image).
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, Any]: ...


@dataclass
class MetricOptions:
    """num_images: reals and fakes per metric (identities for the view metrics); batch: generator
    batch size; seed: image/pose/z draws (first identity seed for the view metrics); inception:
    path of the TorchScript Inception feature network that ``fid`` and ``kid`` need; focal:
    normalised focal length of the view metrics' cameras (None: the dataset's median when there is
    one, else FFHQ's); progress: show tqdm progress bars."""

    num_images: int = 256
    batch: int = 16
    device: str = "cpu"
    seed: int = 0
    truncation_psi: float = 1.0
    inception: str | None = None
    focal: float | None = None
    progress: bool = False


MetricFn = Callable[[GeneratorLike, ImageLabelDatasetLike, MetricOptions], dict[str, float]]

SWD_PATCHES_PER_IMAGE = 128
SWD_MIN_RESOLUTION = 16

_REAL_DESCRIPTOR_CACHE: dict[tuple[object, ...], PatchDescriptors] = {}
"""Real-image descriptors per (dataset path, size, num_images, seed, patch settings)."""


def clear_metric_cache() -> None:
    """Forget cached real-image descriptors (e.g. after a dataset file changed in place)."""
    _REAL_DESCRIPTOR_CACHE.clear()


def _dataset_resolution(dataset: ImageLabelDatasetLike) -> int:
    resolution = getattr(dataset, "resolution", None)
    return int(resolution) if resolution is not None else int(torch.as_tensor(dataset[0][0]).shape[-1])


def _camera_label(dataset: ImageLabelDatasetLike, index: int) -> torch.Tensor:
    """[25] float32 label of item ``index``."""
    get_label = getattr(dataset, "get_label", None)  # spares decoding an image just for its pose
    label = get_label(index) if get_label is not None else dataset[index][1]
    return torch.as_tensor(label, dtype=torch.float32)


def real_indices(dataset_size: int, options: MetricOptions) -> torch.Tensor:
    """[num_images] int64: the dataset items a metric compares against (seeded by ``options.seed``).

    Distinct items when the dataset has enough of them, else drawn with replacement.
    """
    gen = torch.Generator().manual_seed(options.seed)
    if options.num_images <= dataset_size:
        return torch.randperm(dataset_size, generator=gen)[:options.num_images]
    return torch.randint(dataset_size, (options.num_images,), generator=gen)


def _dataset_labels(dataset: ImageLabelDatasetLike, poses) -> torch.Tensor | None:
    """All camera labels [L, 25] when the pose sampler reads them, else None."""
    if not POSE_SAMPLERS.cls_of(poses).reads_labels:
        return None
    return torch.stack([_camera_label(dataset, i) for i in range(len(dataset))])


def _real_batches(dataset: ImageLabelDatasetLike, options: MetricOptions) -> Iterator[torch.Tensor]:
    """``options.num_images`` random items as uint8 [B, 3, R, R] batches on ``options.device``.

    Items are distinct when the dataset has enough of them, else drawn with replacement.
    """
    for batch_indices in real_indices(len(dataset), options).split(options.batch):
        yield torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in batch_indices]).to(options.device)


def _fake_batches(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions,
                  resolution: int) -> Iterator[torch.Tensor]:
    """``options.num_images`` fakes as uint8 [B, 3, R, R] batches, rendered from the generator's
    pose sampler: random dataset poses (EG3D), or the method's prior (``models.poses``)."""
    # A stream of its own, so the fakes do not depend on whether the reals came from the cache.
    gen = torch.Generator().manual_seed(options.seed + 1)
    poses = pose_config(G)
    dataset_cameras = POSE_SAMPLERS.cls_of(poses).returns_labels  # any dataset camera, drawn below
    sampler = None if dataset_cameras else pose_sampler(poses, _dataset_labels(dataset, poses))
    for start in range(0, options.num_images, options.batch):
        count = min(options.batch, options.num_images - start)
        z = torch.randn(count, G.z_dim, generator=gen).to(options.device)
        if sampler is not None:
            c = sampler(count, generator=gen, device=options.device)
        else:
            pose_indices = torch.randint(len(dataset), (count,), generator=gen)
            c = torch.stack([_camera_label(dataset, int(i)) for i in pose_indices]).to(options.device)
        images = G(z, c, truncation_psi=options.truncation_psi, noise_mode="const")["image"]
        if images.shape[-2:] != (resolution, resolution):
            images = filtered_resizing(images.float(), resolution)
        # Quantise like the reals (EG3D's export rounding), so both sets share one encoding.
        yield (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def swd_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions) -> dict[str, float]:
    """SWD between ``options.num_images`` dataset images and as many fakes rendered from real poses.

    Images stream through in batches of ``options.batch``; only descriptors (num_images * 128 * 147
    floats per level and set) are kept. Real descriptors are cached when the dataset has a ``path``,
    so calling this every snapshot only renders and describes the fakes.
    Returns ``{"swd": mean, "swd/16": ..., "swd/32": ...}`` (x1e3, as in the original).
    """
    if options.num_images < 1 or options.batch < 1:
        raise ValueError(f"num_images and batch must be positive, got {options.num_images} and {options.batch}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    resolution = _dataset_resolution(dataset)
    describe = dict(patches_per_image=SWD_PATCHES_PER_IMAGE, seed=options.seed, min_resolution=SWD_MIN_RESOLUTION)
    path = getattr(dataset, "path", None)
    key = (str(path), len(dataset), resolution, options.num_images, options.seed, SWD_PATCHES_PER_IMAGE,
           SWD_MIN_RESOLUTION)

    real_desc = _REAL_DESCRIPTOR_CACHE.get(key) if path is not None else None
    if real_desc is None:
        real_desc = swd_descriptors(_real_batches(dataset, options), **describe)
        if path is not None:
            _REAL_DESCRIPTOR_CACHE[key] = real_desc
    fake_desc = swd_descriptors(_fake_batches(G, dataset, options, resolution), **describe)
    return swd_from_descriptors(real_desc, fake_desc, seed=options.seed).as_metrics("swd")
