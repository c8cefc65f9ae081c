"""EG3D's training objective: non-saturating logistic GAN loss with a pose-conditioned dual
discriminator, lazy R1 on image and image_raw, blur fade, density regularisation and generator
pose conditioning (GPC) with a fading swapping probability.

Phases follow StyleGAN2's lazy regularisation: ``Gmain``, ``Greg`` (density), ``Dmain`` and
``Dreg`` (R1); the loop multiplies a regulariser by its interval through ``gain``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ops.resize import filtered_resizing
from ops.stylegan2 import filter2d
from training.config import LossConfig

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur [N, C, H, W] with EG3D's separable kernel exp2(-(x / sigma)^2), |x| <= floor(3 sigma)."""
    radius = math.floor(sigma * 3)
    if radius <= 0:
        return images
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return filter2d(images, taps / taps.sum())


def mix_styles(G: nn.Module, z: torch.Tensor, c: torch.Tensor, ws: torch.Tensor, prob: float) -> torch.Tensor:
    """StyleGAN2's style mixing: with probability ``prob``, the ws after a random cutoff come from
    another z (draws: the cutoff, then the coin, as the official code). ws [N, num_ws, w_dim]."""
    if prob > 0 and ws.shape[1] > 1:
        cutoff = int(torch.randint(1, ws.shape[1], ()).item())
        if torch.rand(()).item() < prob:
            ws[:, cutoff:] = G.mapping(torch.randn_like(z), c, update_emas=False)[:, cutoff:]
    return ws


