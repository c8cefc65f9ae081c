"""Named loss terms: each regulariser a method adds to the GAN loss is one class, registered by name.

The driver (:class:`training.loss.GANLoss`) runs StyleGAN2's phases and R1 for every method; what a
method adds is its list of terms, read from its loss config by :func:`build_terms`. A term has a
typed ``Config`` (its weight and options) and implements the hooks of the passes it joins:

* ``select_G(loss_G, step)``: the per-sample G loss to keep (top-k);
* ``G_main(step)``: a weighted scalar added to G's loss on the fakes (pose, NeRF path, eikonal,
  minimal surface);
* ``G_reg(step)``: a weighted scalar the driver backpropagates on its own in ``Greg`` (path length,
  density smoothness);
* ``D_fake(step)``: a weighted scalar added to D's loss on the fakes (pose);
* ``D_real(step)``: a weighted per-sample [N, 1] loss added to D's loss on the reals (real pose).

Terms run in registration order (the order of this file), which fixes the order of their random
draws. Their configs are read from the flat :class:`LossConfig` / :class:`PipelineLossConfig` fields
named in ``fields`` (saved runs keep those names), and a term whose weight is 0 is not built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from models.registry import ComponentConfig, Registry
from models.scene import RenderOptions
from ops.camera import rays_through, unpack_label
from ops.patch_sampling import PatchParams
from ops.ray_sampling import ray_samples

# --- what the driver shows the terms -------------------------------------------------------------


@dataclass
class Fakes:
    """Generated images as a method shows them to D."""

    images: Any
    """D's input: a tensor [N, 3, S, S] (pipeline) or EG3D's {'image', 'image_raw'}."""
    image: torch.Tensor
    """The final image [N, 3, S, S]."""
    ws: torch.Tensor
    """The latents they were synthesised from."""
    patches: PatchParams | None = None
    """The patches they show (patch-wise training), else None."""


@dataclass
class Reals:
    """Real images as a method shows them to D."""

    images: Any
    """D's input (as :attr:`Fakes.images`), requiring grad when R1 runs."""
    r1_inputs: list[torch.Tensor]
    """The tensors R1 differentiates D's logits by."""
    patches: PatchParams | None = None


@dataclass
class Verdict:
    """D's output: logits [N, 1] and, for a D with a pose head, predicted angles [N, 2]."""

    logits: torch.Tensor
    pose: torch.Tensor | None = None


@dataclass
class Step:
    """One call of the driver's ``accumulate_gradients``, as the terms see it."""

    loss: Any
    """The driver (G, D, poses, mapping, autocast and the method's ``make_fakes``)."""
    phase: str
    schedule: Any
    gen_z: torch.Tensor
    gen_c: torch.Tensor
    real_c: torch.Tensor
    cur_nimg: float
    stats: dict[str, torch.Tensor]
    fakes: Fakes | None = None
    """The fakes of this pass (G main, D fake)."""
    verdict: Verdict | None = None
    """D's output on this pass's fakes (G main, D fake) or reals (D real)."""
    cache: dict[Any, Any] = field(default_factory=dict)

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A value several terms read in one pass, computed once (eikonal and minimal surface)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


# --- the registry --------------------------------------------------------------------------------


@dataclass
class TermConfig(ComponentConfig):
    """Base of every term's config."""


