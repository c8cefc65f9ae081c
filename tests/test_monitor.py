"""The training monitor: `RunFollower` / `RunHistory` on fake run folders, and the real window via screenshots."""

from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from training.monitor import (
    PLOT_LOSSES,
    PLOT_METRICS,
    PLOT_REGULARIZERS,
    PLOT_SPEED,
    RunFollower,
    RunHistory,
    RunStatus,
    fit_size,
    load_rgba,
    main,
    scalar_options,
)

MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)


# --------------------------------------------------------------------------------------------
# Fake run folders, written the way the trainer writes them.


def log_row(tick: int, **extra) -> dict:
    """A plausible ``log.jsonl`` row for ``tick``."""
    row = {"tick": tick, "kimg": 0.4 * tick, "time_s": 30.0 * tick, "sec_per_tick": 30.2,
           "sec_per_kimg": 25.0 + math.sin(tick), "img_per_s": 40.0 + math.cos(tick), "lr/G": 0.0025,
           "loss/G": 1.1 + 0.2 * math.sin(tick), "loss/D_real": 0.5, "loss/D_fake": 0.6 - 0.01 * tick,
           "loss/D_r1": 0.01, "loss/G_density_reg": 0.02, "scores/real": 0.3, "scores/fake": -0.4,
           "r1_penalty": 0.1 + 0.01 * tick, "blur_sigma": 8.0, "neural_res": 64, "gpu_mem_gb": None,
           "cpu_mem_gb": 1.5, "timestamp": 1790000000.0 + tick}
    row.update(extra)
    return row


