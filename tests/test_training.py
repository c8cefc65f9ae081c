"""The trainer: EG3D recipe pieces, a tiny real run, the run directory, and kill-anywhere resume."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT
from training.config import LossConfig, TrainConfig, apply_overrides
from training.distributed import init_distributed
from training.loop import Trainer, load_training_state
from training.loss import gaussian_blur, schedule_at
from training.presets import train_preset

# A cut-down tiny preset so each step takes well under a second on 2 CPU cores.
FAST = ["generator.points.num_coarse=6", "generator.points.num_fine=6",
        "generator.neural_rendering_resolution=16", "loss.neural_rendering_resolution_initial=16"]


@pytest.fixture(scope="module")
def heads_zip(tmp_path_factory) -> Path:
    from training.synthetic import write_synthetic_dataset

    path = tmp_path_factory.mktemp("data") / "heads64.zip"
    write_synthetic_dataset(path, "heads", 24, 64, seed=3, geometry=False)
    return path


def fast_config(data: Path, outdir: Path, **fields) -> TrainConfig:
    config = apply_overrides(train_preset("tiny"), FAST)
    config.data, config.outdir = str(data), str(outdir)
    config.batch, config.workers, config.metrics, config.grid_seeds = 4, 0, [], 2
    config.grid_yaws = (-0.3, 0.3)
    for k, v in fields.items():
        setattr(config, k, v)
    return config


# --- recipe pieces ------------------------------------------------------------------------------

def test_schedules_follow_eg3d():
    loss = LossConfig(blur_init_sigma=10, blur_fade_kimg=200, gpc_reg_fade_kimg=1000,
                      neural_rendering_resolution_initial=64, neural_rendering_resolution_final=128,
                      neural_rendering_resolution_fade_kimg=1000)
    start, mid, end = schedule_at(0, loss, 0.5), schedule_at(100_000, loss, 0.5), schedule_at(2_000_000, loss, 0.5)
    assert start.blur_sigma == 10 and mid.blur_sigma == pytest.approx(5) and end.blur_sigma == 0
    assert start.swapping_prob == 1 and mid.swapping_prob == pytest.approx(0.95) and end.swapping_prob == 0.5
    assert start.neural_rendering_resolution == 64 and end.neural_rendering_resolution == 128
    assert schedule_at(500_000, loss, 0.5).neural_rendering_resolution == 96
    assert schedule_at(0, loss, None).swapping_prob is None  # GPC off


def test_gaussian_blur_preserves_constants_and_smooths():
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(gaussian_blur(flat, 2.0)[..., 8:-8, 8:-8], flat[..., 8:-8, 8:-8])
    impulse = torch.zeros(1, 1, 33, 33)
    impulse[..., 16, 16] = 1
    blurred = gaussian_blur(impulse, 2.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[..., 16, 16].item() < 0.2 and blurred[..., 16, 18].item() > 0
    assert gaussian_blur(impulse, 0.0) is impulse


def test_lazy_regularisation_corrects_adam(heads_zip, tmp_path):
    config = fast_config(heads_zip, tmp_path)
    trainer = Trainer(config, init_distributed(1, "cpu"), np.zeros((4, 25), np.float32) + _front_label())
    names = [(p.name, p.interval) for p in trainer.phases]
    assert names == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    g, d = trainer.opt_G.param_groups[0], trainer.opt_D.param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and d["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d["betas"][1] == pytest.approx(0.99 ** (16 / 17))


def test_ema_ramp_up(heads_zip, tmp_path):
    config = fast_config(heads_zip, tmp_path)
    trainer = Trainer(config, init_distributed(1, "cpu"), np.zeros((4, 25), np.float32) + _front_label())
    with torch.no_grad():
        for p in trainer.G.parameters():
            p.add_(1.0)
    before = [p.clone() for p in trainer.G_ema.parameters()]
    trainer.cur_nimg = 0  # ramp-up: half-life 0 images -> G_ema becomes G
    trainer.update_ema()
    assert all(torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters()))
    for p, b in zip(trainer.G_ema.parameters(), before):
        p.data.copy_(b)
    trainer.cur_nimg = 10**9  # half-life batch*10/32 kimg = 1250 images; one batch of 4 moves 0.22 %
    trainer.update_ema()
    beta = 0.5 ** (4 / 1250)
    p_ema, p_g, p_old = next(trainer.G_ema.parameters()), next(trainer.G.parameters()), before[0]
    assert torch.allclose(p_ema, p_g.lerp(p_old, beta), atol=1e-6)


def _front_label() -> np.ndarray:
    from ops.camera import orbit_label

    return orbit_label(0.0, 0.0).numpy()


def test_r1_penalty_matches_autograd(heads_zip, tmp_path):
    config = fast_config(heads_zip, tmp_path)
    trainer = Trainer(config, init_distributed(1, "cpu"), np.zeros((4, 25), np.float32) + _front_label())
    loss = trainer.loss
    real = torch.rand(4, 3, 64, 64) * 2 - 1
    c = torch.as_tensor(np.repeat(_front_label(), 4, 0))
    trainer.D.requires_grad_(True)
    stats = loss.accumulate_gradients("Dreg", real, c, torch.randn(4, 64), c, gain=1, cur_nimg=10**7)
    sched = loss.schedule(10**7)
    images = {k: v.detach().requires_grad_(True) for k, v in loss.real_images(real, sched).items()}
    logits = loss.run_D(images, c, sched.blur_sigma)
    g1, g2 = torch.autograd.grad(logits.sum(), [images["image"], images["image_raw"]])
    expected = g1.square().sum([1, 2, 3]) + g2.square().sum([1, 2, 3])
    assert torch.allclose(stats["r1_penalty"], expected, rtol=1e-4)
    # Every D weight feels R1 except the output bias, which does not change input gradients.
    no_grad = [n for n, p in trainer.D.named_parameters() if p.grad is None]
    assert no_grad == ["b4.out.bias"]


def test_config_round_trips_and_overrides():
    config = train_preset("ffhq512")
    again = TrainConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    changed = apply_overrides(config, ["loss.r1_gamma=0.3", "generator.points.num_coarse=24", "amp=bf16"])
    assert changed.loss.r1_gamma == 0.3 and changed.generator.points.num_coarse == 24 and changed.amp == "bf16"
    with pytest.raises(ValueError, match="no config field 'gama'"):
        apply_overrides(config, ["loss.gama=1"])
    bad = train_preset("tiny")
    bad.batch, bad.gpus = 6, 4
    with pytest.raises(ValueError, match="not divisible"):
        bad.validate()


# --- real runs ------------------------------------------------------------------------------------

def test_tiny_fit_writes_a_complete_run(heads_zip, tmp_path):
    from models import load_generator
    from tests.test_eval_metrics import FakeInception, script_to
    from training.loop import fit

    inception = script_to(FakeInception(), tmp_path / "inception.pt")  # stands in for the user's file
    config = fast_config(heads_zip, tmp_path / "runs", kimg=0.016, tick_kimg=0.008, snap=1, metrics=["swd", "fid"],
                         metric_images=8, inception=str(inception))
    run = fit(config, init_distributed(1, "cpu"), progress=False, log=lambda s: None)
    assert run.name == "00000-tiny-heads64-gpus1-batch4-gamma1"
    files = {p.name for p in run.iterdir()}
    for name in ("training_options.json", "log.jsonl", "metrics.jsonl", "reals.png", "latest",
                 "samples-000000.000.png", "samples-000000.016.png",
                 "network-snapshot-000000.008.safetensors", "network-snapshot-000000.016.safetensors",
                 "training-state-000000.016.pt"):
        assert name in files
    assert any(n.startswith("events.out.tfevents") for n in files)
    assert not [n for n in files if n.endswith(".tmp")]
    rows = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in rows] == [0.008, 0.016]
    for key in ("loss/G", "loss/D_real", "loss/D_fake", "sec_per_kimg", "img_per_s", "lr/G", "blur_sigma", "cpu_mem_gb"):
        assert all(np.isfinite(r[key]) for r in rows), key
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["metric"], m["kimg"]) for m in metrics if m["metric"] in ("swd", "fid")] == [
        (name, kimg) for kimg in (0.0, 0.008, 0.016) for name in ("swd", "fid")]
    assert all(m["value"] > 0 for m in metrics)
    latest = json.loads((run / "latest").read_text())
    assert latest["state"] == "training-state-000000.016.pt" and latest["kimg"] == 0.016
    G = load_generator(run / latest["snapshot"])
    out = G(torch.randn(1, G.z_dim), torch.as_tensor(_front_label()))
    assert out["image"].shape == (1, 3, 64, 64) and torch.isfinite(out["image"]).all()
    state = load_training_state(run / latest["state"])
    assert state["cur_nimg"] == 16 and state["sampler_position"] == 16
    saved = json.loads((run / "training_options.json").read_text())
    assert saved["batch"] == 4 and saved["generator"]["img_resolution"] == 64


def test_a_resumed_run_continues_with_the_set_overrides_it_is_given(heads_zip, tmp_path):
    """A run goes on with changed settings (EG3D's higher neural resolution for the last stretch):
    the resumed config takes the command line's --set overrides, says what changed, writes them to
    training_options.json and trains with them; overrides equal to the saved values change nothing."""
    from models import load_generator
    from training.loop import fit, resumed_config

    config = fast_config(heads_zip, tmp_path / "runs", kimg=0.008, tick_kimg=0.008, snap=1)
    run = fit(config, init_distributed(1, "cpu"), progress=False, log=lambda s: None)
    assert load_generator(run / "network-snapshot-000000.008.safetensors").neural_rendering_resolution == 16

    changes = ["loss.neural_rendering_resolution_final=24", "loss.neural_rendering_resolution_fade_kimg=0.008",
               "loss.r1_gamma=1.0"]  # the last one repeats the saved value
    messages: list[str] = []
    longer = fast_config(heads_zip, tmp_path / "runs", kimg=0.016, tick_kimg=0.008, snap=1)
    assert fit(longer, init_distributed(1, "cpu"), resume=str(run), progress=False, log=messages.append,
               changes=changes) == run
    assert messages[0] == ("resuming with changed settings: loss.neural_rendering_resolution_final: None -> 24; "
                           "loss.neural_rendering_resolution_fade_kimg: 1000.0 -> 0.008")
    assert load_generator(run / "network-snapshot-000000.016.safetensors").neural_rendering_resolution == 24
    saved = json.loads((run / "training_options.json").read_text())
    assert saved["loss"]["neural_rendering_resolution_final"] == 24 and saved["kimg"] == 0.016
    state = load_training_state(run / "training-state-000000.016.pt")
    assert json.loads(state["config"])["loss"]["neural_rendering_resolution_final"] == 24

    again, changed = resumed_config(TrainConfig.from_dict(saved), longer, changes)
    assert changed == [] and again.loss.neural_rendering_resolution_final == 24
    with pytest.raises(ValueError, match="no config field 'nope'"):
        resumed_config(TrainConfig.from_dict(saved), longer, ["loss.nope=1"])


def test_training_state_loader_refuses_code(tmp_path):
    from models.errors import CheckpointError

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "training-state-evil.pt"
    torch.save({"format": "3dgan-studio/training-state", "version": 1, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="training-state-evil.pt"):
        load_training_state(path)
    assert not marker.exists()
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="truncated"):
        load_training_state(path)


def _fit_command(data: Path, outdir: Path, kimg: float, resume: bool = False) -> list[str]:
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), "fit", "--data", str(data), "--outdir", str(outdir),
           "--cfg", "tiny", "--batch", "4", "--kimg", str(kimg), "--tick", "0.008", "--snap", "1",
           "--metrics", "none", "--workers", "1", "--device", "cpu", "--no-progress"]
    for item in FAST:
        cmd += ["--set", item]
    if resume:
        cmd += ["--resume", "auto"]
    return cmd


def test_sigkill_trials_lose_nothing(tmp_path):
    """Three SIGKILLs (random moments and mid-write) with --resume auto after each: no corrupt file, at most
    one snapshot interval lost per kill, one run directory, and the final weights equal an uninterrupted
    run's (the script ``python -m tests.kill_trials`` runs the same with more kills)."""
    from tests.kill_trials import run_trials

    report = run_trials(kills=3, seed=1, kimg=0.064, folder=tmp_path, log=lambda line: None)
    assert report.kills == 3 and report.kills_during_writes == 1
    assert report.corrupt == []
    assert report.worst_lost_intervals <= 1.0
    assert report.run_directories == 1 and report.leftover_partials == 0
    assert report.final_difference <= 1e-5, f"resumed run drifted from the uninterrupted one by {report.final_difference}"


def test_bf16_autocast_step_is_finite(heads_zip, tmp_path):
    # fp16 autocast is a CUDA feature (the loss-scale logic is tested below); bf16 also runs on CPUs.
    config = fast_config(heads_zip, tmp_path, amp="bf16")
    trainer = Trainer(config, init_distributed(1, "cpu"), np.zeros((4, 25), np.float32) + _front_label())
    real = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    c = torch.as_tensor(np.repeat(_front_label(), 4, 0))
    before = [p.clone() for p in trainer.G.parameters()]
    stats = trainer.step(real, c)
    assert all(torch.isfinite(t).all() for values in stats.values() for t in values)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))