class LossTerm:
    """One named regulariser. Subclasses register with ``@LOSS_TERMS.register(name)`` and carry a
    nested ``Config(TermConfig)``; ``fields`` maps its fields to the loss config's."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type[TermConfig]] = TermConfig
    fields: ClassVar[dict[str, str]] = {}
    """Term config field -> flat loss config field it is read from."""

    def __init__(self, config: TermConfig):
        self.config = config

    @classmethod
    def config_from(cls, loss_config: Any, G: Any) -> TermConfig | None:
        """This term's config read from a method's loss config (None: that kind of config has no such term)."""
        if not cls.fields or not all(hasattr(loss_config, name) for name in cls.fields.values()):
            return None
        return cls.Config(**{key: getattr(loss_config, name) for key, name in cls.fields.items()})

    @property
    def active(self) -> bool:
        """Whether the term contributes (a zero weight switches it off)."""
        return self.config.weight > 0

    # Hooks (see the module docstring); None: the term does not join that pass.
    def select_G(self, loss_G: torch.Tensor, step: Step) -> torch.Tensor:
        return loss_G

    def G_main(self, step: Step) -> torch.Tensor | None:
        return None

    def G_reg(self, step: Step) -> torch.Tensor | None:
        return None

    def D_fake(self, step: Step) -> torch.Tensor | None:
        return None

    def D_real(self, step: Step) -> torch.Tensor | None:
        return None

    # Running statistics saved in training states (path length).
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


def build_terms(loss_config: Any, G: Any) -> list[LossTerm]:
    """The active terms of a method's loss config, in registration order."""
    terms = []
    for kind in LOSS_TERMS.kinds():
        cls = LOSS_TERMS.get(kind)
        config = cls.config_from(loss_config, G)
        if config is not None:
            term = cls(config)
            if term.active:
                terms.append(term)
    return terms


# --- computations the terms (and tests) share -----------------------------------------------------


def pose_regression(predicted: torch.Tensor | None, labels: torch.Tensor, poses: Any, loss: str) -> torch.Tensor:
    """Per-sample [N, 1] loss of D's predicted (yaw, elevation) against the angles of cameras
    ``labels`` [N, 25] (``poses``: the generator's pose sampler); ``loss``: 'mse' or 'smooth_l1'."""
    if predicted is None:
        raise ValueError("pose loss is on but the discriminator has no pose head (pose_dim = 0)")
    target = poses.angles(labels).to(predicted)
    fn = F.smooth_l1_loss if loss == "smooth_l1" else F.mse_loss
    return fn(predicted, target, reduction="none").mean(1, keepdim=True)


def schedule_options(schedule: Any) -> RenderOptions:
    """The render options of a training step: the scheduled density noise where the method fades
    one (None: the generator's own setting, as EG3D's recipe keeps it)."""
    return RenderOptions(density_noise=getattr(schedule, "density_noise", None))


def nerf_path(G: Any, ws: torch.Tensor, c: torch.Tensor, images: torch.Tensor, points: int,
              options: RenderOptions | None = None) -> torch.Tensor:
    """StyleNeRF's NeRF-path regulariser: mean squared difference between the volume-rendered
    RGB (the first feature channels) at random sub-pixel points of the output image and the
    image bilinearly read there. The image is the target (detached): the term pulls the NeRF
    path towards what the upsampler shows, which keeps the upsampler from inventing geometry
    (methods.md gives the points and weight; which side carries the gradient is our reading)."""
    n, side = images.shape[0], points
    uv = torch.rand(n, side * side, 2, device=images.device)
    cam2world, intrinsics = unpack_label(c)
    origins, directions = rays_through(cam2world, intrinsics, uv)
    rendered = G.render_rays(G.planes(ws, noise_mode="random"), origins, directions, options).features[..., :3]
    grid = (uv * 2 - 1).unsqueeze(2).to(images.dtype)  # [N, M, 1, 2]
    target = F.grid_sample(images.detach(), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)[..., 0].permute(0, 2, 1)
    return F.mse_loss(rendered.float(), target.float())


def sdf_geometry(G: Any, ws: torch.Tensor, c: torch.Tensor, points: int) -> dict[str, torch.Tensor]:
    """Eikonal and minimal-surface terms of the SDF where the renderer samples it, as StyleSDF
    takes them: the (jittered) samples of ``points`` rays through random points of each fake's
    image, cameras c [N, 25]."""
    uv = torch.rand(ws.shape[0], points, 2, device=ws.device)
    cam2world, intrinsics = unpack_label(c)
    origins, directions = rays_through(cam2world, intrinsics, uv)
    depths = G.sample_depths(origins, directions, int(G.rendering_kwargs["depth_resolution"]), jitter=True)
    samples, directions = ray_samples(origins, directions, depths)
    samples = samples.detach().requires_grad_(True)
    sdf = G.sample_mixed(samples, directions, ws)["sdf"]
    # The SDF is in the decoder's normalised units (points x coordinate_scale): so is its gradient.
    grad = torch.autograd.grad(sdf.sum(), samples, create_graph=True)[0] / G.embedder.coordinate_scale
    return {"eikonal": (grad.norm(dim=-1) - 1).square().mean(),
            "minimal_surface": torch.exp(-100 * sdf.abs()).mean()}


