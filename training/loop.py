"""The training loop: EG3D's recipe, data-parallel over torchrun, killable and resumable at any time.

:class:`Trainer` owns the networks, optimisers and one optimisation step (usable on its own by the
benchmark). :func:`fit` adds data loading, the run directory, logs, snapshots, samples, metrics and
resume. Rank 0 writes every file; all writes are atomic and ``latest`` is written last.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.build import build_generator
from models.checkpoint import atomic_output, atomic_write_bytes, load_generator, save_generator
from models.errors import CheckpointError, one_line
from models.methods.eg3d import official_to_pipeline_names
from models.pipeline_discriminators import DISCRIMINATORS
from models.poses import pose_config, pose_sampler
from renderers.preview import render_grid
from training import run_dir as rundir
from training.config import LossConfig, PipelineLossConfig, TrainConfig, apply_overrides
from training.dataset import ImageLabelDataset, InfiniteSampler, dataset_focal, encode_png
from training.distributed import (
    DistributedContext,
    all_reduce_gradients,
    all_reduce_mean,
    barrier,
    broadcast_module,
)
from training.loss import EG3DLoss
from training.pipeline_loss import PipelineLoss

STATE_FORMAT = "3dgan-studio/training-state"
STATE_VERSION = 1
KEEP_STATES = 2
"""Training states kept on disk (older ones are deleted once a newer one is complete)."""


LOSS_STRATEGIES = {LossConfig: EG3DLoss, PipelineLossConfig: PipelineLoss}
"""The loss strategy of each loss config type (EG3D's dual-D recipe, or the pipeline methods')."""


@dataclass
class Phase:
    """One optimisation phase of StyleGAN2's lazy-regularisation schedule."""

    name: str
    """Gmain, Greg, Dmain or Dreg."""
    module: nn.Module
    """Network whose parameters this phase updates."""
    opt: torch.optim.Optimizer
    """That network's optimiser (shared by its main and reg phases)."""
    interval: int
    """Run every this many steps; also the loss gain."""
    losses: tuple[str, ...] = ()
    """Loss phases accumulated before this phase's one optimiser step (default: its own name);
    a regulariser run every step joins its main phase, as in pi-GAN and GRAM."""

    def __post_init__(self):
        self.losses = self.losses or (self.name,)


class DynamicLossScale:
    """fp16 loss scaling that stays identical on every rank: the overflow check runs on gradients
    after the all-reduce, which are the same everywhere."""

    def __init__(self, enabled: bool, init_scale: float = 2.0**15, growth_interval: int = 1000):
        self.enabled = enabled
        self.scale = init_scale if enabled else 1.0
        self.growth_interval = growth_interval
        self.good_steps = 0

    def unscale_and_check(self, params: list[nn.Parameter]) -> bool:
        """Divide grads by the scale; False (skip the step) when they overflowed."""
        if not self.enabled:
            return True
        grads = [p.grad for p in params if p.grad is not None]
        finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True
        if not finite:
            self.scale /= 2
            self.good_steps = 0
            return False
        for g in grads:
            g.div_(self.scale)
        self.good_steps += 1
        if self.good_steps % self.growth_interval == 0:
            self.scale *= 2
        return True

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])