def append_lines(path: Path, rows: list[dict], tail: str = "") -> None:
    """Append rows as JSON lines, then ``tail`` verbatim (e.g. half a line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows) + tail)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_grid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (384, 256)) -> None:
    """A sample grid: a big ``color`` block (half of each side) on a dark blue background, atomically."""
    w, h = size
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:] = (30, 60, 120)
    pixels[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = color
    tmp = path.with_name("." + path.name + ".tmp.png")
    Image.fromarray(pixels).save(tmp)
    os.replace(tmp, path)


def make_run(run: Path, ticks: int = 4, grid_color: tuple[int, int, int] = MAGENTA) -> Path:
    """A run folder as the trainer leaves it after ``ticks`` ticks and one snapshot at kimg 4."""
    run.mkdir(parents=True, exist_ok=True)
    options = {"amp": "off", "batch": 8, "cfg": "ffhq", "data": "/data/heads.zip", "generator": {"z_dim": 512},
               "grid_yaws": [-0.5, 0.0, 0.5], "kimg": 25000, "metrics": ["swd", "fid"], "resume": None}
    write_atomic(run / "training_options.json", json.dumps(options).encode())
    append_lines(run / "log.jsonl", [log_row(t) for t in range(ticks)])
    append_lines(run / "metrics.jsonl", [
        {"metric": "swd", "kimg": 0.0, "value": 20.0, "results": {"swd": 20.0, "swd/16": 18.0}},
        {"metric": "swd", "kimg": 4.0, "snapshot": "network-snapshot-000004.000.safetensors", "value": 12.3,
         "results": {"swd": 12.3, "swd/16": 10.1, "swd/32": 14.5}, "timestamp": 1790000000.0}])
    write_grid(run / "samples-000004.000.png", grid_color)
    write_grid(run / "reals.png", (128, 128, 128), (128, 128))
    write_atomic(run / "network-snapshot-000004.000.safetensors", b"\0" * 2048)
    write_atomic(run / "latest", json.dumps({"kimg": 4.0, "snapshot": "network-snapshot-000004.000.safetensors",
                                             "samples": "samples-000004.000.png"}).encode())
    return run


# --------------------------------------------------------------------------------------------
# RunFollower.


def test_missing_dir_is_reported_not_raised(tmp_path):
    follower = RunFollower(tmp_path / "nope")
    update = follower.poll()
    assert update.status is RunStatus.MISSING
    assert "no such directory" in update.message
    assert update.log_rows == [] and update.snapshots == [] and update.samples is None
    make_run(tmp_path / "nope")  # created later: followed from its start
    assert len(follower.poll().log_rows) == 4


def test_empty_dir_waits_for_first_tick(tmp_path):
    follower = RunFollower(tmp_path)
    update = follower.poll()
    assert update.status is RunStatus.WAITING and update.message == "waiting for the first tick"
    (tmp_path / "log.jsonl").write_text('{"tick": 0, "kimg": 0.0')  # first line still being written
    assert follower.poll().status is RunStatus.WAITING


def test_incremental_appends_return_only_new_rows(tmp_path):
    log = tmp_path / "log.jsonl"
    append_lines(log, [log_row(0), log_row(1)])
    follower = RunFollower(tmp_path)
    assert [r["tick"] for r in follower.poll().log_rows] == [0, 1]
    assert follower.poll().log_rows == []
    append_lines(log, [log_row(2)])
    update = follower.poll()
    assert [r["tick"] for r in update.log_rows] == [2] and not update.log_reset


def test_partial_last_line_is_picked_up_when_complete(tmp_path):
    log = tmp_path / "log.jsonl"
    full = json.dumps(log_row(1))
    append_lines(log, [log_row(0)], tail=full[:20])
    follower = RunFollower(tmp_path)
    assert [r["tick"] for r in follower.poll().log_rows] == [0]
    assert follower.poll().log_rows == []  # still partial
    with open(log, "a") as f:
        f.write(full[20:] + "\n")
    assert [r["tick"] for r in follower.poll().log_rows] == [1]


def test_corrupt_complete_lines_are_skipped(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"tick": 0, "kimg": 0}\nnot json\n[1, 2]\n{"tick": 1, "kimg": 0.4}\n')
    follower = RunFollower(tmp_path)
    update = follower.poll()
    assert [r["tick"] for r in update.log_rows] == [0, 1] and update.skipped_lines == 2


def test_truncated_or_replaced_log_is_reread(tmp_path):
    log = tmp_path / "log.jsonl"
    append_lines(log, [log_row(t) for t in range(5)])
    follower = RunFollower(tmp_path)
    history = RunHistory()
    history.apply(follower.poll())
    assert history.log_rows == 5

    log.write_text("")  # truncated in place, then restarted
    append_lines(log, [log_row(0)])
    update = follower.poll()
    assert update.log_reset and [r["tick"] for r in update.log_rows] == [0]
    history.apply(update)
    assert history.log_rows == 1 and history.plots[PLOT_LOSSES]["loss/G"].xs == [0.0]

    # Rewritten under us with at least as many bytes: the tail no longer matches, so reread.
    write_atomic(log, "".join(json.dumps(log_row(t, kimg=10.0 + t)) + "\n" for t in range(3)).encode())
    update = follower.poll()
    assert update.log_reset and [r["kimg"] for r in update.log_rows] == [10.0, 11.0, 12.0]
    # Appended in place after that: a plain append again.
    append_lines(log, [log_row(3)])
    update = follower.poll()
    assert not update.log_reset and [r["tick"] for r in update.log_rows] == [3]


def test_deleted_run_resets(tmp_path):
    run = make_run(tmp_path / "run")
    follower = RunFollower(run)
    follower.poll()
    for p in run.iterdir():
        p.unlink()
    run.rmdir()
    update = follower.poll()
    assert update.status is RunStatus.MISSING and update.log_reset and update.metrics_reset


def test_metrics_grids_snapshots_options_and_latest(tmp_path):
    run = make_run(tmp_path)
    write_grid(run / "samples-000010.000.png", CYAN)
    write_grid(run / "samples-000002.000.png", CYAN)  # written last, but older in kimg
    write_atomic(run / "network-snapshot-000010.000.safetensors", b"\0" * 4096)
    write_atomic(run / "network-snapshot-000000.000.safetensors", b"\0" * 10)
    (run / "samples-notakimg.png").write_bytes(b"")  # not our naming: ignored
    follower = RunFollower(run)
    update = follower.poll()
    assert [r["value"] for r in update.metric_rows] == [20.0, 12.3]
    assert update.samples is not None and update.samples.path.name == "samples-000010.000.png"
    assert update.samples.kimg == 10.0
    assert update.reals is not None and update.reals.path.name == "reals.png"
    assert [(s.name, s.size_bytes) for s in update.snapshots] == [
        ("network-snapshot-000010.000.safetensors", 4096), ("network-snapshot-000004.000.safetensors", 2048),
        ("network-snapshot-000000.000.safetensors", 10)]
    assert update.latest["kimg"] == 4.0
    assert scalar_options(update.options) == [
        ("cfg", "ffhq"), ("data", "/data/heads.zip"), ("batch", "8"), ("kimg", "25000"), ("metrics", "swd, fid"),
        ("amp", "off"), ("grid_yaws", "-0.5, 0.0, 0.5"), ("resume", "null")]  # no nested "generator"

    # A rewritten grid under the same name gets a new stamp; an unchanged one keeps its stamp.
    assert follower.poll().samples == update.samples
    time.sleep(0.01)
    write_grid(run / "samples-000010.000.png", MAGENTA, (200, 100))
    assert follower.poll().samples != update.samples
    append_lines(run / "metrics.jsonl", [{"metric": "fid50k", "kimg": 10.0, "value": 88.0}])
    assert [r["metric"] for r in follower.poll().metric_rows] == ["fid50k"]


def test_monitor_starts_without_torch():
    """The monitor reads the trainer's names from training.run_dir, which must stay torch-free."""
    code = "import sys, training.monitor; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_trainer_log_rewind_on_resume_is_followed(tmp_path):
    """Resuming rewrites log.jsonl without the rows after the resumed state: the plots restart."""
    from training import run_dir

    log = tmp_path / run_dir.LOG
    for t in range(4):
        run_dir.append_jsonl(log, log_row(t))
    follower = RunFollower(tmp_path)
    assert len(follower.poll().log_rows) == 4
    run_dir.rewind_jsonl(log, max_kimg=0.5)
    run_dir.append_jsonl(log, log_row(2))
    update = follower.poll()
    assert update.log_reset and [r["tick"] for r in update.log_rows] == [0, 1, 2]


