"""Training the pipeline methods: every tiny recipe runs, snapshots and resumes exactly; the presets
carry methods.md's numbers; the command line's ablations and StyleSDF's two stages; the pipeline
loss's schedules and terms; and the training benchmark.

Everything runs in-process on the CPU at 32 px with batch 4 (see ``tiny_config``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train
from models.build import build_generator
from models.checkpoint import load_generator
from models.methods import PIPELINE_METHODS, pipeline_preset
from models.pipeline_config import PipelineConfig
from ops.camera import fov_to_focal, orbit_label
from ops.patch_sampling import PatchParams, crop_real_patches
from ops.pose_sampling import POSE_PRIORS, angles_to_label, camera_angles, sample_cameras
from training.config import PipelineLossConfig, TrainConfig
from training.distributed import init_distributed
from training.loop import Trainer, fit, load_training_state, save_training_state
from training.pipeline_loss import PipelineLoss
from training.presets import TRAIN_PRESETS, train_preset, with_stage

TINY = tuple(f"{method}-tiny" for method in PIPELINE_METHODS)
BATCH = 4
KIMG2 = 2 * BATCH / 1000  # two optimisation steps
KIMG3 = 3 * BATCH / 1000
POSE_LOSS_PRESETS = ("pigan-tiny", "gram-tiny", "stylesdf-tiny")


# --- fixtures and helpers ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def heads32(tmp_path_factory) -> Path:
    from training.synthetic import write_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "heads32.zip"
    write_synthetic_dataset(path, "heads", 8, 32, seed=5, geometry=False)
    return path


def tiny_config(name: str, data: Path, outdir: Path, **fields) -> TrainConfig:
    config = train_preset(name)
    config.data, config.outdir = str(data), str(outdir)
    config.batch, config.workers, config.metrics, config.kimg = BATCH, 0, [], KIMG2
    for key, value in fields.items():
        setattr(config, key, value)
    return config


def run_fit(config: TrainConfig, resume: str | None = None, log=None) -> Path:
    return fit(config, init_distributed(1, "cpu"), resume=resume, progress=False, log=log or (lambda s: None))


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def latest(run: Path) -> dict:
    return json.loads((run / "latest").read_text())


def options(run: Path) -> dict:
    return json.loads((run / "training_options.json").read_text())


def pose_labels(n: int = 16, radius: float = 1.0, fov: float = 12.0) -> np.ndarray:
    """[n, 25] face-like cameras around the origin (the pipeline methods' world)."""
    g = torch.Generator().manual_seed(0)
    yaw, pitch = torch.randn(n, generator=g) * 0.3, torch.randn(n, generator=g) * 0.15
    return orbit_label(yaw, pitch, radius, (0.0, 0.0, 0.0), fov_to_focal(fov)).numpy()


def make_trainer(name: str, **loss_fields) -> Trainer:
    config = train_preset(name)
    config.batch = BATCH
    for key, value in loss_fields.items():
        setattr(config.loss, key, value)
    return Trainer(config, init_distributed(1, "cpu"), pose_labels())


def stub_loss(generator: PipelineConfig, **loss_fields) -> PipelineLoss:
    """A PipelineLoss for its schedules only: they read nothing but the generator's config."""

    class Stub:
        config = generator

    return PipelineLoss(Stub(), None, PipelineLossConfig(**loss_fields), None)


def spy_on_D(monkeypatch, D) -> list[dict]:
    """Record every discriminator call (input size, patch, alpha)."""
    calls: list[dict] = []
    forward = D.forward

    def spy(image, c=None, patch=None, alpha=1.0):
        calls.append({"shape": tuple(image.shape), "patch": None if patch is None else patch.detach().clone(),
                      "alpha": alpha})
        return forward(image, c, patch=patch, alpha=alpha)

    monkeypatch.setattr(D, "forward", spy)
    return calls


def cli_fit(data: Path, outdir: Path, *extra: str, kimg: float = KIMG2) -> int:
    return train.main(["fit", "--data", str(data), "--outdir", str(outdir), "--batch", str(BATCH), "--kimg", str(kimg),
                       "--metrics", "none", "--workers", "0", "--device", "cpu", "--no-progress", *extra])


def only_run(outdir: Path) -> Path:
    runs = sorted(p for p in outdir.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


# --- 1. every tiny recipe trains, snapshots and resumes ------------------------------------------

@pytest.mark.parametrize("name", TINY)
def test_tiny_preset_trains_snapshots_and_resumes(name, heads32, tmp_path):
    messages: list[str] = []
    outdir = tmp_path / "runs"
    run = run_fit(tiny_config(name, heads32, outdir), log=messages.append)

    files = {p.name for p in run.iterdir()}
    for expected in ("training_options.json", "log.jsonl", "reals.png", "latest", "samples-000000.000.png",
                     "samples-000000.008.png", "network-snapshot-000000.008.safetensors", "training-state-000000.008.pt"):
        assert expected in files, f"{name}: {expected} missing from {sorted(files)}"
    assert not [n for n in files if n.endswith(".tmp")]
    rows = log_rows(run)
    assert [r["kimg"] for r in rows] == [KIMG2]
    losses = {k: v for k, v in rows[0].items() if k.startswith("loss/")}
    for key in ("loss/G", "loss/D_real", "loss/D_fake"):
        assert key in losses, f"{name}: {key} not logged ({sorted(losses)})"
    if name in POSE_LOSS_PRESETS:
        assert "loss/G_pose" in losses and "loss/D_pose" in losses
    if name == "stylesdf-tiny":
        assert "loss/G_eikonal" in losses and "loss/G_minimal_surface" in losses
        assert sum("SDF sphere initialisation" in m for m in messages) == 1
    assert all(math.isfinite(v) for v in losses.values()), losses
    marker = latest(run)
    assert marker["kimg"] == KIMG2 and marker["state"] == "training-state-000000.008.pt"
    state = load_training_state(run / marker["state"])
    assert state["cur_nimg"] == 8 and state["batch_idx"] == 2
    saved = options(run)
    assert saved["cfg"] == name and saved["generator"]["method"] == "pipeline" and saved["loss"]["kind"] == "pipeline"

    # Resume to a third step: same directory, continues from 8 images, logs appended.
    resumed = run_fit(tiny_config(name, heads32, outdir, kimg=KIMG3), resume="auto", log=messages.append)
    assert resumed == run and only_run(outdir) == run
    assert any(m.startswith(f"resuming {run}") and f"at {KIMG2:.3f} kimg" in m for m in messages), messages
    if name == "stylesdf-tiny":  # the sphere prior is for fresh runs only
        assert sum("SDF sphere initialisation" in m for m in messages) == 1
    rows = log_rows(run)
    assert [r["kimg"] for r in rows] == [KIMG2, KIMG3]
    assert all(math.isfinite(v) for k, v in rows[-1].items() if k.startswith("loss/"))
    marker = latest(run)
    assert marker["kimg"] == KIMG3 and marker["snapshot"] == "network-snapshot-000000.012.safetensors"
    state = load_training_state(run / marker["state"])
    assert state["cur_nimg"] == 12 and state["batch_idx"] == 3

    G = load_generator(run / marker["snapshot"])
    assert not G.training
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = G(z, G.default_camera(2))["image"]
    res = saved["generator"]["img_resolution"]
    assert image.shape == (2, 3, res, res) and torch.isfinite(image).all()
    # The snapshot is the state's G_ema.
    ema = state["G_ema"]
    assert all(torch.equal(ema[k], v) for k, v in G.state_dict().items())


@pytest.mark.parametrize("name", ["pigan-tiny", "epigraf-tiny"])
def test_resume_matches_an_uninterrupted_run(name, heads32, tmp_path):
    """pi-GAN: density noise, prior poses, ray jitter, pose loss; EpiGRAF: random patches, blur.
    2 steps + resume 1 step must equal 3 steps straight, weights and optimiser state."""
    straight = run_fit(tiny_config(name, heads32, tmp_path / "straight", kimg=KIMG3))
    split = run_fit(tiny_config(name, heads32, tmp_path / "split"))
    run_fit(tiny_config(name, heads32, tmp_path / "split", kimg=KIMG3), resume=str(split))

    a = load_training_state(straight / latest(straight)["state"])
    b = load_training_state(split / latest(split)["state"])
    assert a["cur_nimg"] == b["cur_nimg"] == 12
    for net in ("G_ema", "G", "D"):
        assert a[net].keys() == b[net].keys()
        worst = max((a[net][k].float() - b[net][k].float()).abs().max().item() for k in a[net])
        assert worst <= 1e-6, f"{name}: resumed {net} drifted by {worst}"
    for opt in ("opt_G", "opt_D"):
        for key, sa in a[opt]["state"].items():
            for field, value in sa.items():
                assert torch.allclose(value.float(), b[opt]["state"][key][field].float(), atol=1e-6), (opt, key, field)
    # ... and the third step did change the networks (the comparison is not vacuous).
    two = load_training_state(split / "training-state-000000.008.pt")
    assert any(not torch.equal(two["G_ema"][k], b["G_ema"][k]) for k in b["G_ema"])


# --- 2. configs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TRAIN_PRESETS)
def test_every_preset_validates_and_round_trips(name):
    config = train_preset(name)
    config.validate()
    again = TrainConfig.from_dict(json.loads(config.to_json()))
    assert again == config  # dataclass equality: tuples stayed tuples
    assert again.to_json() == config.to_json()
    assert type(again.generator) is type(config.generator)
    assert type(again.discriminator) is type(config.discriminator)
    assert type(again.loss) is type(config.loss)
    assert isinstance(again.optim.betas, tuple) and isinstance(again.grid_yaws, tuple)
    assert isinstance(config.generator, PipelineConfig)  # EG3D's presets too: one generator config
    g = again.generator
    assert isinstance(g.frozen, tuple) and isinstance(g.pose.pivot, tuple)
    for component in (g.embedder, g.pose, g.points, g.decoder):  # JSON lists become tuples again
        values = dataclasses.asdict(component).values()
        assert not any(isinstance(v, list) or (isinstance(v, tuple) and any(isinstance(x, list) for x in v))
                       for v in values)
    assert again.discriminator.img_resolution == again.shown_resolution
    if name.endswith("-tiny") and isinstance(config.loss, PipelineLossConfig):  # not EG3D's own tiny recipe
        stage1 = name == "stylesdf-tiny"  # stage 1 renders at the neural resolution, 16 px
        assert config.batch == BATCH and config.generator.img_resolution == (16 if stage1 else 32)


@pytest.mark.parametrize("name", ["stylesdf", "stylesdf-tiny"])
def test_stylesdf_stage2_config_validates_and_round_trips(name):
    stage2 = with_stage(train_preset(name), 2)
    stage2.validate()
    again = TrainConfig.from_dict(json.loads(stage2.to_json()))
    assert again == stage2 and again.generator.frozen == ("mapping_network", "embedder", "decoder", "renderer")


def test_full_presets_carry_the_recipes():
    ema_beta = lambda c: 0.5 ** (c.batch / (c.ema_kimg * 1000))  # noqa: E731  per-step EMA decay

    c = train_preset("pigan")  # methods.md 3.5
    assert (c.loss.r1_gamma, c.loss.pose_weight, c.loss.pose_loss) == (0.2, 15.0, "mse")
    assert (c.optim.g_lr, c.optim.d_lr, c.optim.betas, c.optim.grad_clip) == (6e-5, 2e-4, (0.0, 0.9), 10.0)
    assert c.optim.d_reg_interval == 1 and c.optim.g_reg_interval == 0 and c.batch == 56
    assert (c.loss.topk_start, c.loss.topk_min, c.loss.topk_decay) == (1.0, 0.6, 0.99)
    assert c.loss.topk_interval_kimg == pytest.approx(2000 * 56 / 1000)
    assert c.loss.progressive_fade_kimg == pytest.approx(10000 * 56 / 1000)
    assert c.discriminator.kind == "coordconv" and c.discriminator.pose_dim == 2
    assert c.generator.renderer.density_noise == 1.0
    assert c.generator.renderer.density_noise_fade_kimg == pytest.approx(5000 * 56 / 1000)
    assert ema_beta(c) == pytest.approx(0.999)

    c = train_preset("gram")  # 3.3
    e = c.generator.embedder
    assert (e.kind, e.num_manifolds, e.levels_start, e.levels_end) == ("manifold", 24, 23.0, 8.0)
    assert c.generator.integrator.kind == "constant_delta" and c.generator.integrator.delta == 0.04
    assert c.generator.points.num_coarse == 64 and c.generator.points.perturb == "none"
    assert (c.loss.r1_gamma, c.loss.pose_weight, c.loss.real_pose_weight) == (1.0, 15.0, 15.0)
    assert (c.optim.g_lr, c.optim.d_lr, c.optim.betas, c.optim.grad_clip) == (2e-5, 2e-4, (0.0, 0.9), 1.0)
    assert c.optim.d_reg_interval == 1 and ema_beta(c) == pytest.approx(0.999)

    c = train_preset("epigraf")  # 3.9
    assert c.loss.r1_gamma == pytest.approx(0.0002 * 512**2 / 64) == pytest.approx(0.8192)
    assert (c.loss.blur_init_sigma, c.loss.blur_fade_kimg) == (10.0, 200.0)
    assert (c.generator.img_resolution, c.generator.points.patch, c.generator.points.patch_size) == (512, "epigraf", 64)
    assert c.discriminator.kind == "patch" and c.discriminator.img_resolution == 64
    assert (c.optim.g_lr, c.optim.d_lr, c.optim.betas, c.batch, c.kimg) == (0.0025, 0.002, (0.0, 0.99), 64, 50000.0)
    assert c.generator.renderer.density_noise_fade_kimg == 5000.0

    c = train_preset("graf")  # 3.6
    assert (c.optim.optimizer, c.optim.g_lr, c.optim.d_lr, c.batch) == ("rmsprop", 5e-4, 1e-4, 8)
    assert c.loss.r1_gamma == 10.0 and c.discriminator.kind == "dcgan" and c.discriminator.ndf == 64
    assert (c.generator.points.patch, c.generator.points.patch_size, c.discriminator.img_resolution) == ("graf", 32, 32)

    c = train_preset("giraffe")  # 3.7
    assert (c.optim.optimizer, c.optim.g_lr, c.optim.d_lr, c.batch, c.loss.r1_gamma) == ("rmsprop", 2.5e-4, 1e-4, 32, 10.0)

    c = train_preset("volumegan")  # 3.2
    assert ((c.loss.r1_gamma, c.loss.style_mixing_prob, c.optim.g_lr, c.optim.d_lr, c.ema_kimg)
            == (10.0, 0.9, 0.002, 0.002, 20.0))
    assert (c.loss.progressive_start, c.loss.progressive_level_kimg, c.loss.progressive_fade_kimg) == (32, 1500.0, 750.0)
    assert c.optim.d_reg_interval == 16 and c.discriminator.progressive

    c = train_preset("stylenerf")  # 3.8
    assert (c.loss.r1_gamma, c.loss.style_mixing_prob, c.optim.g_lr, c.optim.d_lr, c.batch, c.ema_kimg) == (
        0.5, 0.9, 0.0025, 0.0025, 64, 20.0)

    c = train_preset("stylesdf")  # 3.4, stage 1
    assert (c.loss.eikonal_weight, c.loss.minimal_surface_weight, c.loss.r1_gamma) == (0.1, 0.05, 10.0)
    assert (c.loss.pose_weight, c.loss.pose_loss, c.loss.stage) == (15.0, "smooth_l1", 1)
    assert c.loss.sdf_sphere_init_steps > 0
    assert (c.optim.g_lr, c.optim.d_lr, c.optim.betas) == (2e-5, 2e-4, (0.0, 0.9))
    assert c.generator.upsampler.kind == "none" and c.generator.img_resolution == 64
    assert c.generator.density.kind == "sdf_sigmoid" and c.generator.density.alpha_init == 0.1
    assert ema_beta(c) == pytest.approx(0.5 ** (32 / 10000))
    s2 = with_stage(c, 2)
    assert (s2.loss.r1_gamma, s2.loss.style_mixing_prob, s2.loss.stage, s2.loss.eikonal_weight) == (10.0, 0.9, 2, 0.0)
    assert (s2.optim.g_lr, s2.optim.d_lr, s2.optim.d_reg_interval) == (0.002, 0.002, 16)
    assert s2.generator.upsampler.kind == "stylesdf_decoder" and s2.generator.img_resolution == 1024
    assert s2.discriminator.kind == "resnet" and s2.discriminator.img_resolution == 1024


@pytest.mark.parametrize("name", ["pigan-tiny", "gram-tiny", "stylesdf-tiny", "graf-tiny", "giraffe-tiny"])
def test_every_step_r1_recipes_keep_their_optimiser_settings(name):
    """pi-GAN, GRAM, StyleSDF stage 1 (Adam) and GRAF, GIRAFFE (RMSprop) take one optimiser step
    per iteration on loss + R1, with D lr 2e-4 / 1e-4 and, for Adam, betas (0, 0.9) (methods.md
    3.3-3.7). Their d_reg_interval of 1 must not bring StyleGAN2's lazy-regularisation correction
    (lr x 1/2, beta2 ** 1/2)."""
    trainer = make_trainer(name)
    config = trainer.config
    assert config.optim.d_reg_interval == 1
    group = trainer.opt_D.param_groups[0]
    assert group["lr"] == pytest.approx(config.optim.d_lr), f"{name}: D lr {group['lr']} instead of {config.optim.d_lr}"
    if config.optim.optimizer == "adam":
        assert tuple(group["betas"]) == pytest.approx(config.optim.betas)


# --- 3. command-line ablations -------------------------------------------------------------------

def test_cli_ablation_swaps_components_and_trains(heads32, tmp_path, capsys):
    rc = cli_fit(heads32, tmp_path / "runs", "--cfg", "pigan-tiny", "--embedder", "volume", "--decoder", "siren")
    out = capsys.readouterr()
    assert rc == 0, out.err
    run = only_run(tmp_path / "runs")
    assert f"done: {run}" in out.out
    saved = options(run)
    assert saved["cfg"] == "pigan-tiny+embedder=volume+decoder=siren"
    g = saved["generator"]
    assert (g["embedder"]["kind"], g["decoder"]["kind"], g["mapping"]["kind"]) == ("volume", "siren", "film")
    assert saved["loss"]["pose_weight"] == 15.0  # the rest of the pi-GAN recipe stays
    assert [r["kimg"] for r in log_rows(run)] == [KIMG2] and latest(run)["kimg"] == KIMG2
    G = load_generator(run / latest(run)["snapshot"])
    assert G.config.embedder.kind == "volume"
    with torch.no_grad():
        assert torch.isfinite(G(torch.randn(1, G.z_dim), G.default_camera(1))["image"]).all()


def test_cli_ablation_of_eg3d_trains_its_pipeline_recipe(heads32, tmp_path, capsys):
    rc = cli_fit(heads32, tmp_path / "runs", "--cfg", "tiny", "--embedder", "volume")
    assert rc == 0, capsys.readouterr().err
    saved = options(only_run(tmp_path / "runs"))
    assert saved["cfg"] == "eg3d-tiny+embedder=volume"
    g = saved["generator"]
    assert g["method"] == "pipeline" and g["preset"] == "eg3d-tiny" and g["embedder"]["kind"] == "volume"
    assert g["mapping"]["camera_conditioning"] and g["upsampler"]["kind"] == "eg3d_sr"
    assert saved["loss"]["kind"] == "pipeline" and saved["loss"]["density_reg"] == 0.25
    assert saved["discriminator"]["img_resolution"] == g["img_resolution"]


def test_cli_ablation_of_eg3d_keeps_the_command_line_options():
    """--batch, --gamma and --seed given with an ablation of an EG3D preset must survive the switch
    to the pipeline recipe (as they do for pipeline presets)."""
    parser = train.build_parser()
    pipeline = train.resolve_train_config(parser.parse_args(
        ["bench", "--cfg", "pigan-tiny", "--embedder", "volume", "--batch", "8", "--gamma", "3", "--seed", "5"]))
    assert (pipeline.batch, pipeline.loss.r1_gamma, pipeline.seed) == (8, 3.0, 5)
    eg3d = train.resolve_train_config(parser.parse_args(
        ["bench", "--cfg", "tiny", "--embedder", "volume", "--batch", "8", "--gamma", "3", "--seed", "5"]))
    assert eg3d.generator.embedder.kind == "volume"
    assert (eg3d.batch, eg3d.loss.r1_gamma, eg3d.seed) == (8, 3.0, 5)


@pytest.mark.parametrize("argv, message", [
    (["--cfg", "pigan-tiny", "--embedder", "manifold", "--integrator", "midpoint"],
     "the 'manifold' embedder composites with a constant-interval integrator, not 'midpoint'"),
    (["--cfg", "pigan-tiny", "--embedder", "composition", "--decoder", "siren"],
     "the 'composition' embedder needs a decoder that reads codes from z, not 'siren'"),
    (["--cfg", "pigan-tiny", "--stage", "2"], "--stage applies to staged presets only (StyleSDF)"),
    (["--cfg", "stylesdf-tiny", "--stage", "2"], "give the stage-1 run or snapshot with --init"),
])
def test_cli_bad_combination_exits_2_with_a_clear_message(argv, message, heads32, tmp_path, capsys):
    rc = cli_fit(heads32, tmp_path / "runs", *argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --- 4. StyleSDF's two stages ------------------------------------------------------------------

@pytest.fixture(scope="module")
def stylesdf_stages(heads32, tmp_path_factory):
    out = tmp_path_factory.mktemp("stylesdf")
    rc1 = cli_fit(heads32, out / "stage1", "--cfg", "stylesdf-tiny", "--stage", "1",
                  "--set", "loss.sdf_sphere_init_steps=5")
    assert rc1 == 0
    stage1 = only_run(out / "stage1")
    rc2 = cli_fit(heads32, out / "stage2", "--cfg", "stylesdf-tiny", "--stage", "2", "--init", str(stage1))
    assert rc2 == 0
    return stage1, only_run(out / "stage2")


FROZEN = ("mapping_network.", "embedder.", "decoder.", "renderer.")


def test_stylesdf_stage2_trains_the_upsampler_on_a_frozen_renderer(stylesdf_stages):
    stage1, stage2 = stylesdf_stages
    o1, o2 = options(stage1), options(stage2)
    assert o1["loss"]["stage"] == 1 and o1["generator"]["upsampler"]["kind"] == "none"
    assert o1["generator"]["img_resolution"] == 16 and o1["discriminator"]["kind"] == "coordconv"
    assert o2["cfg"] == "stylesdf-tiny-stage2" and o2["loss"]["stage"] == 2
    assert o2["generator"]["upsampler"]["kind"] == "stylesdf_decoder" and o2["generator"]["img_resolution"] == 32
    assert o2["generator"]["frozen"] == ["mapping_network", "embedder", "decoder", "renderer"]
    assert o2["init"] == str(stage1 / latest(stage1)["snapshot"])
    assert o2["discriminator"]["kind"] == "resnet" and o2["discriminator"]["img_resolution"] == 32
    rows = log_rows(stage2)
    assert [r["kimg"] for r in rows] == [KIMG2] and "loss/G_eikonal" not in rows[0]
    assert all(math.isfinite(v) for k, v in rows[0].items() if k.startswith("loss/"))

    G1 = load_generator(stage1 / latest(stage1)["snapshot"])
    G2 = load_generator(stage2 / latest(stage2)["snapshot"])
    assert G1.upsampler.identity and not G2.upsampler.identity
    with torch.no_grad():
        image = G2(torch.randn(1, G2.z_dim), G2.default_camera(1))["image"]
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()

    w1 = dict(G1.named_parameters())
    state = load_training_state(stage2 / latest(stage2)["state"])
    params = dict(G2.named_parameters())
    for source in (params, {k: state["G"][k] for k in params}):
        frozen = {k: v for k, v in source.items() if k.startswith(FROZEN)}
        assert frozen and set(frozen) <= set(w1)
        changed = [k for k, v in frozen.items() if not torch.equal(v, w1[k])]
        assert not changed, f"frozen weights moved in stage 2: {changed[:5]}"
    # The upsampler trained: it differs from its initialisation (Trainer seeds G's build with the seed).
    torch.manual_seed(0)
    fresh = dict(build_generator(TrainConfig.from_dict(o2).generator).named_parameters())
    upsampler = [k for k in state["G"] if k.startswith("upsampler.") and k in fresh]
    assert upsampler
    assert any(not torch.equal(state["G"][k], fresh[k]) for k in upsampler)


def test_stylesdf_stage2_resumes_without_the_stage1_snapshot(stylesdf_stages, heads32, tmp_path):
    """A resumed stage-2 run has every weight in its training state: it must not need --init's
    file again (it may have been moved with the run, or deleted)."""
    _, stage2 = stylesdf_stages
    run = tmp_path / "runs" / stage2.name
    shutil.copytree(stage2, run)
    saved = TrainConfig.from_dict(options(run))
    missing = tmp_path / "moved-away.safetensors"
    state_path = run / latest(run)["state"]
    state = load_training_state(state_path)
    config = json.loads(state["config"])
    config["init"] = str(missing)  # as if the stage-1 run had been moved away
    state["config"] = json.dumps(config)
    save_training_state(state_path, state)
    saved.data, saved.outdir, saved.kimg, saved.init = str(heads32), str(tmp_path / "runs"), KIMG3, str(missing)
    resumed = run_fit(saved, resume=str(run))
    assert latest(resumed)["kimg"] == KIMG3


# --- 5. the pipeline loss ------------------------------------------------------------------------

def test_progressive_resolution_doubles_each_level_and_fades_in():
    g = pipeline_preset("pigan-tiny")
    g.img_resolution = g.neural_rendering_resolution = 128
    loss = stub_loss(g, progressive_start=16, progressive_level_kimg=0.2, progressive_fade_kimg=0.1)
    expected = {0: (16, 1.0), 199: (16, 1.0), 200: (32, 0.0), 225: (32, 0.25), 250: (32, 0.5), 300: (32, 1.0),
                399: (32, 1.0), 400: (64, 0.0), 450: (64, 0.5), 600: (128, 0.0), 675: (128, 0.75), 700: (128, 1.0),
                800: (128, 1.0), 10**6: (128, 1.0)}
    for nimg, (res, alpha) in expected.items():
        got = loss.d_input_resolution(nimg)
        assert got[0] == res and got[1] == pytest.approx(alpha, abs=1e-9), (nimg, got)
    for level in range(1, 4):  # alpha ramps monotonically 0 -> 1 within each new level
        alphas = [loss.d_input_resolution(level * 200 + step)[1] for step in range(0, 200, 10)]
        assert alphas == sorted(alphas) and alphas[0] == pytest.approx(0) and alphas[-1] == 1.0
    assert stub_loss(g).d_input_resolution(0) == (128, 1.0)  # not growing: full size from the start
    g.points.patch, g.points.patch_size = "graf", 16
    assert stub_loss(g, progressive_start=8, progressive_level_kimg=0.2).d_input_resolution(10**6) == (16, 1.0)

    schedule = make_trainer("pigan-tiny").loss.schedule(250)  # the tiny recipe: 16 -> 32 over 0.2 kimg
    assert (schedule.d_resolution, schedule.fade_alpha) == (32, pytest.approx(0.5))


def test_progressive_discriminator_sees_pooled_images_and_alpha(monkeypatch):
    trainer = make_trainer("pigan-tiny")
    calls = spy_on_D(monkeypatch, trainer.D)
    real = torch.rand(BATCH, 3, 32, 32) * 2 - 1
    c = trainer.sample_poses(BATCH)
    z = torch.randn(BATCH, trainer.G.z_dim)
    trainer.D.requires_grad_(True)
    for nimg, (res, alpha) in ((100, (16, 1.0)), (250, (32, 0.5)), (10**4, (32, 1.0))):
        calls.clear()
        trainer.loss.accumulate_gradients("Dmain", real, c, z, c, gain=1, cur_nimg=nimg)
        assert len(calls) == 2  # fakes and reals
        assert all(call["shape"] == (BATCH, 3, res, res) for call in calls), (nimg, calls)
        assert all(call["alpha"] == pytest.approx(alpha) for call in calls)


def test_topk_fraction_decays_and_floors():
    trainer = make_trainer("pigan-tiny")  # topk_interval_kimg 0.1: one decay per 100 images
    loss = trainer.loss
    for nimg, expected in ((0, 1.0), (99, 1.0), (100, 0.99), (1000, 0.99**10), (5000, 0.99**50), (5100, 0.6),
                           (10**6, 0.6)):
        assert loss.schedule(nimg).topk == pytest.approx(expected), nimg
    assert all(loss.schedule(n).topk >= 0.6 for n in range(0, 20000, 700))

    # G's loss keeps the best-scored ceil(k * N) fakes.
    trainer.G.requires_grad_(True)
    c = trainer.sample_poses(BATCH)
    stats = loss.accumulate_gradients("Gmain", torch.zeros(BATCH, 3, 32, 32), c, torch.randn(BATCH, trainer.G.z_dim), c,
                                      gain=1, cur_nimg=5000)
    kept = math.ceil(0.99**50 * BATCH)
    assert kept == 3 and stats["loss/G"].numel() == kept
    all_losses = F.softplus(-stats["scores/fake_G"].flatten())
    assert torch.allclose(stats["loss/G"].flatten(), all_losses.sort().values[:kept], atol=1e-6)
    stats = loss.accumulate_gradients("Gmain", torch.zeros(BATCH, 3, 32, 32), c, torch.randn(BATCH, trainer.G.z_dim), c,
                                      gain=1, cur_nimg=0)
    assert stats["loss/G"].numel() == BATCH


def test_density_noise_fades_linearly_to_zero():
    trainer = make_trainer("pigan-tiny")  # noise 1 over 2 kimg at tiny size
    loss = trainer.loss
    assert trainer.G.config.renderer.density_noise == 1.0 and trainer.G.config.renderer.density_noise_fade_kimg == 2.0
    for nimg, expected in ((0, 1.0), (500, 0.75), (1000, 0.5), (1500, 0.25), (2000, 0.0), (5000, 0.0)):
        assert loss.schedule(nimg).density_noise == pytest.approx(expected), nimg
    c = trainer.sample_poses(2)
    seen, synthesis = [], trainer.G.synthesis
    trainer.G.synthesis = lambda *a, **k: seen.append(k["options"].density_noise) or synthesis(*a, **k)
    try:
        with torch.no_grad():
            loss.run_G(torch.randn(2, trainer.G.z_dim), c, loss.schedule(1000), 1000)
    finally:
        del trainer.G.synthesis
    assert seen == [pytest.approx(0.5)]  # the scheduled noise travels with the call
    assert trainer.G.rendering_kwargs["density_noise"] == 1.0  # and the model is not edited
    full = train_preset("epigraf").generator.renderer
    assert (full.density_noise, full.density_noise_fade_kimg) == (1.0, 5000.0)


@pytest.mark.parametrize("name", ["graf-tiny", "epigraf-tiny"])
def test_patch_training_shows_D_patches(name, monkeypatch):
    trainer = make_trainer(name)
    assert trainer.config.shown_resolution == trainer.G.config.points.patch_size == 16
    calls = spy_on_D(monkeypatch, trainer.D)
    c = trainer.sample_poses(BATCH)
    trainer.D.requires_grad_(True)
    trainer.loss.accumulate_gradients("Dmain", torch.rand(BATCH, 3, 32, 32) * 2 - 1, c,
                                      torch.randn(BATCH, trainer.G.z_dim), c, gain=1, cur_nimg=0)
    assert [call["shape"] for call in calls] == [(BATCH, 3, 16, 16)] * 2
    for call in calls:
        patch = call["patch"]
        assert patch is not None and patch.shape == (BATCH, 3)
        scale, offset = patch[:, 0], patch[:, 1:]
        assert ((scale >= 0.5 - 1e-6) & (scale <= 1 + 1e-6)).all()  # s_min = patch / image = 16 / 32
        assert ((offset >= -1e-6) & (offset <= (1 - scale)[:, None] + 1e-6)).all()


def test_full_image_patch_crop_is_the_resized_image():
    images = torch.rand(3, 3, 32, 32)
    full = PatchParams.full_image(3)
    assert torch.allclose(crop_real_patches(images, full, 32), images, atol=1e-6)
    resized = F.interpolate(images, size=16, mode="bilinear", align_corners=False, antialias=False)
    assert torch.allclose(crop_real_patches(images, full, 16), resized, atol=1e-6)
    assert torch.allclose(resized, F.avg_pool2d(images, 2), atol=1e-6)


@pytest.mark.parametrize("name", ["graf-tiny", "epigraf-tiny"])
def test_fake_patch_is_the_crop_of_the_full_render_at_the_same_place(name, monkeypatch):
    """The fake patch (rendered through the cropped-intrinsics camera) and the real crop (of an
    image of the same scene) look at the same image points: render the full frame, then compare."""
    trainer = make_trainer(name)
    G, loss = trainer.G.eval(), trainer.loss
    n = 2
    # Patches aligned with the 32 px pixel grid: 16 rays over 16 pixels read them exactly (pixel i at
    # u = (i + 0.5) / 32 on a centres grid, i / 31 on EpiGRAF's corners grid).
    unit = 31 if G.config.renderer.pixel_grid == "corners" else 32
    span = 15 if unit == 31 else 16
    params = PatchParams(torch.tensor([span / unit] * 2), torch.tensor([[8 / unit, 8 / unit], [16 / unit, 0.0]]))
    monkeypatch.setattr(loss, "sample_patches", lambda *args, **kwargs: params)
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(3))
    c = trainer.sample_poses(n)
    schedule = loss.schedule(10**7)
    with torch.no_grad():
        torch.manual_seed(11)
        full = G.synthesis(G.mapping(z, c), c, noise_mode="random")["image"]
        torch.manual_seed(11)
        fake, _, patches = loss.run_G(z, c, schedule, 10**7)
        real, real_patches = loss.real_images(full, 10**7)
    assert full.shape == (n, 3, 32, 32) and fake.shape == real.shape == (n, 3, 16, 16)
    assert patches is params and real_patches is params
    # (the corners grid's i / 31 positions are float32 round-off away from the pixels: atol)
    assert torch.allclose(real[0], full[0, :, 8:24, 8:24], atol=1e-5)
    assert torch.allclose(real[1], full[1, :, 0:16, 16:32], atol=1e-5)
    assert full.std() > 0.01
    worst = (fake - real).abs().max().item()
    assert worst < 1e-4, f"{name}: fake patch differs from the crop of the full render by {worst}"


@pytest.mark.parametrize("prior", ["pi_gan", "gram", "stylesdf", "volumegan", "stylenerf"])
def test_camera_angles_inverts_sample_cameras(prior):
    sample = sample_cameras(POSE_PRIORS[prior], 512, generator=torch.Generator().manual_seed(0))
    angles = camera_angles(sample.label, POSE_PRIORS[prior].pivot)
    expected = torch.stack([sample.yaw, sample.pitch.clamp(-math.pi / 2, math.pi / 2)], -1)
    assert torch.allclose(angles, expected, atol=1e-4)
    # positive elevation lowers the camera (y up)
    assert ((sample.label[:, 7] < 0) == (sample.pitch > 0)).float().mean() > 0.99
    assert torch.allclose(camera_angles(angles_to_label(angles, 1.0, 2.0)), angles, atol=1e-4)


@pytest.mark.parametrize("name", POSE_LOSS_PRESETS)
def test_pose_loss_target_is_the_angles_the_fake_was_sampled_with(name):
    trainer = make_trainer(name)
    prior = POSE_PRIORS[trainer.G.config.pose.prior]
    torch.manual_seed(21)
    labels = trainer.sample_poses(8)
    torch.manual_seed(21)
    sample = sample_cameras(prior, 8)
    assert torch.allclose(labels, sample.label)
    truth = torch.stack([sample.yaw, sample.pitch], -1)
    assert torch.allclose(trainer.poses.angles(labels), truth, atol=1e-4)
    assert trainer.loss.pose_loss(truth, labels).abs().max() < 1e-6
    assert trainer.loss.pose_loss(truth + 0.1, labels).min() > 0


def test_dataset_angle_poses_keep_the_dataset_angles():
    trainer = make_trainer("epigraf-tiny")  # the 'custom' distribution re-placed at r 1, fov 12
    torch.manual_seed(0)
    fakes = trainer.sample_poses(64)
    dataset_angles = camera_angles(trainer.pose_labels)
    fake_angles = trainer.poses.angles(fakes)
    # every fake's angles are those of some dataset camera
    distance = (fake_angles[:, None] - dataset_angles[None]).abs().amax(-1).min(1).values
    assert distance.max() < 1e-4
    assert torch.allclose(fakes[:, [3, 7, 11]].norm(dim=-1), torch.ones(64), atol=1e-5)


def _sphere_sdf_patch(G, radius: float, gain: float = 1.0):
    scale = G.config.embedder.coordinate_scale

    def sample_mixed(points, directions, ws, **_):
        return {"sdf": (points.norm(dim=-1, keepdim=True) - radius) * scale * gain}

    return sample_mixed


def test_eikonal_term_vanishes_for_an_exact_sdf(monkeypatch):
    config = train_preset("stylesdf-tiny")
    G = build_generator(config.generator)
    loss = PipelineLoss(G, None, config.loss, None)
    ws = G.mapping(torch.randn(2, G.z_dim), torch.zeros(2, G.c_dim))
    cameras = G.default_camera(2)
    real = loss.geometry_terms(ws, cameras)  # the network's own SDF: finite, and differentiable to its weights
    assert torch.isfinite(real["eikonal"]) and torch.isfinite(real["minimal_surface"])
    real["eikonal"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.decoder.parameters())

    radius = 0.06
    monkeypatch.setattr(G, "sample_mixed", _sphere_sdf_patch(G, radius))
    exact = loss.geometry_terms(ws, cameras)
    assert exact["eikonal"].item() < 1e-8
    assert 0 < exact["minimal_surface"].item() < 1
    monkeypatch.setattr(G, "sample_mixed", _sphere_sdf_patch(G, radius, gain=3.0))
    assert loss.geometry_terms(ws, cameras)["eikonal"].item() == pytest.approx(4.0, rel=1e-4)  # (3 - 1)^2


def test_sphere_initialisation_fits_the_sdf_to_the_sphere():
    trainer = make_trainer("stylesdf-tiny", sdf_sphere_init_steps=40)
    G, g = trainer.G, trainer.G.config
    radius = (g.points.far - g.points.near) / 4
    half = g.points.box_side / 2
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, G.z_dim, generator=gen)
    points = (torch.rand(4, 512, 3, generator=gen) * 2 - 1) * half
    directions = F.normalize(torch.randn(4, 512, 3, generator=gen), dim=-1)
    target = (points.norm(dim=-1) - radius) * g.embedder.coordinate_scale

    def mse():
        with torch.no_grad():
            ws = G.mapping(z, torch.zeros(4, G.c_dim))
            return F.mse_loss(G.sample_mixed(points, directions, ws)["sdf"][..., 0], target).item()

    before = mse()
    messages: list[str] = []
    trainer.initialize(messages.append)
    after = mse()
    assert after < before / 2, (before, after)
    assert len(messages) == 1 and "SDF sphere initialisation: 40 steps" in messages[0]
    assert all(torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), G.parameters()))
    trainer.config.loss.sdf_sphere_init_steps = 0  # off: initialize leaves the weights alone
    weights = [p.clone() for p in G.parameters()]
    trainer.initialize(messages.append)
    assert len(messages) == 1 and all(torch.equal(a, b) for a, b in zip(weights, G.parameters()))