class Trainer:
    """Networks, optimisers and one training step on one rank: EG3D's recipe, or a pipeline
    method's (its loss, discriminator and pose sampler).

    Args:
        config: the resolved training config.
        ctx: this rank's place in the job.
        pose_labels: [L, 25] camera labels of the training set; the generator's pose sampler draws
            fake cameras from them (EG3D, EpiGRAF) or from its prior.
        init: load ``config.init``'s weights into G (off when a training state follows).
    """

    def __init__(self, config: TrainConfig, ctx: DistributedContext, pose_labels: np.ndarray, init: bool = True):
        config.validate()
        self.config, self.ctx = config, ctx
        device = ctx.device
        self.pose_labels = torch.as_tensor(np.asarray(pose_labels, dtype=np.float32), device=device)
        if self.pose_labels.ndim != 2 or self.pose_labels.shape[1] != config.generator.c_dim:
            raise ValueError(f"pose labels have shape {tuple(self.pose_labels.shape)}; the generator needs "
                             f"[N, {config.generator.c_dim}] camera labels")

        # Identical initialisation on every rank (then broadcast, in case of non-determinism).
        torch.manual_seed(config.seed)
        self.G = build_generator(config.generator).train().requires_grad_(False).to(device)
        if config.init and init:
            self.init_from(config.init)
        self.D = DISCRIMINATORS.build(config.discriminator).train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        broadcast_module(self.G, ctx.world_size)
        broadcast_module(self.D, ctx.world_size)
        self.G_ema.load_state_dict(self.G.state_dict())
        # Data-dependent randomness differs per rank.
        torch.manual_seed(config.seed * ctx.world_size + ctx.rank)

        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
        self.autocast: Callable[[], Any] = (
            (lambda: torch.autocast(device_type=device.type, dtype=amp_dtype)) if amp_dtype is not None else nullcontext)
        self.loss_scales = {"G": DynamicLossScale(config.amp == "fp16"), "D": DynamicLossScale(config.amp == "fp16")}
        self.poses = pose_sampler(pose_config(self.G), self.pose_labels)
        grad_scale = lambda phase, x: x * self.loss_scales[phase[0]].scale  # noqa: E731
        strategy = LOSS_STRATEGIES[type(config.loss)]
        self.loss = strategy(self.G, self.D, config.loss, autocast=self.autocast, grad_scale=grad_scale, poses=self.poses)

        self.phases: list[Phase] = []
        optim = config.optim
        for name, module, lr, reg_interval in (("G", self.G, optim.g_lr, optim.g_reg_interval),
                                               ("D", self.D, optim.d_lr, optim.d_reg_interval)):
            # Lazy regularisation: the regulariser runs every k steps, so the main phase's Adam
            # hyper-parameters are corrected to keep the overall step size (StyleGAN2 App. B).
            # Interval 1 is not lazy: the regulariser joins the main step, with no correction.
            ratio = reg_interval / (reg_interval + 1) if reg_interval > 1 else 1.0
            if optim.optimizer == "rmsprop":
                opt = torch.optim.RMSprop(module.parameters(), lr=lr * ratio, alpha=0.99, eps=optim.eps)
            else:
                opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=tuple(b**ratio for b in optim.betas),
                                       eps=optim.eps)
            self.phases.append(Phase(f"{name}main", module, opt, 1,
                                     (f"{name}main", f"{name}reg") if reg_interval == 1 else ()))
            if reg_interval > 1:
                self.phases.append(Phase(f"{name}reg", module, opt, reg_interval))
        self.opt_G = self.phases[0].opt
        self.opt_D = next(p.opt for p in self.phases if p.name == "Dmain")

        self.cur_nimg = 0
        self.batch_idx = 0

    def initialize(self, log: Callable[[str], None] = print) -> None:
        """Method-specific preparation of a fresh run (StyleSDF's sphere prior); G_ema follows G.
        Every rank runs it from the same seed, so the networks stay identical."""
        self.G.requires_grad_(True)
        self.loss.initialize(log)
        self.G.requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())

    # --- one step ----------------------------------------------------------------------------

    @property
    def batch_per_rank(self) -> int:
        return self.config.batch // self.ctx.world_size

    def sample_poses(self, n: int) -> torch.Tensor:
        """[n, 25] camera labels from the generator's pose sampler (EG3D: random training images)."""
        return self.poses(n, device=self.ctx.device)

    def init_from(self, path: str) -> None:
        """Start G from a snapshot's weights where names and shapes match (StyleSDF stage 2 starts
        from stage 1; the new upsampler keeps its initialisation)."""
        source = load_generator(path).state_dict()
        own = self.G.state_dict()
        matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        if not matched:
            raise CheckpointError(Path(path), "no tensor of this snapshot fits the generator being trained")
        with torch.no_grad():
            for key, value in matched.items():
                own[key].copy_(value)

    def step(self, real_img: torch.Tensor, real_c: torch.Tensor) -> dict[str, list[float]]:
        """One optimisation step on this rank's share of the batch.

        Args:
            real_img: [B, 3, R, R] uint8 (B = batch / world size).
            real_c: [B, 25] camera labels of the real images.
        Returns:
            per-sample statistics of this rank ('loss/G', 'scores/real', ...) as detached 1-D
            tensors on the device; they are read once per tick, so a step never waits for the GPU.
        """
        config, device = self.config, self.ctx.device
        batch = self.batch_per_rank
        if real_img.shape[0] != batch:
            raise ValueError(f"step got {real_img.shape[0]} real images; expected {batch} per rank")
        rounds = batch // config.batch_per_gpu
        real_imgs = (real_img.to(device, non_blocking=True).float() / 127.5 - 1).split(config.batch_per_gpu)
        real_cs = real_c.to(device, non_blocking=True).float().split(config.batch_per_gpu)
        stats: dict[str, list[torch.Tensor]] = {}

        for phase in self.phases:
            if self.batch_idx % phase.interval != 0:
                continue
            gen_z = torch.randn([batch, self.G.z_dim], device=device).split(config.batch_per_gpu)
            gen_c = self.sample_poses(batch).split(config.batch_per_gpu)
            phase.module.requires_grad_(True)
            phase.opt.zero_grad(set_to_none=True)
            for r_img, r_c, g_z, g_c in zip(real_imgs, real_cs, gen_z, gen_c):
                for loss_phase in phase.losses:
                    # Dividing by the rounds makes --batch-gpu a memory knob that leaves the maths alone.
                    out = self.loss.accumulate_gradients(loss_phase, r_img, r_c, g_z, g_c,
                                                         gain=phase.interval / rounds, cur_nimg=self.cur_nimg)
                    for key, value in out.items():
                        stats.setdefault(key, []).append(value.float().flatten())
            phase.module.requires_grad_(False)
            params = [p for p in phase.module.parameters() if p.grad is not None]
            all_reduce_gradients(params, self.ctx.world_size)
            if self.loss_scales[phase.name[0]].unscale_and_check(params):
                if config.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
                phase.opt.step()

        self.update_ema()
        self.cur_nimg += config.batch
        self.batch_idx += 1
        return stats

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- lerp(G, G_ema, beta) with EG3D's half-life and ramp-up."""
        config = self.config
        ema_nimg = config.ema_half_life_kimg * 1000
        if config.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * config.ema_rampup)
        beta = 0.5 ** (config.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        self.G_ema.neural_rendering_resolution = self.loss.schedule(self.cur_nimg).neural_rendering_resolution

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and counters; fit adds every rank's RNG (gather_rng_states) and
        the loop's position before saving."""
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": json.dumps(self.config.to_dict()),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "loss_scale_G": self.loss_scales["G"].state_dict(),
            "loss_scale_D": self.loss_scales["D"].state_dict(),
            "loss": self.loss.state_dict(),
            "cur_nimg": self.cur_nimg,
            "batch_idx": self.batch_idx,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = upgrade_official_names(state, self.G)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.loss_scales["G"].load_state_dict(state["loss_scale_G"])
        self.loss_scales["D"].load_state_dict(state["loss_scale_D"])
        if state.get("loss"):  # running loss statistics (path length); states before them have none
            self.loss.load_state_dict(state["loss"])
        self.cur_nimg = int(state["cur_nimg"])
        self.batch_idx = int(state["batch_idx"])
        self.G_ema.neural_rendering_resolution = self.loss.schedule(self.cur_nimg).neural_rendering_resolution


# --- RNG ------------------------------------------------------------------------------------------

def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


@contextlib.contextmanager
def preserve_rng(device: torch.device) -> Iterator[None]:
    """Run a block (samples, metrics) without disturbing the training RNG streams, so a resumed
    run continues exactly like an uninterrupted one."""
    saved = rng_state(device)
    try:
        yield
    finally:
        set_rng_state(saved, device)


def gather_rng_states(ctx: DistributedContext) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG state, on every rank (so rank 0 can save them all)."""
    mine = rng_state(ctx.device)
    if not ctx.distributed:
        return [mine]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, mine)
    return gathered


# --- state files ------------------------------------------------------------------------------

def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save into a temp file, then rename (see models.checkpoint.atomic_output)."""
    with atomic_output(path) as f:
        torch.save(state, f)


def upgrade_official_names(state: dict[str, Any], G: nn.Module) -> dict[str, Any]:
    """A training state written before EG3D joined the pipeline generator, made current: its G and
    G_ema carry EG3D's official parameter names (renamed by ``models.methods.eg3d``), and Adam's
    per-parameter state follows the official parameter order (re-indexed to G's order)."""
    if not any(name.startswith("backbone.") for name in state["G"]):
        return state
    old_order = [official_to_pipeline_names({name: None}).popitem()[0] for name in state["G"]]
    new_order = [name for name, _ in G.named_parameters()]
    position = {name: i for i, name in enumerate(new_order)}
    old_params = [name for name in old_order if name in position]  # parameters, in the old order
    if sorted(old_params) != sorted(new_order):
        raise ValueError("the training state's generator parameters do not match this generator")
    opt = dict(state["opt_G"])
    opt["state"] = {position[old_params[int(i)]]: value for i, value in opt["state"].items()}
    return {**state, "G": official_to_pipeline_names(state["G"]), "G_ema": official_to_pipeline_names(state["G_ema"]),
            "opt_G": opt}


def _torch_load_reason(error: Exception) -> str:
    """The line of a ``torch.load`` error that says what is wrong, without torch's advice to retry
    with ``weights_only=False`` (which would run code from a hostile file)."""
    advice = ("weights only load failed", "weights_only", "trusted source", "check the documentation")
    lines = [one_line(line) for line in str(error).splitlines()]
    useful = [line for line in lines if line and not any(a in line.lower() for a in advice)]
    return useful[0] if useful else type(error).__name__


def load_training_state(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a training state with ``weights_only=True``: tensors and plain containers only, never code.

    Raises:
        CheckpointError: naming the file, when it is missing, truncated, foreign or from another version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such training state")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or hostile files
        reason = _torch_load_reason(e)
        if "GLOBAL" in reason:
            raise CheckpointError(path, f"refused: {reason} (a training state holds tensors and plain containers "
                                        "only; it is never loaded with code execution)") from None
        raise CheckpointError(path, f"not a readable training state (truncated or corrupt): {reason}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(path, "not a 3D-GAN Studio training state")
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(path, f"training state version {state.get('version')!r}; this build reads {STATE_VERSION}")
    return state


# --- images ----------------------------------------------------------------------------------------

def reals_grid(dataset, columns: int, rows: int) -> np.ndarray:
    """[rows * R, columns * R, 3] uint8 grid of the first training images."""
    count = min(len(dataset), rows * columns)
    images = [dataset[i][0].permute(1, 2, 0).numpy() for i in range(count)]
    res = images[0].shape[0]
    grid = np.zeros((rows * res, columns * res, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * res : (r + 1) * res, c * res : (c + 1) * res] = image
    return grid


def memory_gb(device: torch.device) -> tuple[float | None, float]:
    """(peak GPU memory allocated, peak process RSS) in GiB."""
    gpu = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return gpu, rss_kib / 2**20


# --- fit --------------------------------------------------------------------------------------------

@dataclass
class ResumePoint:
    run_dir: Path
    state_path: Path


def resolve_resume(resume: str | None, outdir: Path, cfg: str | None = None) -> ResumePoint | None:
    """``auto``: the newest resumable run of preset ``cfg`` under outdir (None if there is none);
    a path: a state file or a run directory."""
    if not resume:
        return None
    if resume == "auto":
        run = rundir.find_resumable_run(outdir, cfg)
        if run is None:
            return None
        return ResumePoint(run, run / rundir.read_latest(run)["state"])
    path = Path(resume)
    if path.is_dir():
        latest = rundir.read_latest(path)
        if latest is None:
            raise CheckpointError(path, "run directory has no complete training state (no valid 'latest' marker)")
        return ResumePoint(path, path / latest["state"])
    if not path.is_file():
        raise CheckpointError(path, "no such training state or run directory")
    return ResumePoint(path.parent, path)


RESUME_OVERRIDABLE = ("kimg", "tick_kimg", "snap", "metrics", "metric_images", "workers", "outdir", "data")
"""Fields a resumed run takes from the new command line; the rest come from the saved state, except
what the command's ``--set`` overrides change (:func:`resumed_config`)."""


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resumed_config(saved: TrainConfig, command_line: TrainConfig, changes: Sequence[str]) -> tuple[TrainConfig, list[str]]:
    """The config a resumed run continues with: the saved one, with the command line's
    :data:`RESUME_OVERRIDABLE` fields and its ``--set`` overrides (``changes``) applied, so a run
    can go on with, e.g., a higher neural rendering resolution or a narrower SDF width. Returns it
    and the changed fields as ``"key: old -> new"`` (overrides that repeat a saved value change
    nothing)."""
    for name in RESUME_OVERRIDABLE:
        setattr(saved, name, getattr(command_line, name))
    config = apply_overrides(saved, list(changes))
    before, after = _flat(saved.to_dict()), _flat(config.to_dict())
    return config, [f"{key}: {before.get(key)!r} -> {value!r}" for key, value in after.items()
                    if before.get(key) != value]


class TrainingInterrupted(Exception):
    """Ctrl+C during training: where it stopped (the newest complete state resumes it)."""

    def __init__(self, kimg: float, run_dir: Path):
        super().__init__(f"stopped at {kimg:.3f} kimg in {run_dir}; resume with --resume auto "
                         "(from the newest complete training state)")
        self.kimg, self.run_dir = kimg, run_dir


def fit(config: TrainConfig, ctx: DistributedContext, resume: str | None = None, command: str = "",
        progress: bool = True, log: Callable[[str], None] = print, changes: Sequence[str] = ()) -> Path:
    """Train until ``config.kimg``; returns the run directory.

    Rank 0 creates (or, on resume, reuses) the run directory; all ranks read the same state file.
    ``changes``: the command line's ``--set`` overrides, which a resumed run applies to its saved
    config (:func:`resumed_config`); a new run has them in ``config`` already.
    """
    from torch.utils.data import DataLoader

    outdir = Path(config.outdir)
    point = resolve_resume(resume, outdir, config.cfg)
    state = None
    if point is not None:
        state = load_training_state(point.state_path, device="cpu")
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        config, changed = resumed_config(saved, config, changes)
        if changed and ctx.is_main:
            log("resuming with changed settings: " + "; ".join(changed))
    elif resume == "auto" and ctx.is_main:
        log(f"--resume auto: no resumable {config.cfg} run under {outdir}; starting a new run")
    config.validate()
    if state is None and getattr(config.loss, "stage", 0) == 2 and not config.init:
        raise ValueError("StyleSDF stage 2 trains the upsampler on a frozen stage-1 renderer: "
                         "give the stage-1 run or snapshot with --init")

    # EG3D's dual D sees the dataset's images at their own size and its cameras' lens; the pipeline
    # losses resize (and crop patches from) any size, and frame samples with the model's own lens.
    eg3d_recipe = DISCRIMINATORS.cls_of(config.discriminator).dual
    dataset = ImageLabelDataset(config.data, resolution=config.generator.img_resolution if eg3d_recipe else None)
    if dataset.label_dim != config.generator.c_dim:
        raise ValueError(f"{config.data}: dataset has {dataset.label_dim}-d labels but the generator needs "
                         f"{config.generator.c_dim}-d camera labels (dataset.json)")
    trainer = Trainer(config, ctx, dataset.labels, init=state is None)
    if state is None and not config.init:
        trainer.initialize(log if ctx.is_main else (lambda message: None))
    if state is not None:
        trainer.load_state_dict(state)
        rng = state["rng"]
        if len(rng) == ctx.world_size:
            set_rng_state(rng[ctx.rank], ctx.device)
        else:  # different world size: continue with fresh, rank-distinct streams
            torch.manual_seed(config.seed * ctx.world_size + ctx.rank + trainer.cur_nimg)

    # Run directory (rank 0 decides, everyone learns it).
    run_dir: Path | None = None
    if ctx.is_main:
        if point is not None:
            run_dir = point.run_dir
            removed = rundir.remove_stale_temps(run_dir)
            kimg = trainer.cur_nimg / 1000
            rundir.rewind_jsonl(run_dir / rundir.LOG, kimg)
            rundir.rewind_jsonl(run_dir / rundir.METRICS_LOG, kimg)
            log(f"resuming {run_dir} from {point.state_path.name} at {kimg:.3f} kimg"
                + (f" (removed {len(removed)} partial file(s))" if removed else ""))
        else:
            desc = f"{config.cfg}-{dataset.name}-gpus{config.gpus}-batch{config.batch}-gamma{config.loss.r1_gamma:g}"
            run_dir = rundir.create_run_dir(outdir, desc)
            log(f"new run {run_dir}")
        rundir.write_json(run_dir / rundir.OPTIONS, config.to_dict())
    if ctx.distributed:
        import torch.distributed as dist

        holder = [str(run_dir) if run_dir else None]
        dist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    assert run_dir is not None

    sampler_start = int(state["sampler_position"]) if state is not None else 0
    sampler = InfiniteSampler(len(dataset), rank=ctx.rank, num_replicas=ctx.world_size, seed=config.seed,
                              start=sampler_start)
    loader = DataLoader(dataset, sampler=sampler, batch_size=trainer.batch_per_rank, num_workers=config.workers,
                        pin_memory=ctx.device.type == "cuda", persistent_workers=config.workers > 0,
                        prefetch_factor=2 if config.workers > 0 else None,
                        # Its own generator: creating the iterator must not draw from the training RNG.
                        generator=torch.Generator().manual_seed(config.seed))
    batches = iter(loader)
    steps_since_start = 0

    out: RunOutputs | None = None
    train_seconds = float(state["train_seconds"]) if state is not None else 0.0
    cur_tick = int(state["cur_tick"]) if state is not None else 0
    total_nimg = int(config.kimg * 1000)
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        # Pipeline models frame their samples with their own lens; EG3D with the dataset's.
        focal = dataset_focal(dataset.labels) if eg3d_recipe else None
        out = RunOutputs(run_dir, SummaryWriter(str(run_dir)), dataset, list(range(config.grid_seeds)),
                         focal, command, log)
        if state is None:
            reals = reals_grid(dataset, len(config.grid_yaws), config.grid_seeds)
            atomic_write_bytes(run_dir / rundir.REALS, encode_png(reals))
            initial_metrics = f" and the initial {', '.join(config.metrics)}" if config.metrics else ""
            log(f"rendering the initial samples{initial_metrics} ...")
            started = time.time()
            with preserve_rng(ctx.device):
                save_samples(trainer, out)
                # The value at initialisation is the baseline every later evaluation is read against.
                evaluate_metrics(trainer, out, snapshot="")
            log(f"initial samples{initial_metrics} done in {time.time() - started:.1f} s; training")

    bar = None
    tick_lines = True
    if ctx.is_main and progress:
        from renderers.progress import LogProgress, progress_bar

        bar = progress_bar(total_nimg, "train", "img", initial=min(trainer.cur_nimg, total_nimg), unit_scale=True,
                           dynamic_ncols=True)
        tick_lines = isinstance(bar, LogProgress)  # in a log, each tick's line as well as the progress lines

    tick_start_nimg = trainer.cur_nimg
    tick_start_time = time.time()
    tick_stats: dict[str, list[torch.Tensor]] = {}
    done = trainer.cur_nimg >= total_nimg
    try:
        while not done:
            real_img, real_c = next(batches)
            step_stats = trainer.step(real_img, real_c)
            steps_since_start += 1
            for key, values in step_stats.items():
                tick_stats.setdefault(key, []).extend(values)
            if bar is not None:
                bar.update(min(config.batch, total_nimg - bar.n))
                bar.set_postfix_str(f"kimg {trainer.cur_nimg / 1000:.2f} tick {cur_tick}", refresh=False)

            done = trainer.cur_nimg >= total_nimg
            if not done and trainer.cur_nimg < tick_start_nimg + config.tick_kimg * 1000:
                continue

            # --- end of tick ---
            now = time.time()
            tick_seconds = now - tick_start_time
            train_seconds += tick_seconds
            tick_nimg = trainer.cur_nimg - tick_start_nimg
            cur_tick += 1
            schedule = trainer.loss.schedule(trainer.cur_nimg)
            record: dict[str, Any] = {
                "tick": cur_tick,
                "kimg": trainer.cur_nimg / 1000,
                "time_s": train_seconds,
                "sec_per_tick": tick_seconds,
                "sec_per_kimg": tick_seconds / max(tick_nimg / 1000, 1e-9),
                "img_per_s": tick_nimg / max(tick_seconds, 1e-9),
                "lr/G": trainer.opt_G.param_groups[0]["lr"],
                "lr/D": trainer.opt_D.param_groups[0]["lr"],
                "blur_sigma": schedule.blur_sigma,
                "swapping_prob": schedule.swapping_prob,
                "neural_res": schedule.neural_rendering_resolution,
                "timestamp": now,
            }
            keys = sorted(tick_stats)
            means = torch.stack([torch.cat(tick_stats[k]).double().mean() for k in keys]) if keys else torch.zeros(0)
            means = all_reduce_mean(means.to(ctx.device, torch.float64), ctx.world_size).cpu()
            record.update({k: float(v) for k, v in zip(keys, means)})
            gpu_gb, cpu_gb = memory_gb(ctx.device)
            record["gpu_mem_gb"], record["cpu_mem_gb"] = gpu_gb, cpu_gb
            if out is not None:
                rundir.append_jsonl(run_dir / rundir.LOG, record)
                for key, value in record.items():
                    if isinstance(value, (int, float)) and key not in ("tick", "timestamp") and math.isfinite(value):
                        out.writer.add_scalar(key if "/" in key else f"progress/{key}", value, global_step=trainer.cur_nimg)
                out.writer.flush()
                if tick_lines:
                    log(f"tick {cur_tick} kimg {record['kimg']:.3f} sec/kimg {record['sec_per_kimg']:.1f} "
                        + " ".join(f"{k} {record[k]:.3f}" for k in ("loss/G", "loss/D_real", "loss/D_fake") if k in record))

            if done or cur_tick % config.snap == 0:
                snapshot(trainer, out, {"cur_tick": cur_tick, "train_seconds": train_seconds,
                                        "sampler_position": sampler.position_after(steps_since_start, trainer.batch_per_rank)})
            tick_stats = {}
            tick_start_nimg = trainer.cur_nimg
            tick_start_time = time.time()
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        raise TrainingInterrupted(trainer.cur_nimg / 1000, run_dir) from None
    if bar is not None:
        bar.close()
    if out is not None:
        out.writer.close()
    barrier(ctx.world_size)
    return run_dir


@dataclass
class RunOutputs:
    """What rank 0 writes to: the run directory, TensorBoard, and the fixed sample-grid setup."""

    run_dir: Path
    """The numbered run directory."""
    writer: Any
    """TensorBoard SummaryWriter."""
    dataset: ImageLabelDataset
    """Training data (reals for metrics)."""
    grid_seeds: list[int]
    """Latent seeds of the sample grid rows."""
    focal: float | None
    """Normalised focal length of the sample-grid cameras (the dataset's median; None: the model's own)."""
    command: str
    """Command line, recorded in snapshot metadata."""
    log: Callable[[str], None]
    """Where progress lines go."""


def save_samples(trainer: Trainer, out: RunOutputs) -> Path:
    config = trainer.config
    grid = render_grid(trainer.G_ema, out.grid_seeds, config.grid_yaws, truncation_psi=config.truncation_psi,
                       focal=out.focal)
    path = out.run_dir / rundir.samples_name(trainer.cur_nimg)
    atomic_write_bytes(path, encode_png(grid))
    return path


def evaluate_metrics(trainer: Trainer, out: RunOutputs, snapshot: str) -> dict[str, float]:
    """Compute the configured metrics on G_ema and append them to metrics.jsonl and TensorBoard.

    A failing metric (e.g. out of memory) is reported and skipped: it must not end a long run.
    """
    config = trainer.config
    if not config.metrics:
        return {}
    from training.evaluation import compute_metrics
    from training.metrics import MetricOptions

    nimg = trainer.cur_nimg
    options = MetricOptions(num_images=min(config.metric_images, len(out.dataset)), batch=config.batch_per_gpu,
                            device=str(trainer.ctx.device), seed=config.seed, inception=config.inception)
    start = time.time()
    try:
        results = compute_metrics(config.metrics, trainer.G_ema, out.dataset, options)
    except (RuntimeError, ValueError) as e:
        out.log(f"warning: metrics at {nimg / 1000:.3f} kimg failed: {e}")
        return {}
    for name in config.metrics:
        rundir.append_jsonl(out.run_dir / rundir.METRICS_LOG, {
            "metric": name, "kimg": nimg / 1000, "snapshot": snapshot, "value": results[name],
            "results": {k: v for k, v in results.items() if k == name or k.startswith(name + "/")},
            "seconds": time.time() - start, "timestamp": time.time(),
        })
    for key, value in results.items():
        out.writer.add_scalar(f"metrics/{key}", value, global_step=nimg)
    out.writer.flush()
    return results


def snapshot(trainer: Trainer, out: RunOutputs | None, progress: dict[str, Any]) -> None:
    """Network snapshot, sample grid, metrics, resumable state, then the ``latest`` marker.

    Args:
        out: rank 0's outputs (None on other ranks, which only contribute their RNG state).
        progress: loop counters saved in the state (cur_tick, train_seconds, sampler_position).
    """
    ctx = trainer.ctx
    rng_states = gather_rng_states(ctx)
    if out is not None:
        with preserve_rng(ctx.device):
            write_snapshot_files(trainer, out, {**progress, "rng": rng_states})
    barrier(ctx.world_size)


def write_snapshot_files(trainer: Trainer, out: RunOutputs, extra_state: dict[str, Any]) -> None:
    config, nimg = trainer.config, trainer.cur_nimg
    snap_path = out.run_dir / rundir.snapshot_name(nimg)
    save_generator(trainer.G_ema, snap_path, metadata={
        "kimg": f"{nimg / 1000:.3f}", "run": out.run_dir.name, "cfg": config.cfg, "data": config.data,
        "train_seconds": f"{extra_state['train_seconds']:.1f}", "command": out.command,
    })
    samples_path = save_samples(trainer, out)
    evaluate_metrics(trainer, out, snap_path.name)
    state_path = out.run_dir / rundir.state_name(nimg)
    save_training_state(state_path, {**trainer.state_dict(), **extra_state})
    rundir.write_latest(out.run_dir, {"kimg": nimg / 1000, "state": state_path.name, "snapshot": snap_path.name,
                                      "samples": samples_path.name, "tick": extra_state["cur_tick"]})
    # Only now that 'latest' names the new state may old ones go.
    for old in sorted(out.run_dir.glob("training-state-*.pt"))[:-KEEP_STATES]:
        old.unlink(missing_ok=True)