def test_status_training_then_idle(tmp_path):
    append_lines(tmp_path / "log.jsonl", [log_row(0)])
    mtime = os.stat(tmp_path / "log.jsonl").st_mtime
    now = [mtime + 5.0]
    follower = RunFollower(tmp_path, clock=lambda: now[0])
    update = follower.poll()
    assert update.status is RunStatus.TRAINING and update.message == "training"
    assert update.log_age_s == pytest.approx(5.0, abs=0.01)
    now[0] = mtime + 600.0
    update = follower.poll()
    assert update.status is RunStatus.IDLE and update.message == "idle/finished"


# --------------------------------------------------------------------------------------------
# RunHistory and helpers.


def test_history_groups_keys_and_skips_bad_values():
    from training.monitor import RunUpdate

    rows = [log_row(0), log_row(1, **{"loss/G": None, "loss/new_term": 3.0, "scores/fake": float("nan")}),
            {"tick": 2, "loss/G": 1.0},  # no kimg: nothing to plot against
            log_row(3, **{"loss/D_real": True, "r1_penalty": "high", "loss/G": float("inf")})]
    history = RunHistory()
    changed = history.apply(RunUpdate(RunStatus.TRAINING, "training", log_rows=rows, metric_rows=[
        {"metric": "swd", "kimg": 4.0, "value": 12.3, "results": {"swd": 12.3, "swd/16": 10.1}},
        {"metric": "fid", "kimg": 4.0, "value": None},  # failed evaluation: tabled, not plotted
        {"kimg": 4.0, "value": 1.0}]))  # no metric name
    assert changed == {PLOT_LOSSES, PLOT_REGULARIZERS, PLOT_SPEED, PLOT_METRICS}
    losses = history.plots[PLOT_LOSSES]
    assert set(losses) == {"loss/G", "loss/D_real", "loss/D_fake", "loss/D_r1", "loss/G_density_reg", "loss/new_term"}
    assert losses["loss/G"].xs == [0.0]  # null, missing kimg and inf skipped
    assert losses["loss/new_term"].xs == [0.4]
    assert losses["loss/D_real"].xs == [0.0, 0.4]  # a bool is not a number
    assert set(history.plots[PLOT_REGULARIZERS]) == {"scores/real", "scores/fake", "r1_penalty"}
    assert history.plots[PLOT_REGULARIZERS]["scores/fake"].xs == pytest.approx([0.0, 1.2])
    assert history.plots[PLOT_REGULARIZERS]["r1_penalty"].xs == [0.0, 0.4]
    assert set(history.plots[PLOT_SPEED]) == {"sec_per_kimg", "img_per_s"}
    assert "lr/G" not in str(history.plots)  # not plotted anywhere
    assert history.plots[PLOT_METRICS]["swd"].ys == [12.3]
    assert history.log_rows == 4 and history.last_log_row["tick"] == 3
    assert history.metric_table() == [("fid", "-", "4"), ("swd", "12.3", "4"), ("  swd/16", "10.1", "4")]


def test_fit_size_keeps_aspect():
    assert fit_size(384, 256, 600, 600) == (600, 400)
    assert fit_size(384, 256, 300, 100) == (150, 100)
    assert fit_size(1, 1000, 10, 10) == (1, 10)


def test_load_rgba_any_mode_and_large_grids(tmp_path):
    Image.new("L", (30, 20), 255).save(tmp_path / "gray.png")
    Image.new("P", (8, 8)).save(tmp_path / "palette.png")
    Image.new("RGB", (5000, 1000), MAGENTA).save(tmp_path / "huge.png")
    pixels, size = load_rgba(tmp_path / "gray.png")
    assert pixels.shape == (20, 30, 4) and pixels.dtype == np.float32 and size == (30, 20)
    assert np.all(pixels == 1.0)
    assert load_rgba(tmp_path / "palette.png")[0].shape == (8, 8, 4)
    pixels, size = load_rgba(tmp_path / "huge.png", max_side=1000)
    assert pixels.shape == (200, 1000, 4) and size == (5000, 1000)
    assert np.allclose(pixels[100, 500], [1.0, 0.0, 1.0, 1.0])


