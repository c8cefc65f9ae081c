"""The visualizer command line: preview and bench run end to end and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import REPO_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), *args], capture_output=True, text=True,
                          timeout=300)


def test_preview_without_arguments_writes_png(tmp_path):
    out = tmp_path / "preview.png"
    result = run_cli("preview", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "bundled default model (default_generator.safetensors)" in result.stdout
    image = np.asarray(Image.open(out))
    assert image.shape == (128, 192, 3)  # 2 rows (RGB, depth) x 3 views of 64 px
    assert image[:64].std() > 0 and image[64:].std() > 0


def test_bench_prints_medians_and_split():
    result = run_cli("bench", "tiny", "--frames", "2", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    values = {}
    for name in ("full frame", "camera-only frame", "mapping", "backbone", "rendering", "superres"):
        m = re.search(rf"{name}\s+([0-9.]+) ms", text)
        assert m, f"{name!r} missing from:\n{text}"
        values[name] = float(m.group(1))
    assert "medians over 2 frames" in text
    assert all(v > 0 for v in values.values())
    # The stages are timed inside the full frame, so they cannot add up to more than it.
    stages = sum(values[s] for s in ("mapping", "backbone", "rendering", "superres"))
    assert stages <= values["full frame"] * 1.01


def test_bench_app_pipeline_reports_every_stage():
    """With a display, bench also times render, convert, upload and draw in a hidden window."""
    import os

    import pytest

    if not os.environ.get("DISPLAY"):
        pytest.skip("no display (run under xvfb-run, as `make test` does)")
    result = run_cli("bench", "tiny", "--frames", "2", "--warmup", "1", "--window", "256")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "app pipeline: render device cpu, host upload" in text and "256x256 viewport" in text
    rows = {}
    for name in ("camera", "drag preview", "full"):
        m = re.search(rf"^  {name} \(r=(\d+)(, no SR)?\)\s+" + r"\s+".join([r"([0-9.]+)ms"] * 5) + r"\s+([0-9.]+)$",
                      text, re.MULTILINE)
        assert m, f"{name!r} row missing from:\n{text}"
        r, no_sr, *values = m.groups()
        render, convert, upload, draw, total, fps = map(float, values)
        assert min(render, convert, upload, draw) > 0
        # The total is the median of per-frame sums, which dominates each stage's median.
        assert total >= max(render, convert, upload, draw) - 0.01
        # fps is printed to 0.1 and total to 0.01 ms; allow for both roundings.
        assert abs(fps - 1000 / total) <= 0.05 + 1000 * 0.005 / total**2 + 1e-6
        rows[name] = (int(r), no_sr is not None)
    assert rows["camera"] == (32, False) and rows["full"] == (32, False)
    assert rows["drag preview"][1] and rows["drag preview"][0] <= 32  # no SR, never above full res


def test_bench_rejects_mismatched_resolution_and_bad_path(tmp_path):
    result = run_cli("bench", "tiny", "--res", "512", "--frames", "1")
    assert result.returncode != 0 and "does not match" in result.stderr
    result = run_cli("bench", str(tmp_path / "missing.pkl"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.pkl'}: no such file"


def test_train_dataset_synthetic_command(tmp_path):
    import json
    import zipfile

    out = tmp_path / "heads.zip"
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), "dataset", "synthetic", "--kind", "heads",
           "--out", str(out), "--count", "3", "--res", "32"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        labels = json.loads(zf.read("dataset.json"))["labels"]
        assert [name for name, _ in labels] == ["img00000000.png", "img00000001.png", "img00000002.png"]
        assert len([n for n in zf.namelist() if n.startswith("geometry/")]) == 3
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "exists" in again.stderr
    bad = subprocess.run(cmd[:5] + ["planets"] + cmd[6:] + ["--force"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "unknown --kind 'planets'" in bad.stderr


def test_bundled_model_loads_and_records_its_provenance():
    from safetensors import safe_open

    from models import load_generator
    from renderers.model_source import DEFAULT_MODEL

    with safe_open(str(DEFAULT_MODEL), "pt") as f:
        meta = f.metadata()
    assert meta["command"].startswith("python train.py fit") and "--cfg eg3d-sdf-tiny" in meta["command"]
    assert "--seed 0" in meta["data_command"] and meta["data_seed"] == "0"
    assert float(meta["kimg"]) >= 40 and float(meta["train_seconds"]) > 0
    G = load_generator(DEFAULT_MODEL)
    from renderers.preview import render_grid

    grid = render_grid(G, seeds=[0], yaws=(-0.4, 0.4))
    rgb, depth = grid[:64].astype(float), grid[64:, :, 0].astype(float)
    # A trained head, not noise: views differ, and depth has a near (bright) foreground blob.
    assert np.abs(rgb[:, :64] - rgb[:, 64:]).mean() > 2
    assert depth[16:48, 16:48].mean() > depth[:, :8].mean() + 40


def test_preview_refuses_to_overwrite_without_force(tmp_path):
    """Bug: preview replaced an existing PNG silently; now, like every batch command, it needs --force."""
    out = tmp_path / "preview.png"
    out.write_bytes(b"keep me")
    result = run_cli("preview", "--out", str(out))
    assert result.returncode == 2 and result.stderr.strip() == f"error: {out} exists (use --force to replace it)"
    assert out.read_bytes() == b"keep me"
    result = run_cli("preview", "--out", str(out), "--force")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(out)).shape == (128, 192, 3)


def test_help_texts_name_real_metrics_and_one_default_action():
    """Bug: --help suggested `--metrics fid50k_full` (which `metrics` refuses) and called two actions the default."""
    from training.evaluation import METRICS

    text = run_cli("--help").stdout
    assert "fid50k_full" not in text and text.count("default action") == 1
    for line in text.splitlines():
        if "--metrics " in line:
            names = line.split("--metrics ")[1].split()[0].rstrip(",.").split(",")
            assert all(name in METRICS for name in names if name != "..."), line


def test_train_monitor_help_prints_its_usage():
    """Bug: `train.py monitor --help` (and -h) failed with 'unrecognized arguments'."""
    for flag in ("--help", "-h"):
        result = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "monitor", flag], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: train.py monitor") and "RUN_DIR" in result.stdout
