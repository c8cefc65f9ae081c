"""The training objective of every method: one driver, :class:`GANLoss`, runs StyleGAN2's phases
(non-saturating logistic loss) and R1 for all of them; what a method adds is

* its named regulariser terms (``training.loss_terms``: pose, eikonal, minimal surface, path
  length, density, NeRF path, top-k, EG3D's density regulariser), built from its loss config and
  called by the driver in the passes they join;
* how it makes fakes and reals and shows them to D (a small strategy: the four methods
  ``schedule``, ``make_fakes``, ``make_reals`` and ``judge``). :class:`EG3DLoss` (here) is EG3D's:
  the pose-conditioned dual discriminator sees image and image_raw, blurred with a fading sigma,
  with generator pose conditioning (GPC) swapping poses with a fading probability.
  ``training.pipeline_loss.PipelineLoss`` is the other methods' (patches, progressive growing, blur).

Phases follow StyleGAN2's lazy regularisation: ``Gmain``, ``Greg`` (G's regularisers), ``Dmain``
and ``Dreg`` (R1); the loop multiplies a regulariser by its interval through ``gain`` and, when a
regulariser runs every step, calls the reg phase right after the main one.
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
from training.config import LossConfig, PipelineLossConfig
from training.loss_terms import Fakes, LossTerm, Reals, Step, Verdict, build_terms, sdf_sphere_initialization

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


class GANLoss:
    """Accumulates the gradients of one phase for one micro-batch: the phases, R1 and the terms.

    A method's strategy subclass defines ``schedule``, ``make_fakes``, ``make_reals`` and ``judge``.

    Args:
        G, D: the generator and discriminator.
        config: the method's loss config (its fields give R1, style mixing and the terms).
        autocast: returns the mixed-precision context for forward passes.
        grad_scale: for fp16, multiplies a loss before backward (GradScaler.scale); identity otherwise.
        poses: the generator's ``models.poses.PoseSampler`` (pose targets), where a term needs it.
    """

    gpc_reg_prob: float | None = None

    def __init__(self, G: nn.Module, D: nn.Module, config: LossConfig | PipelineLossConfig,
                 autocast: Callable[[], ContextManager] = nullcontext,
                 grad_scale: Callable[[str, torch.Tensor], torch.Tensor] | None = None, poses=None):
        self.G, self.D, self.config, self.poses = G, D, config, poses
        self.autocast = autocast
        self.grad_scale = grad_scale or (lambda phase, loss: loss)
        self.terms: list[LossTerm] = build_terms(config, G)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Registered names of the active terms, in the order they run."""
        return tuple(term.kind for term in self.terms)

    def term(self, kind: str) -> LossTerm | None:
        """The active term registered as ``kind``, or None."""
        return next((term for term in self.terms if term.kind == kind), None)

    # --- the method's strategy ----------------------------------------------------------------

    def schedule(self, cur_nimg: float) -> Schedule:
        raise NotImplementedError

    def make_fakes(self, z: torch.Tensor, c: torch.Tensor, schedule: Schedule, cur_nimg: float,
                   update_emas: bool = False, ws_grad: bool = False) -> Fakes:
        """Fakes for latents z [N, z_dim] seen from cameras c [N, 25]. ``ws_grad``: the images are
        differentiable w.r.t. ws even when the mapping is frozen (path length)."""
        raise NotImplementedError

    def make_reals(self, real_img: torch.Tensor, schedule: Schedule, cur_nimg: float, requires_grad: bool) -> Reals:
        """Real [N, 3, R, R] in [-1, 1] as D sees them (detached; requiring grad for R1)."""
        raise NotImplementedError

    def judge(self, shown: Fakes | Reals, c: torch.Tensor, schedule: Schedule, update_emas: bool = False) -> Verdict:
        """D's verdict on fakes or reals seen from cameras c [N, 25]."""
        raise NotImplementedError

    def mapping(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool) -> torch.Tensor:
        ws = self.G.mapping(z, c, update_emas=update_emas)
        return mix_styles(self.G, z, c, ws, self.config.style_mixing_prob)

    def initialize(self, log=print) -> None:
        """Before a fresh run: the SDF sphere prior when the config asks for it (StyleSDF, EG3D's SDF
        variant)."""
        sdf_sphere_initialization(self.G, getattr(self.config, "sdf_sphere_init_steps", 0), log)

    # --- running statistics ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The terms' running statistics (the path-length mean), saved in training states."""
        state: dict[str, torch.Tensor] = {}
        for term in self.terms:
            state.update(term.state_dict())
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for term in self.terms:
            term.load_state_dict(state)

    # --- phases -----------------------------------------------------------------------------------

    def add_terms(self, total: torch.Tensor, hook: str, step: Step) -> torch.Tensor:
        """``total`` plus every term's contribution to the pass ``hook`` (G_main, D_fake, D_real)."""
        for term in self.terms:
            value = getattr(term, hook)(step)
            if value is not None:
                total = total + value
        return total

    def accumulate_gradients(self, phase: str, real_img: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                             gen_c: torch.Tensor, gain: float, cur_nimg: float) -> dict[str, torch.Tensor]:
        """Backpropagate one phase's loss for one micro-batch; returns detached per-sample stats."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        schedule = self.schedule(cur_nimg)
        stats: dict[str, torch.Tensor] = {}
        step = Step(self, phase, schedule, gen_z, gen_c, real_c, cur_nimg, stats)

        if phase == "Gmain":
            with self.autocast():
                step.fakes = self.make_fakes(gen_z, gen_c, schedule, cur_nimg)
                step.verdict = self.judge(step.fakes, gen_c, schedule)
            logits = step.verdict.logits.float()
            loss_G = F.softplus(-logits)
            for term in self.terms:
                loss_G = term.select_G(loss_G, step)
            total = self.add_terms(loss_G.mean(), "G_main", step)
            self.grad_scale(phase, total.mul(gain)).backward()
            stats["loss/G"] = loss_G.detach()
            stats["scores/fake_G"] = logits.detach()

        elif phase == "Greg":
            for term in self.terms:  # each regulariser is backpropagated on its own
                value = term.G_reg(step)
                if value is not None:
                    self.grad_scale(phase, value.mul(gain)).backward()

        elif phase == "Dmain":
            with torch.no_grad(), self.autocast():
                step.fakes = self.make_fakes(gen_z, gen_c, schedule, cur_nimg, update_emas=True)
            with self.autocast():
                step.verdict = self.judge(step.fakes, gen_c, schedule, update_emas=True)
            logits = step.verdict.logits.float()
            loss_fake = F.softplus(logits)
            total = self.add_terms(loss_fake.mean(), "D_fake", step)
            self.grad_scale(phase, total.mul(gain)).backward()
            stats["loss/D_fake"] = loss_fake.detach()
            stats["scores/fake"] = logits.detach()

        if phase in ("Dmain", "Dreg"):
            with_r1 = phase == "Dreg"
            reals = self.make_reals(real_img, schedule, cur_nimg, requires_grad=with_r1)
            with self.autocast():
                step.fakes, step.verdict = None, self.judge(reals, real_c, schedule)
            logits = step.verdict.logits.float()
            loss = torch.zeros_like(logits)
            if phase == "Dmain":
                loss_real = F.softplus(-logits)
                loss = self.add_terms(loss + loss_real, "D_real", step)
                stats["loss/D_real"] = loss_real.detach()
                stats["scores/real"] = logits.detach()
            if with_r1:
                penalty = r1_penalty(logits, reals.r1_inputs, lambda x: self.grad_scale(phase, x))
                loss_r1 = penalty * (self.config.r1_gamma / 2)
                loss = loss + loss_r1.unsqueeze(1)
                stats["r1_penalty"] = penalty.detach()
                stats["loss/D_r1"] = loss_r1.detach()
            self.grad_scale(phase, loss.mean().mul(gain)).backward()
        return stats


class EG3DLoss(GANLoss):
    """EG3D's strategy: the dual discriminator sees the final image and the raw neural image (the
    reals' raw image is the real resized to the neural resolution), D's inputs are blurred with a
    fading sigma, and G is conditioned on a neighbour's pose with a fading probability (GPC). Its
    one term is EG3D's density regulariser (weights in the generator's ``rendering_kwargs``).

    Args: as :class:`GANLoss` (``config`` a :class:`LossConfig`; no pose sampler).
    """

    config: LossConfig

    @property
    def gpc_reg_prob(self) -> float | None:
        kwargs = self.G.rendering_kwargs
        if kwargs.get("c_gen_conditioning_zero", False):
            return None
        return kwargs.get("gpc_reg_prob", None)

    def schedule(self, cur_nimg: float) -> Schedule:
        return schedule_at(cur_nimg, self.config, self.gpc_reg_prob)

    def conditioning(self, c: torch.Tensor, swapping_prob: float | None, per_sample: bool = True) -> torch.Tensor:
        """GPC: G's conditioning pose is c, or (with ``swapping_prob``) a neighbour's pose."""
        if swapping_prob is None:
            return torch.zeros_like(c)
        swapped = torch.roll(c, 1, 0)
        draw_shape = (c.shape[0], 1) if per_sample else ()
        return torch.where(torch.rand(draw_shape, device=c.device) < swapping_prob, swapped, c)

    def make_fakes(self, z: torch.Tensor, c: torch.Tensor, schedule: Schedule, cur_nimg: float = 0,
                   update_emas: bool = False, ws_grad: bool = False) -> Fakes:
        ws = self.mapping(z, self.conditioning(c, schedule.swapping_prob), update_emas)
        if ws_grad and not ws.requires_grad:
            ws.requires_grad_(True)
        out = self.G.synthesis(ws, c, neural_rendering_resolution=schedule.neural_rendering_resolution,
                               update_emas=update_emas)
        return Fakes(out, out["image"], ws)

    def run_G(self, z: torch.Tensor, c: torch.Tensor, schedule: Schedule, update_emas: bool = False) -> dict[str, torch.Tensor]:
        """z [N, z_dim], render camera c [N, 25] -> {'image', 'image_raw', 'image_depth'}."""
        return self.make_fakes(z, c, schedule, update_emas=update_emas).images

    def run_D(self, images: dict[str, torch.Tensor], c: torch.Tensor, blur_sigma: float,
              update_emas: bool = False) -> torch.Tensor:
        """Logits [N, 1] for {'image' [N,3,R,R], 'image_raw' [N,3,r,r]} seen from cameras c."""
        images = {"image": gaussian_blur(images["image"], blur_sigma), "image_raw": images["image_raw"]}
        return self.D(images, c, update_emas=update_emas)

    def judge(self, shown: Fakes | Reals, c: torch.Tensor, schedule: Schedule, update_emas: bool = False) -> Verdict:
        return Verdict(self.run_D(shown.images, c, schedule.blur_sigma, update_emas=update_emas))

    def real_images(self, real_img: torch.Tensor, schedule: Schedule) -> dict[str, torch.Tensor]:
        """Real [N,3,R,R] in [-1, 1] -> {'image', 'image_raw'}: the raw target is the real image
        resized to the neural resolution (and blurred like D's inputs)."""
        raw = filtered_resizing(real_img, size=schedule.neural_rendering_resolution, filter_mode=self.config.filter_mode)
        if self.config.blur_raw_target:
            raw = gaussian_blur(raw, schedule.blur_sigma)
        return {"image": real_img, "image_raw": raw}

    def make_reals(self, real_img: torch.Tensor, schedule: Schedule, cur_nimg: float, requires_grad: bool) -> Reals:
        real = {k: v.detach().requires_grad_(requires_grad) for k, v in self.real_images(real_img, schedule).items()}
        r1_inputs = [real["image"], real["image_raw"]] if self.config.dual_discrimination else [real["image"]]
        return Reals(real, r1_inputs)
