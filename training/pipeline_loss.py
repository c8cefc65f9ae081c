"""The pipeline methods' strategy for the driver (:class:`training.loss.GANLoss`): how fakes and
reals are made and shown to D, over full images or patches, with an optionally growing
discriminator. The regularisers each method adds are the named terms of ``training.loss_terms``
(pose regression on fakes and reals, eikonal, minimal surface, EG3D's L1 density smoothness, top-k,
path length, NeRF path), read from :class:`PipelineLossConfig`; R1 and the phases are the driver's.

What this strategy does:

* blur fade of D's inputs (EpiGRAF);
* patch-wise training: fakes are rendered through patch cameras (GRAF, EpiGRAF) and D is told
  the patch (EpiGRAF's hyper-modulation);
* progressive growing: D sees images average-pooled to a resolution that doubles every
  ``progressive_level_kimg``, fading in over ``progressive_fade_kimg`` (pi-GAN, VolumeGAN, StyleNeRF);
  VolumeGAN's and StyleNeRF's StyleGAN upsampler grows with it, its newest block faded in;
* training density noise annealed per the generator's renderer config;
* StyleSDF's sphere initialisation of the SDF before a fresh run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.pipeline_discriminators import fade_downsample
from ops.camera import pack_label, unpack_label
from ops.patch_sampling import PatchParams, crop_real_patches, patch_intrinsics
from training.config import PipelineLossConfig
from training.loss import GANLoss, Schedule, gaussian_blur
from training.loss_terms import Fakes, Reals, Verdict, nerf_path, pose_regression, schedule_options, sdf_geometry


def schedule_value(start: float, fade_kimg: float, cur_nimg: float) -> float:
    """``start`` falling linearly to 0 over ``fade_kimg`` (constant when fade_kimg is 0)."""
    if fade_kimg <= 0:
        return start
    return start * max(1 - cur_nimg / (fade_kimg * 1e3), 0.0)


@dataclass(frozen=True)
class PipelineSchedule(Schedule):
    """EG3D's schedule fields plus the pipeline's."""

    density_noise: float = 0.0
    """Std of the training density noise."""
    d_resolution: int = 0
    """Resolution D sees (progressive growing)."""
    fade_alpha: float = 1.0
    """Fade-in weight of D's newest block."""
    topk: float = 1.0
    """Fraction of fakes kept in G's loss."""