def r1_penalty(logits: torch.Tensor, inputs: list[torch.Tensor],
               scale: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
    """Per-sample R1 penalty [N]: the squared norm of d(sum of logits)/d(inputs), summed over the
    inputs, with a graph for the backward. ``scale`` is the fp16 loss scale (applied to the logits
    and taken out of the gradients)."""
    grads = torch.autograd.grad(outputs=[scale(logits.sum())], inputs=inputs, create_graph=True, only_inputs=True)
    unscale = scale(torch.ones((), device=logits.device))
    return sum((g.float() / unscale).square().sum(dim=[1, 2, 3]) for g in grads)


@dataclass(frozen=True)
class Schedule:
    """Values that change with the number of images shown."""

    blur_sigma: float
    """Std of the blur applied to D's inputs."""
    swapping_prob: float | None
    """Probability of conditioning G on another sample's pose (None: GPC off, c zeroed)."""
    neural_rendering_resolution: int
    """Resolution of the volume-rendered image."""


def schedule_at(cur_nimg: float, loss: LossConfig, gpc_reg_prob: float | None) -> Schedule:
    """EG3D's schedules at ``cur_nimg`` images."""
    blur_sigma = 0.0
    if loss.blur_fade_kimg > 0:
        blur_sigma = max(1 - cur_nimg / (loss.blur_fade_kimg * 1e3), 0) * loss.blur_init_sigma
    swapping_prob = None
    if gpc_reg_prob is not None:
        alpha = min(cur_nimg / (loss.gpc_reg_fade_kimg * 1e3), 1) if loss.gpc_reg_fade_kimg > 0 else 1
        swapping_prob = (1 - alpha) * 1 + alpha * gpc_reg_prob
    resolution = loss.neural_rendering_resolution_initial
    if loss.neural_rendering_resolution_final is not None:
        alpha = min(cur_nimg / (loss.neural_rendering_resolution_fade_kimg * 1e3), 1)
        resolution = int(np.rint(resolution * (1 - alpha) + loss.neural_rendering_resolution_final * alpha))
    return Schedule(blur_sigma, swapping_prob, int(resolution))


class EG3DLoss:
    """Accumulates the gradients of one phase for one micro-batch.

    Args:
        G, D: the (possibly DDP-synchronised) generator and dual discriminator.
        config: loss settings.
        autocast: returns the mixed-precision context for forward passes.
        grad_scale: for fp16, multiplies a loss before backward (GradScaler.scale); identity otherwise.
    """

    def __init__(self, G: nn.Module, D: nn.Module, config: LossConfig,
                 autocast: Callable[[], ContextManager] = nullcontext,
                 grad_scale: Callable[[str, torch.Tensor], torch.Tensor] | None = None):
        self.G, self.D, self.config = G, D, config
        self.autocast = autocast
        self.grad_scale = grad_scale or (lambda phase, loss: loss)

    @property
    def gpc_reg_prob(self) -> float | None:
        kwargs = self.G.rendering_kwargs
        if kwargs.get("c_gen_conditioning_zero", False):
            return None
        return kwargs.get("gpc_reg_prob", None)

    def schedule(self, cur_nimg: float) -> Schedule:
        return schedule_at(cur_nimg, self.config, self.gpc_reg_prob)

    def initialize(self, log=print) -> None:
        """Before a fresh run: nothing to do for EG3D (the pipeline's loss may fit an SDF prior)."""

    def state_dict(self) -> dict:
        """EG3D's loss keeps no running statistics."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # --- forward helpers --------------------------------------------------------------------

    def conditioning(self, c: torch.Tensor, swapping_prob: float | None, per_sample: bool = True) -> torch.Tensor:
        """GPC: G's conditioning pose is c, or (with ``swapping_prob``) a neighbour's pose."""
        if swapping_prob is None:
            return torch.zeros_like(c)
        swapped = torch.roll(c, 1, 0)
        draw_shape = (c.shape[0], 1) if per_sample else ()
        return torch.where(torch.rand(draw_shape, device=c.device) < swapping_prob, swapped, c)

    def mapping(self, z: torch.Tensor, c_cond: torch.Tensor, update_emas: bool) -> torch.Tensor:
        ws = self.G.mapping(z, c_cond, update_emas=update_emas)
        return mix_styles(self.G, z, c_cond, ws, self.config.style_mixing_prob)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, schedule: Schedule, update_emas: bool = False) -> dict[str, torch.Tensor]:
        """z [N, z_dim], render camera c [N, 25] -> {'image', 'image_raw', 'image_depth'}."""
        ws = self.mapping(z, self.conditioning(c, schedule.swapping_prob), update_emas)
        return self.G.synthesis(ws, c, neural_rendering_resolution=schedule.neural_rendering_resolution,
                                update_emas=update_emas)

    def run_D(self, images: dict[str, torch.Tensor], c: torch.Tensor, blur_sigma: float,
              update_emas: bool = False) -> torch.Tensor:
        """Logits [N, 1] for {'image' [N,3,R,R], 'image_raw' [N,3,r,r]} seen from cameras c."""
        images = {"image": gaussian_blur(images["image"], blur_sigma), "image_raw": images["image_raw"]}
        return self.D(images, c, update_emas=update_emas)

    def real_images(self, real_img: torch.Tensor, schedule: Schedule) -> dict[str, torch.Tensor]:
        """Real [N,3,R,R] in [-1, 1] -> {'image', 'image_raw'}: the raw target is the real image
        resized to the neural resolution (and blurred like D's inputs)."""
        raw = filtered_resizing(real_img, size=schedule.neural_rendering_resolution, filter_mode=self.config.filter_mode)
        if self.config.blur_raw_target:
            raw = gaussian_blur(raw, schedule.blur_sigma)
        return {"image": real_img, "image_raw": raw}

    # --- phases -----------------------------------------------------------------------------

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: float) -> dict[str, torch.Tensor]:
        """Backpropagate one phase's loss for one micro-batch; returns detached per-sample stats."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        schedule = self.schedule(cur_nimg)
        stats: dict[str, torch.Tensor] = {}

        if phase == "Gmain":
            with self.autocast():
                gen = self.run_G(gen_z, gen_c, schedule)
                gen_logits = self.run_D(gen, gen_c, schedule.blur_sigma).float()
            loss_G = F.softplus(-gen_logits)
            self.grad_scale(phase, loss_G.mean().mul(gain)).backward()
            stats["loss/G"] = loss_G.detach()
            stats["scores/fake_G"] = gen_logits.detach()

        elif phase == "Greg":
            density_reg = float(self.G.rendering_kwargs.get("density_reg", 0))
            if density_reg > 0 and self.G.rendering_kwargs.get("reg_type", "l1") == "l1":
                with self.autocast():
                    # EG3D draws one swap decision for the whole batch here.
                    ws = self.mapping(gen_z, self.conditioning(gen_c, schedule.swapping_prob, per_sample=False), False)
                    initial = torch.rand((ws.shape[0], 1000, 3), device=ws.device) * 2 - 1
                    perturbed = initial + torch.randn_like(initial) * self.G.rendering_kwargs["density_reg_p_dist"]
                    points = torch.cat([initial, perturbed], dim=1)
                    sigma = self.G.sample_mixed(points, torch.randn_like(points), ws, update_emas=False)["sigma"].float()
                sigma_initial, sigma_perturbed = sigma[:, : sigma.shape[1] // 2], sigma[:, sigma.shape[1] // 2 :]
                tv = F.l1_loss(sigma_initial, sigma_perturbed) * density_reg
                self.grad_scale(phase, tv.mul(gain)).backward()
                stats["loss/G_density_reg"] = tv.detach().reshape(1)

        elif phase == "Dmain":
            with torch.no_grad(), self.autocast():
                gen = self.run_G(gen_z, gen_c, schedule, update_emas=True)
            with self.autocast():
                gen_logits = self.run_D(gen, gen_c, schedule.blur_sigma, update_emas=True).float()
            loss_fake = F.softplus(gen_logits)
            self.grad_scale(phase, loss_fake.mean().mul(gain)).backward()
            stats["loss/D_fake"] = loss_fake.detach()
            stats["scores/fake"] = gen_logits.detach()

        if phase in ("Dmain", "Dreg"):
            with_r1 = phase == "Dreg"
            real = self.real_images(real_img, schedule)
            real = {k: v.detach().requires_grad_(with_r1) for k, v in real.items()}
            with self.autocast():
                real_logits = self.run_D(real, real_c, schedule.blur_sigma).float()
            loss = torch.zeros_like(real_logits)
            if phase == "Dmain":
                loss_real = F.softplus(-real_logits)
                loss = loss + loss_real
                stats["loss/D_real"] = loss_real.detach()
                stats["scores/real"] = real_logits.detach()
            if with_r1:
                inputs = [real["image"], real["image_raw"]] if self.config.dual_discrimination else [real["image"]]
                penalty = r1_penalty(real_logits, inputs, lambda x: self.grad_scale(phase, x))
                loss_r1 = penalty * (self.config.r1_gamma / 2)
                loss = loss + loss_r1.unsqueeze(1)
                stats["r1_penalty"] = penalty.detach()
                stats["loss/D_r1"] = loss_r1.detach()
            self.grad_scale(phase, loss.mean().mul(gain)).backward()
        return stats