def test_main_rejects_missing_run_dir_before_opening_a_window(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: no such directory"
    (tmp_path / "file").write_text("")
    assert main([str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The real window, screenshotted under the test's display (Xvfb in CI).

WIDTH, HEIGHT = 1000, 700


def needs_display() -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("no DISPLAY: run the suite under xvfb-run to test the monitor window")


def start_monitor(run: Path, shot: Path, frames: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "training.monitor", str(run), "--screenshot", str(shot),
           "--exit-after-frames", str(frames), "--interval", "0.1", "--width", str(WIDTH), "--height", str(HEIGHT)]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float) -> str:
    """The first stdout line starting with ``prefix``; fails (and kills ``proc``) on EOF or timeout."""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"monitor never printed {prefix!r}; exit {proc.returncode}; stderr:\n{err}")


def finish(proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    """Wait for the monitor to exit 0; returns the rest of its stdout."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"monitor did not exit within {timeout_s} s; stderr:\n{err}")
    assert proc.returncode == 0, err
    return out


def count_near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 24) -> int:
    """How many pixels are within ``tolerance`` of ``color`` in every channel."""
    return int(np.all(np.abs(pixels[..., :3].astype(int) - color) <= tolerance, axis=-1).sum())


def check_screenshot(shot: Path) -> np.ndarray:
    """The screenshot's pixels, after checking it is a complete, non-blank window capture."""
    assert shot.exists()
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = np.asarray(image.convert("RGB"))
    distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert distinct > 200, f"screenshot looks blank: {distinct} distinct colours"
    return pixels


def test_window_screenshot_shows_plots_and_grid(tmp_path):
    needs_display()
    run = make_run(tmp_path / "run", ticks=6)
    shot = tmp_path / "monitor.png"
    proc = start_monitor(run, shot, frames=8)
    out = finish(proc)
    assert "6 ticks, 2 metric evals, image samples-000004.000.png" in out
    pixels = check_screenshot(shot)
    # The grid's block is a quarter of the grid, scaled to a panel of a few hundred px a side.
    assert count_near(pixels, MAGENTA) > 10_000
    # Plot lines use ImPlot's default colormap; the first (blue) line is in every plot.
    assert count_near(pixels, (76, 114, 176), tolerance=30) > 200


def test_window_follows_a_live_run(tmp_path):
    needs_display()
    run = make_run(tmp_path / "run", ticks=2)
    shot = tmp_path / "live.png"
    # Frames are paced at 30 fps at most, so after the first one we have >= 2 s to change the run;
    # the monitor polls every 0.1 s while it runs, and once more just before its screenshot.
    proc = start_monitor(run, shot, frames=60)
    wait_for_line(proc, "monitor: following", timeout_s=30.0)
    append_lines(run / "log.jsonl", [log_row(t) for t in range(2, 5)])
    write_grid(run / "samples-000008.000.png", CYAN, (256, 256))
    out = finish(proc)
    assert "5 ticks, 2 metric evals, image samples-000008.000.png" in out
    pixels = check_screenshot(shot)
    assert count_near(pixels, CYAN) > 10_000
    assert count_near(pixels, MAGENTA) < 100  # the old grid is gone


def test_window_in_process_toggles_reals_and_drops_reset_series(tmp_path):
    """Drive `MonitorWindow` directly: things a subprocess screenshot cannot click or see."""
    needs_display()
    from training.monitor import MonitorWindow

    run = make_run(tmp_path / "run", ticks=3)
    follower = RunFollower(run)
    window = MonitorWindow(run, WIDTH, HEIGHT)
    try:
        window.apply(follower.poll())
        window.render_frame()
        assert window.shown_image.path.name == "samples-000004.000.png"
        window.dpg.set_value(window._image_choice, "reals")  # what a click on the radio button does
        window.render_frame()
        assert window.shown_image.path.name == "reals.png"

        (run / "log.jsonl").write_text(json.dumps({"tick": 0, "kimg": 0.0, "loss/other": 1.0}) + "\n")
        window.apply(follower.poll())
        window.render_frame()
        assert set(window.history.plots[PLOT_LOSSES]) == {"loss/other"}
        assert {key for plot, key in window._series if plot == PLOT_LOSSES} == {"loss/other"}
        assert window.history.plots[PLOT_SPEED] == {}
    finally:
        window.close()