class PipelineLoss(GANLoss):
    """The driver with the pipeline methods' strategy (see the module docstring).

    Args:
        G, D: the generator (a ``PipelineGenerator``) and a pipeline discriminator.
        config: loss settings.
        poses: the generator's ``models.poses.PoseSampler`` (pose targets of real images).
        autocast, grad_scale: as in ``GANLoss``.
    """

    def __init__(self, G: nn.Module, D: nn.Module, config: PipelineLossConfig, poses,
                 autocast: Callable[[], ContextManager] = nullcontext,
                 grad_scale: Callable[[str, torch.Tensor], torch.Tensor] | None = None):
        super().__init__(G, D, config, autocast, grad_scale, poses=poses)
        g = G.config
        self.patch_size = g.points.patch_size
        self.image_resolution = g.img_resolution
        self.pixel_grid = g.renderer.pixel_grid
        self.patches = g.patch_sampler(self.patch_size, self.image_resolution)

    @property
    def pl_mean(self) -> torch.Tensor:
        """The path-length term's running mean (0 without the term)."""
        term = self.term("path_length")
        return term.pl_mean if term is not None else torch.zeros([])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The terms' running statistics; ``pl_mean`` is always there (0 without the path-length
        term), so training states keep the format they had before the terms."""
        return {"pl_mean": self.pl_mean.detach().cpu(), **super().state_dict()}

    # --- schedules ------------------------------------------------------------------------

    def schedule(self, cur_nimg: float) -> PipelineSchedule:
        c, g = self.config, self.G.config
        d_res, alpha = self.d_input_resolution(cur_nimg)
        topk = self.term("top_k")
        topk = topk.fraction(cur_nimg) if topk is not None else 1.0
        return PipelineSchedule(
            blur_sigma=schedule_value(c.blur_init_sigma, c.blur_fade_kimg, cur_nimg), swapping_prob=None,
            neural_rendering_resolution=int(g.neural_rendering_resolution),
            density_noise=schedule_value(g.renderer.density_noise, g.renderer.density_noise_fade_kimg, cur_nimg),
            d_resolution=d_res, fade_alpha=alpha, topk=topk)

    def d_input_resolution(self, cur_nimg: float) -> tuple[int, float]:
        """(resolution, fade alpha) of D's inputs: the full image (or patch) size unless growing."""
        full = self.patch_size if self.patches.crops else self.image_resolution
        c = self.config
        if c.progressive_start <= 0 or c.progressive_level_kimg <= 0:
            return full, 1.0
        level = int(cur_nimg // (c.progressive_level_kimg * 1e3))
        resolution = min(c.progressive_start << level, full)
        if resolution == full and (c.progressive_start << level) > full:
            return full, 1.0
        into = cur_nimg - level * (c.progressive_level_kimg * 1e3)  # in images, so level ends are exact
        alpha = 1.0 if level == 0 or c.progressive_fade_kimg <= 0 else min(into / (c.progressive_fade_kimg * 1e3), 1.0)
        return resolution, alpha

    # --- forward helpers ----------------------------------------------------------------

    def sample_patches(self, n: int, cur_nimg: float, device) -> PatchParams | None:
        return self.patches.sample(n, cur_nimg, device)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, schedule: PipelineSchedule, cur_nimg: float,
              update_emas: bool = False, ws_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, PatchParams | None]:
        """Fakes seen from cameras c [N, 25]: (images [N, 3, S, S], ws, patches). S is the patch
        size in patch-wise training, else the image resolution. ``ws_grad``: the images are
        differentiable w.r.t. ws even when the mapping is frozen (path length)."""
        options = schedule_options(schedule)
        ws = self.mapping(z, c, update_emas)
        if ws_grad and not ws.requires_grad:
            ws.requires_grad_(True)
        patches = self.sample_patches(len(z), cur_nimg, z.device)
        if patches is None:
            growth = {}
            if self.config.progressive_generator:  # at full size with alpha 1 this is the plain image
                growth = {"max_resolution": schedule.d_resolution, "fade_alpha": schedule.fade_alpha}
            out = self.G.synthesis(ws, c, update_emas=update_emas, noise_mode="random", options=options, **growth)
            return out["image"], ws, None
        cam2world, intrinsics = unpack_label(c)
        c_patch = pack_label(cam2world, patch_intrinsics(intrinsics, patches))
        out = self.G.synthesis(ws, c_patch, neural_rendering_resolution=self.patch_size, update_emas=update_emas,
                               noise_mode="random", options=options)
        return out["image"], ws, patches

    def real_images(self, real_img: torch.Tensor, cur_nimg: float) -> tuple[torch.Tensor, PatchParams | None]:
        if real_img.shape[-1] != self.image_resolution:
            real_img = F.interpolate(real_img, size=self.image_resolution, mode="bilinear", antialias=True, align_corners=False)
        patches = self.sample_patches(len(real_img), cur_nimg, real_img.device)
        if patches is None:
            return real_img, None
        return crop_real_patches(real_img, patches, self.patch_size, grid=self.pixel_grid), patches

    def run_D(self, images: torch.Tensor, c: torch.Tensor, patches: PatchParams | None, schedule: PipelineSchedule):
        """D's output for images at full size seen from cameras c [N, 25] (used by pose-conditioned
        discriminators, c_dim > 0): pooled to D's current resolution, blurred."""
        while images.shape[-1] > schedule.d_resolution:
            images = fade_downsample(images)
        images = gaussian_blur(images, schedule.blur_sigma)
        return self.D(images, c, patch=None if patches is None else patches.as_tensor(), alpha=schedule.fade_alpha)

    def make_fakes(self, z: torch.Tensor, c: torch.Tensor, schedule: PipelineSchedule, cur_nimg: float,
                   update_emas: bool = False, ws_grad: bool = False) -> Fakes:
        images, ws, patches = self.run_G(z, c, schedule, cur_nimg, update_emas=update_emas, ws_grad=ws_grad)
        return Fakes(images, images, ws, patches)

    def make_reals(self, real_img: torch.Tensor, schedule: PipelineSchedule, cur_nimg: float,
                   requires_grad: bool) -> Reals:
        real, patches = self.real_images(real_img, cur_nimg)
        real = real.detach().requires_grad_(requires_grad)
        return Reals(real, [real], patches)

    def judge(self, shown: Fakes | Reals, c: torch.Tensor, schedule: PipelineSchedule,
              update_emas: bool = False) -> Verdict:
        out = self.run_D(shown.images, c, shown.patches, schedule)
        return Verdict(out.logits, out.pose)

    # --- the terms' computations, on this loss's generator and settings ---------------------

    def pose_loss(self, predicted: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        return pose_regression(predicted, labels, self.poses, self.config.pose_loss)

    def nerf_path_term(self, ws: torch.Tensor, c: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return nerf_path(self.G, ws, c, images, self.config.nerf_path_points)

    def geometry_terms(self, ws: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        return sdf_geometry(self.G, ws, c, self.config.geometry_points)