def sdf_sphere_initialization(G: Any, steps: int, log: Callable[[str], None] = print) -> None:
    """StyleSDF's sphere initialisation of an SDF generator before a fresh run (no-op for others).

    Fits d(x) to |x| - (far - near) / 4 at random box points for random latents (Adam, lr 1e-3,
    ``steps`` steps, latents conditioned on the frontal camera), so training starts from a closed
    surface instead of an arbitrary field. The SDF is in the decoder's normalised units
    (x coordinate_scale, as StyleSDF normalises its points), so StyleSDF's alpha of 0.1 is a sharp
    surface. methods.md gives the target, not the step count.
    """
    if steps <= 0 or not G.renderer.sdf:
        return
    g = G.config
    radius = (float(g.points.far) - float(g.points.near)) / 4
    half = g.points.box_side / 2
    params = [p for p in G.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    device = params[0].device
    for _ in range(steps):
        z = torch.randn(4, G.z_dim, device=device)
        # The frontal camera: a camera-conditioned mapping (EG3D) then fits the ws training renders.
        ws = G.mapping(z, G.default_camera(4, device=device))
        points = (torch.rand(4, 512, 3, device=device) * 2 - 1) * half
        sdf = G.sample_mixed(points, F.normalize(torch.randn_like(points), dim=-1), ws)["sdf"][..., 0]
        target = (points.norm(dim=-1) - radius) * G.embedder.coordinate_scale
        loss = F.mse_loss(sdf, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    log(f"SDF sphere initialisation: {steps} steps, final mse {loss.item():.2e} (radius {radius:.3g})")


# --- the terms (registration order is evaluation order) -------------------------------------------


@LOSS_TERMS.register("top_k")
class TopK(LossTerm):
    """pi-GAN's top-k: G's loss keeps only the best-scored fraction of the fakes, decaying in steps."""

    @dataclass
    class Config(TermConfig):
        start: float = 1.0
        """Fraction kept at the start (1 with no decay: off)."""
        min: float = 0.6
        """Floor of the fraction."""
        decay: float = 0.99
        """Factor applied every ``interval_kimg``."""
        interval_kimg: float = 0.0
        """kimg per decay step (0: no decay)."""

    fields = {"start": "topk_start", "min": "topk_min", "decay": "topk_decay", "interval_kimg": "topk_interval_kimg"}

    @property
    def active(self) -> bool:
        return self.config.start < 1 or self.config.interval_kimg > 0

    def fraction(self, cur_nimg: float) -> float:
        c = self.config
        if c.interval_kimg > 0:
            return max(c.start * c.decay ** math.floor(cur_nimg / (c.interval_kimg * 1e3)), c.min)
        return c.start

    def select_G(self, loss_G: torch.Tensor, step: Step) -> torch.Tensor:
        topk = step.schedule.topk
        if topk < 1:
            keep = max(1, int(math.ceil(topk * len(loss_G))))
            loss_G = torch.topk(loss_G[:, 0], keep, largest=False).values[:, None]
        return loss_G


@dataclass
class PoseConfig(TermConfig):
    weight: float = 0.0
    """Weight of the pose regression."""
    loss: str = "mse"
    """'mse' (pi-GAN, GRAM) or 'smooth_l1' (StyleSDF)."""


@LOSS_TERMS.register("pose")
class Pose(LossTerm):
    """D's pose head regresses the angles the fakes were rendered from, in G's and D's losses
    (pi-GAN, GRAM, StyleSDF)."""

    @dataclass
    class Config(PoseConfig):
        pass

    fields = {"weight": "pose_weight", "loss": "pose_loss"}

    def _loss(self, step: Step, key: str) -> torch.Tensor:
        pose = pose_regression(step.verdict.pose, step.gen_c, step.loss.poses, self.config.loss)
        step.stats[key] = pose.detach()
        return self.config.weight * pose.mean()

    def G_main(self, step: Step) -> torch.Tensor:
        return self._loss(step, "loss/G_pose")

    def D_fake(self, step: Step) -> torch.Tensor:
        return self._loss(step, "loss/D_pose")


@LOSS_TERMS.register("real_pose")
class RealPose(LossTerm):
    """Pose regression on the real images with their dataset poses, in D's loss (GRAM)."""

    @dataclass
    class Config(PoseConfig):
        pass

    fields = {"weight": "real_pose_weight", "loss": "pose_loss"}

    def D_real(self, step: Step) -> torch.Tensor:
        return self.config.weight * pose_regression(step.verdict.pose, step.real_c, step.loss.poses, self.config.loss)


@LOSS_TERMS.register("nerf_path")
class NerfPath(LossTerm):
    """StyleNeRF's NeRF-path regulariser on full-image fakes (see :func:`nerf_path`)."""

    @dataclass
    class Config(TermConfig):
        weight: float = 0.0
        points: int = 16
        """Points per image side (16 x 16 random sub-pixel locations)."""

    fields = {"weight": "nerf_path_weight", "points": "nerf_path_points"}

    def G_main(self, step: Step) -> torch.Tensor | None:
        fakes = step.fakes
        if fakes.patches is not None:
            return None
        value = nerf_path(step.loss.G, fakes.ws, step.gen_c, fakes.image, self.config.points,
                          schedule_options(step.schedule))
        step.stats["loss/G_nerf_path"] = value.detach().reshape(1)
        return self.config.weight * value


class _SDFGeometryTerm(LossTerm):
    """Eikonal and minimal surface read one evaluation of the SDF per pass (:func:`sdf_geometry`)."""

    quantity: ClassVar[str] = ""
    """Its entry of :func:`sdf_geometry`'s result."""

    @dataclass
    class Config(TermConfig):
        weight: float = 0.0
        """Weight in G's main loss."""
        points: int = 64
        """Rays per identity whose samples carry the term."""

    def G_main(self, step: Step) -> torch.Tensor:
        points = self.config.points
        terms = step.shared(("sdf_geometry", points), lambda: sdf_geometry(step.loss.G, step.fakes.ws, step.gen_c, points))
        step.stats[f"loss/G_{self.quantity}"] = terms[self.quantity].detach().reshape(1)
        return self.config.weight * terms[self.quantity]


@LOSS_TERMS.register("eikonal")
class Eikonal(_SDFGeometryTerm):
    """StyleSDF's eikonal term (|grad d| - 1)^2."""

    quantity = "eikonal"

    @dataclass
    class Config(_SDFGeometryTerm.Config):
        pass

    fields = {"weight": "eikonal_weight", "points": "geometry_points"}


@LOSS_TERMS.register("minimal_surface")
class MinimalSurface(_SDFGeometryTerm):
    """StyleSDF's minimal-surface term exp(-100 |d|)."""

    quantity = "minimal_surface"

    @dataclass
    class Config(_SDFGeometryTerm.Config):
        pass

    fields = {"weight": "minimal_surface_weight", "points": "geometry_points"}


@LOSS_TERMS.register("path_length")
class PathLength(LossTerm):
    """StyleGAN2's path-length regulariser, with its running mean length (saved in training states)."""

    @dataclass
    class Config(TermConfig):
        weight: float = 0.0
        decay: float = 0.01
        """Decay of the running mean path length."""
        batch_shrink: int = 2
        """The pass uses batch / this many samples."""

    fields = {"weight": "pl_weight", "decay": "pl_decay", "batch_shrink": "pl_batch_shrink"}

    def __init__(self, config: Config):
        super().__init__(config)
        self.pl_mean = torch.zeros([])

    def G_reg(self, step: Step) -> torch.Tensor:
        c, loss = self.config, step.loss
        count = max(len(step.gen_z) // c.batch_shrink, 1)
        with loss.autocast():
            fakes = loss.make_fakes(step.gen_z[:count], step.gen_c[:count], step.schedule, step.cur_nimg, ws_grad=True)
        ws, images = fakes.ws, fakes.image
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        grads = torch.autograd.grad(outputs=[(images * noise).sum()], inputs=[ws], create_graph=True)[0]
        lengths = grads.float().square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(), c.decay)
        penalty = (lengths - self.pl_mean).square()
        step.stats["pl_penalty"] = penalty.detach()
        step.stats["loss/G_pl"] = (penalty * c.weight).detach()
        return (penalty * c.weight).mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "pl_mean" in state:
            self.pl_mean = torch.as_tensor(state["pl_mean"]).float()


@LOSS_TERMS.register("density")
class Density(LossTerm):
    """EG3D's L1 density smoothness for any pipeline density model: sigma at random points of the
    scene box against sigma at perturbed copies."""

    @dataclass
    class Config(TermConfig):
        weight: float = 0.0
        p_dist: float = 0.004
        """Perturbation std of the pairs, in units of the scene box."""

    fields = {"weight": "density_reg", "p_dist": "density_reg_p_dist"}

    def G_reg(self, step: Step) -> torch.Tensor:
        loss, c = step.loss, self.config
        G = loss.G
        with loss.autocast():
            ws = loss.mapping(step.gen_z, step.gen_c, False)
            half = G.config.points.box_side / 2
            initial = (torch.rand((ws.shape[0], 1000, 3), device=ws.device) * 2 - 1) * half
            perturbed = initial + torch.randn_like(initial) * c.p_dist * 2 * half
            points = torch.cat([initial, perturbed], dim=1)
            directions = F.normalize(torch.randn_like(points), dim=-1)
            sigma = G.sample_mixed(points, directions, ws, options=schedule_options(step.schedule))["sigma"].float()
        tv = F.l1_loss(sigma[:, :1000], sigma[:, 1000:]) * c.weight
        step.stats["loss/G_density_reg"] = tv.detach().reshape(1)
        return tv


@LOSS_TERMS.register("eg3d_density")
class EG3DDensity(LossTerm):
    """EG3D's own density regulariser on the exact network (its weights live in the generator's
    ``rendering_kwargs``, as in the official code): one pose-swap decision for the batch, points in
    [-1, 1]^3 and unnormalised random directions."""

    @dataclass
    class Config(TermConfig):
        weight: float = 0.0
        """``density_reg``."""
        p_dist: float = 0.004
        """``density_reg_p_dist``."""
        reg_type: str = "l1"
        """``reg_type`` (only 'l1' is implemented, as in EG3D's loss)."""

    @classmethod
    def config_from(cls, loss_config: Any, G: Any) -> Config | None:
        # The weights live in the generator's rendering_kwargs, as in EG3D (PipelineConfig.extra
        # of an EG3D architecture); other generators have none, so the term is not built.
        kwargs = getattr(G, "rendering_kwargs", None) or {}
        return cls.Config(weight=float(kwargs.get("density_reg", 0)), p_dist=kwargs.get("density_reg_p_dist", 0.004),
                          reg_type=kwargs.get("reg_type", "l1"))

    @property
    def active(self) -> bool:
        return self.config.weight > 0 and self.config.reg_type == "l1"

    def G_reg(self, step: Step) -> torch.Tensor:
        loss = step.loss
        with loss.autocast():
            # EG3D draws one swap decision for the whole batch here.
            c_cond = loss.conditioning(step.gen_c, step.schedule.swapping_prob, per_sample=False)
            ws = loss.mapping(step.gen_z, c_cond, False)
            initial = torch.rand((ws.shape[0], 1000, 3), device=ws.device) * 2 - 1
            perturbed = initial + torch.randn_like(initial) * self.config.p_dist
            points = torch.cat([initial, perturbed], dim=1)
            sigma = loss.G.sample_mixed(points, torch.randn_like(points), ws, update_emas=False)["sigma"].float()
        sigma_initial, sigma_perturbed = sigma[:, : sigma.shape[1] // 2], sigma[:, sigma.shape[1] // 2 :]
        tv = F.l1_loss(sigma_initial, sigma_perturbed) * self.config.weight
        step.stats["loss/G_density_reg"] = tv.detach().reshape(1)
        return tv