@pytest.mark.parametrize("cfg", ["tiny", "pigan-tiny", "gram-tiny", "stylesdf-tiny", "volumegan-tiny", "stylenerf-tiny",
                                 "graf-tiny", "giraffe-tiny", "epigraf-tiny"])
def test_every_tiny_preset_trains_under_bf16_autocast_on_the_cpu(cfg):
    """``--amp bf16`` on the CPU for every method: one step (``train.py bench``'s path), finite losses.
    pi-GAN, GRAM and StyleSDF once failed here: their mappings returned bf16 ws against the fp32
    ``w_avg`` and the fp32 field decoders."""
    from training.bench import random_pose_labels

    config = train_preset(cfg)
    config.batch, config.amp, config.workers = 2, "bf16", 0
    trainer = Trainer(config, init_distributed(1, "cpu"), random_pose_labels(config))
    res = config.generator.img_resolution
    real = torch.randint(0, 256, (2, 3, res, res), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    stats = trainer.step(real, torch.as_tensor(random_pose_labels(config, 2, seed=1)))
    assert stats and all(torch.isfinite(t).all() for values in stats.values() for t in values), cfg


def test_fp16_loss_scale_skips_overflowing_steps():
    from training.loop import DynamicLossScale

    scale = DynamicLossScale(enabled=True, init_scale=1024.0, growth_interval=2)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, float("inf"), 2.0])
    assert not scale.unscale_and_check([p]) and scale.scale == 512.0
    p.grad = torch.tensor([512.0, 1024.0, 0.0])
    assert scale.unscale_and_check([p]) and torch.equal(p.grad, torch.tensor([1.0, 2.0, 0.0]))
    p.grad = torch.zeros(3)
    assert scale.unscale_and_check([p]) and scale.scale == 1024.0  # grows after growth_interval good steps


