"""The objective of the pipeline methods: non-saturating GAN loss with the regularisers each method
adds, over full images or patches, with an optionally growing discriminator.

Same phases and call shape as :class:`training.loss.EG3DLoss` (``Gmain``, ``Greg``, ``Dmain``,
``Dreg``; the loop runs regularisers lazily and passes their interval as ``gain``), so the
trainer drives both alike. What a method uses is set by :class:`PipelineLossConfig`:

* R1 on real images (gamma / 2), blur fade of D's inputs (EpiGRAF);
* pose regression by D's pose head on fakes (G and D) and optionally reals (pi-GAN, GRAM, StyleSDF);
* eikonal and minimal-surface terms on the SDF (StyleSDF stage 1);
* EG3D's L1 density smoothness (any density model);
* top-k generator loss (pi-GAN);
* StyleGAN2's path-length regulariser (VolumeGAN, StyleNeRF, StyleSDF stage 2);
* StyleNeRF's NeRF-path regulariser (volume-rendered RGB at random sub-pixel points against the
  upsampled image there);
* patch-wise training: fakes are rendered through patch cameras (GRAF, EpiGRAF) and D is told
  the patch (EpiGRAF's hyper-modulation);
* progressive growing: D sees images average-pooled to a resolution that doubles every
  ``progressive_level_kimg``, fading in over ``progressive_fade_kimg`` (pi-GAN, VolumeGAN, StyleNeRF);
  VolumeGAN's and StyleNeRF's StyleGAN upsampler grows with it, its newest block faded in;
* training density noise annealed per the generator's renderer config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.pipeline_discriminators import fade_downsample
from ops.camera import pack_label, rays_through, unpack_label
from ops.patch_sampling import PatchParams, crop_real_patches, patch_intrinsics
from ops.ray_sampling import ray_samples
from training.config import PipelineLossConfig
from training.loss import PHASES, Schedule, gaussian_blur, mix_styles, r1_penalty


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


class PipelineLoss:
    """Accumulates the gradients of one phase for one micro-batch (see the module docstring).

    Args:
        G, D: the generator (a ``PipelineGenerator``) and a pipeline discriminator.
        config: loss settings.
        poses: the generator's ``models.poses.PoseSampler`` (pose targets of real images).
        autocast, grad_scale: as in ``EG3DLoss``.
    """

    gpc_reg_prob = None

    def __init__(self, G: nn.Module, D: nn.Module, config: PipelineLossConfig, poses,
                 autocast: Callable[[], ContextManager] = nullcontext,
                 grad_scale: Callable[[str, torch.Tensor], torch.Tensor] | None = None):
        self.G, self.D, self.config, self.poses = G, D, config, poses
        self.autocast = autocast
        self.grad_scale = grad_scale or (lambda phase, loss: loss)
        g = G.config
        self.patch_size = g.points.patch_size
        self.image_resolution = g.img_resolution
        self.patches = g.patch_sampler(self.patch_size, self.image_resolution)
        self.pl_mean = torch.zeros([])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The running path-length mean (saved in training states, so a resumed run is exact)."""
        return {"pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pl_mean = torch.as_tensor(state["pl_mean"]).float()

    # --- schedules ------------------------------------------------------------------------

    def schedule(self, cur_nimg: float) -> PipelineSchedule:
        c, g = self.config, self.G.config
        d_res, alpha = self.d_input_resolution(cur_nimg)
        topk = c.topk_start
        if c.topk_interval_kimg > 0:
            topk = max(c.topk_start * c.topk_decay ** math.floor(cur_nimg / (c.topk_interval_kimg * 1e3)), c.topk_min)
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

    def mapping(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool) -> torch.Tensor:
        ws = self.G.mapping(z, c, update_emas=update_emas)
        return mix_styles(self.G, z, c, ws, self.config.style_mixing_prob)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, schedule: PipelineSchedule, cur_nimg: float,
              update_emas: bool = False, ws_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, PatchParams | None]:
        """Fakes seen from cameras c [N, 25]: (images [N, 3, S, S], ws, patches). S is the patch
        size in patch-wise training, else the image resolution. ``ws_grad``: the images are
        differentiable w.r.t. ws even when the mapping is frozen (path length)."""
        self.G.rendering_kwargs["density_noise"] = schedule.density_noise
        ws = self.mapping(z, c, update_emas)
        if ws_grad and not ws.requires_grad:
            ws.requires_grad_(True)
        patches = self.sample_patches(len(z), cur_nimg, z.device)
        if patches is None:
            growth = {}
            if self.config.progressive_generator:  # at full size with alpha 1 this is the plain image
                growth = {"max_resolution": schedule.d_resolution, "fade_alpha": schedule.fade_alpha}
            out = self.G.synthesis(ws, c, update_emas=update_emas, noise_mode="random", **growth)
            return out["image"], ws, None
        cam2world, intrinsics = unpack_label(c)
        c_patch = pack_label(cam2world, patch_intrinsics(intrinsics, patches))
        out = self.G.synthesis(ws, c_patch, neural_rendering_resolution=self.patch_size, update_emas=update_emas,
                               noise_mode="random")
        return out["image"], ws, patches

    def real_images(self, real_img: torch.Tensor, cur_nimg: float) -> tuple[torch.Tensor, PatchParams | None]:
        if real_img.shape[-1] != self.image_resolution:
            real_img = F.interpolate(real_img, size=self.image_resolution, mode="bilinear", antialias=True, align_corners=False)
        patches = self.sample_patches(len(real_img), cur_nimg, real_img.device)
        if patches is None:
            return real_img, None
        return crop_real_patches(real_img, patches, self.patch_size), patches

    def run_D(self, images: torch.Tensor, c: torch.Tensor, patches: PatchParams | None, schedule: PipelineSchedule):
        """D's output for images at full size seen from cameras c [N, 25] (used by pose-conditioned
        discriminators, c_dim > 0): pooled to D's current resolution, blurred."""
        while images.shape[-1] > schedule.d_resolution:
            images = fade_downsample(images)
        images = gaussian_blur(images, schedule.blur_sigma)
        return self.D(images, c, patch=None if patches is None else patches.as_tensor(), alpha=schedule.fade_alpha)

    def pose_loss(self, predicted: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
        if predicted is None:
            raise ValueError("pose loss is on but the discriminator has no pose head (pose_dim = 0)")
        target = self.poses.angles(labels).to(predicted)
        loss = F.smooth_l1_loss if self.config.pose_loss == "smooth_l1" else F.mse_loss
        return loss(predicted, target, reduction="none").mean(1, keepdim=True)

    def nerf_path_term(self, ws: torch.Tensor, c: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """StyleNeRF's NeRF-path regulariser: mean squared difference between the volume-rendered
        RGB (the first feature channels) at random sub-pixel points of the output image and the
        image bilinearly read there. The image is the target (detached): the term pulls the NeRF
        path towards what the upsampler shows, which keeps the upsampler from inventing geometry
        (methods.md gives the points and weight; which side carries the gradient is our reading)."""
        n, side = images.shape[0], self.config.nerf_path_points
        uv = torch.rand(n, side * side, 2, device=images.device)
        cam2world, intrinsics = unpack_label(c)
        origins, directions = rays_through(cam2world, intrinsics, uv)
        rendered = self.G.render_rays(self.G.planes(ws, noise_mode="random"), origins, directions).features[..., :3]
        grid = (uv * 2 - 1).unsqueeze(2).to(images.dtype)  # [N, M, 1, 2]
        target = F.grid_sample(images.detach(), grid, mode="bilinear", padding_mode="border",
                               align_corners=False)[..., 0].permute(0, 2, 1)
        return F.mse_loss(rendered.float(), target.float())

    def geometry_terms(self, ws: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eikonal and minimal-surface terms of the SDF where the renderer samples it, as StyleSDF
        takes them: the (jittered) samples of ``geometry_points`` rays through random points of
        each fake's image, cameras c [N, 25]."""
        uv = torch.rand(ws.shape[0], self.config.geometry_points, 2, device=ws.device)
        cam2world, intrinsics = unpack_label(c)
        origins, directions = rays_through(cam2world, intrinsics, uv)
        depths = self.G.sample_depths(origins, directions, int(self.G.rendering_kwargs["depth_resolution"]), jitter=True)
        points, directions = ray_samples(origins, directions, depths)
        points = points.detach().requires_grad_(True)
        sdf = self.G.sample_mixed(points, directions, ws)["sdf"]
        # The SDF is in the decoder's normalised units (points x coordinate_scale): so is its gradient.
        grad = torch.autograd.grad(sdf.sum(), points, create_graph=True)[0] / self.G.embedder.coordinate_scale
        return {"eikonal": (grad.norm(dim=-1) - 1).square().mean(),
                "minimal_surface": torch.exp(-100 * sdf.abs()).mean()}

    def initialize(self, log=print) -> None:
        """Before a fresh run: StyleSDF's sphere initialisation of the SDF, when configured.

        Fits d(x) to |x| - (far - near) / 4 at random box points for random latents (Adam, lr
        1e-3), so training starts from a closed surface instead of an arbitrary field. The SDF is in
        the decoder's normalised units (x coordinate_scale, as StyleSDF normalises its points), so
        StyleSDF's alpha of 0.1 is a sharp surface. methods.md gives the target, not the step
        count; ``sdf_sphere_init_steps`` sets it.
        """
        steps = self.config.sdf_sphere_init_steps
        if steps <= 0 or not self.G.renderer.sdf:
            return
        g = self.G.config
        radius = (float(g.points.far) - float(g.points.near)) / 4
        half = g.points.box_side / 2
        params = [p for p in self.G.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=1e-3)
        device = params[0].device
        for _ in range(steps):
            z = torch.randn(4, self.G.z_dim, device=device)
            ws = self.G.mapping(z, torch.zeros(4, self.G.c_dim, device=device))
            points = (torch.rand(4, 512, 3, device=device) * 2 - 1) * half
            sdf = self.G.sample_mixed(points, F.normalize(torch.randn_like(points), dim=-1), ws)["sdf"][..., 0]
            target = (points.norm(dim=-1) - radius) * self.G.embedder.coordinate_scale
            loss = F.mse_loss(sdf, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log(f"SDF sphere initialisation: {steps} steps, final mse {loss.item():.2e} (radius {radius:.3g})")

    # --- phases -------------------------------------------------------------------------

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: float) -> dict[str, torch.Tensor]:
        """Backpropagate one phase's loss for one micro-batch; returns detached per-sample stats."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        c = self.config
        schedule = self.schedule(cur_nimg)
        stats: dict[str, torch.Tensor] = {}

        if phase == "Gmain":
            with self.autocast():
                images, ws, patches = self.run_G(gen_z, gen_c, schedule, cur_nimg)
                out = self.run_D(images, gen_c, patches, schedule)
            logits = out.logits.float()
            loss_G = F.softplus(-logits)
            if schedule.topk < 1:
                keep = max(1, int(math.ceil(schedule.topk * len(logits))))
                loss_G = torch.topk(loss_G[:, 0], keep, largest=False).values[:, None]
            total = loss_G.mean()
            if c.pose_weight > 0:
                pose = self.pose_loss(out.pose, gen_c)
                total = total + c.pose_weight * pose.mean()
                stats["loss/G_pose"] = pose.detach()
            if c.nerf_path_weight > 0 and patches is None:
                nerf_path = self.nerf_path_term(ws, gen_c, images)
                total = total + c.nerf_path_weight * nerf_path
                stats["loss/G_nerf_path"] = nerf_path.detach().reshape(1)
            if c.eikonal_weight > 0 or c.minimal_surface_weight > 0:
                terms = self.geometry_terms(ws, gen_c)
                total = total + c.eikonal_weight * terms["eikonal"] + c.minimal_surface_weight * terms["minimal_surface"]
                stats["loss/G_eikonal"] = terms["eikonal"].detach().reshape(1)
                stats["loss/G_minimal_surface"] = terms["minimal_surface"].detach().reshape(1)
            self.grad_scale(phase, total.mul(gain)).backward()
            stats["loss/G"] = loss_G.detach()
            stats["scores/fake_G"] = logits.detach()

        elif phase == "Greg":
            if c.pl_weight > 0:
                count = max(len(gen_z) // c.pl_batch_shrink, 1)
                with self.autocast():
                    images, ws, _ = self.run_G(gen_z[:count], gen_c[:count], schedule, cur_nimg, ws_grad=True)
                noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
                grads = torch.autograd.grad(outputs=[(images * noise).sum()], inputs=[ws], create_graph=True)[0]
                lengths = grads.float().square().sum(2).mean(1).sqrt()
                self.pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(), c.pl_decay)
                penalty = (lengths - self.pl_mean).square()
                self.grad_scale(phase, (penalty * c.pl_weight).mean().mul(gain)).backward()
                stats["pl_penalty"] = penalty.detach()
                stats["loss/G_pl"] = (penalty * c.pl_weight).detach()
            if c.density_reg > 0:
                with self.autocast():
                    ws = self.mapping(gen_z, gen_c, False)
                    half = self.G.config.points.box_side / 2
                    initial = (torch.rand((ws.shape[0], 1000, 3), device=ws.device) * 2 - 1) * half
                    perturbed = initial + torch.randn_like(initial) * c.density_reg_p_dist * 2 * half
                    points = torch.cat([initial, perturbed], dim=1)
                    sigma = self.G.sample_mixed(points, F.normalize(torch.randn_like(points), dim=-1), ws)["sigma"].float()
                tv = F.l1_loss(sigma[:, :1000], sigma[:, 1000:]) * c.density_reg
                self.grad_scale(phase, tv.mul(gain)).backward()
                stats["loss/G_density_reg"] = tv.detach().reshape(1)

        elif phase == "Dmain":
            with torch.no_grad(), self.autocast():
                images, _, patches = self.run_G(gen_z, gen_c, schedule, cur_nimg, update_emas=True)
            with self.autocast():
                out = self.run_D(images, gen_c, patches, schedule)
            logits = out.logits.float()
            loss_fake = F.softplus(logits)
            total = loss_fake.mean()
            if c.pose_weight > 0:
                pose = self.pose_loss(out.pose, gen_c)
                total = total + c.pose_weight * pose.mean()
                stats["loss/D_pose"] = pose.detach()
            self.grad_scale(phase, total.mul(gain)).backward()
            stats["loss/D_fake"] = loss_fake.detach()
            stats["scores/fake"] = logits.detach()

        if phase in ("Dmain", "Dreg"):
            with_r1 = phase == "Dreg"
            real, patches = self.real_images(real_img, cur_nimg)
            real = real.detach().requires_grad_(with_r1)
            with self.autocast():
                out = self.run_D(real, real_c, patches, schedule)
            logits = out.logits.float()
            loss = torch.zeros_like(logits)
            if phase == "Dmain":
                loss_real = F.softplus(-logits)
                loss = loss + loss_real
                if c.real_pose_weight > 0:
                    loss = loss + c.real_pose_weight * self.pose_loss(out.pose, real_c)
                stats["loss/D_real"] = loss_real.detach()
                stats["scores/real"] = logits.detach()
            if with_r1:
                penalty = r1_penalty(logits, [real], lambda x: self.grad_scale(phase, x))
                loss_r1 = penalty * (c.r1_gamma / 2)
                loss = loss + loss_r1.unsqueeze(1)
                stats["r1_penalty"] = penalty.detach()
                stats["loss/D_r1"] = loss_r1.detach()
            self.grad_scale(phase, loss.mean().mul(gain)).backward()
        return stats