# --- 6. the training benchmark -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["pigan-tiny", "epigraf-tiny"])
def test_bench_reports_throughput_and_memory(name, capsys):
    rc = train.main(["bench", "--cfg", name, "--device", "cpu", "--steps", "2", "--warmup", "1"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"cfg={name}" in out.out and "device=cpu" in out.out and f"batch={BATCH}" in out.out
    match = re.search(r"2 steps .*?: ([0-9.]+) img/s", out.out)
    assert match and float(match.group(1)) > 0, out.out
    assert "peak GPU memory n/a (CPU)" in out.out
    rss = re.search(r"peak RSS ([0-9.]+) GiB", out.out)
    assert rss and float(rss.group(1)) > 0


# --- path length ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["volumegan-tiny", "stylenerf-tiny"])
def test_path_length_regulariser_tracks_its_mean_and_resumes_with_it(name):
    """StyleGAN2's path length: one Greg pass moves the running mean from 0 by pl_decay x the mean
    length (recovered from the logged penalties), sends gradients into the mapping network, and
    the mean travels with the training state into a fresh trainer."""
    trainer = make_trainer(name)
    loss = trainer.loss
    assert trainer.config.loss.pl_weight == 2.0
    torch.manual_seed(0)
    z = torch.randn(BATCH, trainer.G.z_dim)
    c = trainer.sample_poses(BATCH)
    real = torch.zeros(BATCH, 3, 32, 32)
    trainer.G.requires_grad_(True)
    stats = loss.accumulate_gradients("Greg", real, c, z, c, gain=1.0, cur_nimg=0)
    penalty = stats["pl_penalty"]
    assert penalty.shape == (BATCH // trainer.config.loss.pl_batch_shrink,)
    lengths = loss.pl_mean + penalty.sqrt()  # lengths exceed the mean, which starts at 0
    assert float(loss.pl_mean) == pytest.approx(trainer.config.loss.pl_decay * float(lengths.mean()), rel=1e-5)
    mapping_grads = [p.grad for p in trainer.G.mapping_network.parameters() if p.grad is not None]
    assert mapping_grads and any(g.abs().sum() > 0 for g in mapping_grads)

    other = make_trainer(name)
    assert float(other.loss.pl_mean) == 0.0
    other.load_state_dict(trainer.state_dict())
    assert float(other.loss.pl_mean) == float(loss.pl_mean) > 0


def test_volumegan_generator_grows_with_the_discriminator():
    """VolumeGAN-tiny grows G's StyleGAN upsampler with D: at level 0 the fakes D sees come out of
    G at 16 px (no pooling), during the next level's fade they are the alpha blend, then 32 px."""
    trainer = make_trainer("volumegan-tiny")
    loss, G = trainer.loss, trainer.G
    assert trainer.config.loss.progressive_generator
    z = torch.randn(BATCH, G.z_dim)
    c = trainer.sample_poses(BATCH)
    for kimg, size in ((0.0, 16), (0.25, 32), (0.5, 32)):
        schedule = loss.schedule(kimg * 1e3)
        assert schedule.d_resolution == size
        torch.manual_seed(0)
        images, _, _ = loss.run_G(z, c, schedule, kimg * 1e3)
        assert images.shape[-1] == size
    # Mid-fade (alpha 0.5 at 0.25 kimg): G's image is the blend of the new block and the one below.
    schedule = loss.schedule(0.25e3)
    assert 0 < schedule.fade_alpha < 1
    G.eval()
    ws = G.mapping(z, c)
    grown = G.synthesis(ws, c, max_resolution=32, fade_alpha=1.0)["image"]
    faded = G.synthesis(ws, c, max_resolution=32, fade_alpha=schedule.fade_alpha)["image"]
    assert not torch.allclose(grown, faded)
    torch.testing.assert_close(G.synthesis(ws, c)["image"], grown)


def test_nerf_path_term_compares_the_rendering_with_the_image_at_the_same_points(monkeypatch):
    """StyleNeRF's NeRF-path term: where the volume rendering at each random sub-pixel point equals
    the image there, the term is 0 (so rays, points and the bilinear read line up); a rendering
    off by 0.1 everywhere gives exactly 0.01; only the NeRF path gets gradient."""
    from ops.camera import project_points, unpack_label
    from ops.compositing import Composite

    trainer = make_trainer("stylenerf-tiny")
    loss, G = trainer.loss, trainer.G
    assert trainer.config.loss.nerf_path_weight == 2.0
    n, res = 2, 32
    c = trainer.sample_poses(n)
    cam2world, intrinsics = unpack_label(c)

    def field(uv):  # a linear image: bilinear reads of it are exact away from the border
        return torch.stack([0.3 + 0.5 * uv[..., 0], -0.2 + 0.4 * uv[..., 1], 0.6 * uv[..., 0] - 0.3 * uv[..., 1]], -1)

    centres = (torch.arange(res) + 0.5) / res
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    images = field(torch.stack([u, v], -1)).permute(2, 0, 1).unsqueeze(0).repeat(n, 1, 1, 1)
    shift = {"value": 0.0}

    def render_rays(scene, origins, directions, options=None):
        uv, _ = project_points(origins + directions, cam2world, intrinsics)
        uv = uv.clamp(0.5 / res, 1 - 0.5 / res)  # beyond the outer pixel centres the read holds the edge (border)
        rgb = field(uv) + shift["value"]
        return Composite(rgb, torch.ones_like(rgb[..., :1]), torch.ones_like(rgb[..., :1, None]))

    monkeypatch.setattr(G, "render_rays", render_rays)
    ws = G.mapping(torch.randn(n, G.z_dim), c)
    assert float(loss.nerf_path_term(ws, c, images)) == pytest.approx(0.0, abs=1e-10)
    shift["value"] = 0.1
    assert float(loss.nerf_path_term(ws, c, images)) == pytest.approx(0.01, rel=1e-5)
    images.requires_grad_(True)
    shift["value"] = torch.tensor(0.1, requires_grad=True)  # stands for the NeRF path's parameters
    loss.nerf_path_term(ws, c, images).backward()
    assert images.grad is None  # the image is the target
    assert float(shift["value"].grad) == pytest.approx(2 * 0.1, rel=1e-5)  # d/ds mean((f + s - f)^2) = 2 s


def test_bench_times_grown_presets_at_full_size():
    """train.py bench starts a progressively grown preset past its last level, so D (and G) run at
    full size; presets that do not grow start at 0."""
    from training.bench import grown_nimg

    for name in ("pigan-tiny", "volumegan-tiny", "stylenerf-tiny"):
        config = train_preset(name)
        nimg = grown_nimg(config)
        loss = stub_loss(config.generator, **{k: getattr(config.loss, k) for k in (
            "progressive_start", "progressive_level_kimg", "progressive_fade_kimg")})
        assert loss.d_input_resolution(nimg) == (config.shown_resolution, 1.0)
        assert loss.d_input_resolution(nimg - 1)[0] < config.shown_resolution or loss.d_input_resolution(nimg - 1)[1] < 1
    assert grown_nimg(train_preset("graf-tiny")) == 0 and grown_nimg(train_preset("tiny")) == 0