def test_resume_auto_picks_the_newest_complete_run_of_the_same_preset(tmp_path):
    from training import run_dir as rundir

    def make(name: str, cfg: str, complete: bool) -> Path:
        run = tmp_path / name
        run.mkdir()
        rundir.write_json(run / rundir.OPTIONS, {"cfg": cfg})
        if complete:
            (run / "training-state-000001.000.pt").write_bytes(b"x")
            rundir.write_latest(run, {"kimg": 1.0, "state": "training-state-000001.000.pt"})
        return run

    tiny_old = make("00000-tiny-a", "tiny", True)
    make("00001-ffhq512-b", "ffhq512", True)
    make("00002-tiny-c", "tiny", False)  # killed before its first snapshot
    assert rundir.find_resumable_run(tmp_path, "tiny") == tiny_old
    assert rundir.find_resumable_run(tmp_path, "shapenet128") is None
    assert rundir.find_resumable_run(tmp_path).name == "00001-ffhq512-b"


def test_training_state_errors_are_one_line_without_unsafe_advice(tmp_path):
    """Bug: the training-state loader passed torch's 6-10 line text through, ANSI escapes and the
    advice to retry with weights_only=False included."""
    import pickle

    from models.errors import CheckpointError
    from training.loop import load_training_state

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    hostile = tmp_path / "training-state-000001.000.pt"
    torch.save({"format": "3dgan-studio/training-state", "payload": Payload()}, hostile)
    truncated = tmp_path / "truncated.pt"
    torch.save({"x": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(pickle.dumps("not a state") + b"\x1b[1m\n\nmore")
    for path in (hostile, truncated, garbage):
        with pytest.raises(CheckpointError) as info:
            load_training_state(path)
        message = str(info.value)
        assert "\n" not in message and "\x1b" not in message and message.startswith(f"{path}: "), message
        assert "weights_only=False" not in message
    assert "refused" in str(pytest.raises(CheckpointError, load_training_state, hostile).value)
