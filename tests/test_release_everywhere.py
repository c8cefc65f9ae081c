"""Every released official format we import opens everywhere a user opens files: the app (a session
script's load, as a drop or the path box does), the batch tools and convert, with every render mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT, SHARED_DIR

FIXTURES = SHARED_DIR / "fixtures"
RELEASES = [  # (fixture file, release where the file cannot tell)
    ("pigan_ref/generator.pth", None),
    ("gram_ref/generator.pth", "gram-ffhq"),  # the fixture's manifold predictor matches no released width
    ("volumegan_ref/checkpoint.pth", None),
    ("stylesdf_ref/full_model.pt", "stylesdf-ffhq1024"),  # a 128 px decoder: no released depth
    ("graf_ref/model_best.pt", "graf-carla64"),  # model_best.pt names no released file
    ("epigraf_ref/network.pkl", None),
    ("giraffe_ref/model_best.pt", "giraffe-compcars64"),  # narrow layers: no released width
    ("stylenerf_ref/network.pkl", "stylenerf-ffhq256"),  # a 64 px network: no released size
]


def vis(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(params=RELEASES, ids=[r[0].split("/")[0] for r in RELEASES])
def release_file(request, tmp_path):
    name, release = request.param
    source = FIXTURES / name
    if not source.exists():
        pytest.fail(f"reference material missing: {source}")
    folder = tmp_path / "release"
    shutil.copytree(source.parent, folder)
    return folder / source.name, release


def test_batch_tools_and_convert_open_a_release(release_file, tmp_path):
    path, release = release_file
    extra = ["--release", release] if release else []
    result = vis("images", str(path), "--seeds", "0", "--views", "3", "--depth", "--normals", "--out",
                 str(tmp_path / "img"), *extra)
    assert result.returncode == 0, result.stderr
    strip = np.asarray(Image.open(tmp_path / "img" / "seed0000.png"))
    assert strip.std() > 0
    result = vis("mesh", str(path), "--seeds", "0", "--res", "32", "--out", str(tmp_path / "mesh"), *extra)
    assert result.returncode == 0, result.stderr
    result = vis("video", str(path), "--seeds", "0", "--frames", "2", "--fps", "10", "--out", str(tmp_path / "v.mp4"),
                 *extra)
    assert result.returncode == 0 and (tmp_path / "v.mp4").stat().st_size > 0, result.stderr
    result = vis("convert", str(path), str(tmp_path / "m.safetensors"), *extra)
    assert result.returncode == 0, result.stderr
    result = vis("images", str(tmp_path / "m.safetensors"), "--seeds", "0", "--views", "3", "--depth", "--normals",
                 "--out", str(tmp_path / "img2"))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "img2" / "seed0000.png")), strip)


def test_the_app_opens_a_release_and_shows_every_mode(release_file, tmp_path):
    path, release = release_file
    load = {"load": str(path)} | ({"release": release} if release else {})
    actions = [load, {"wait": True}]
    for mode in ("rgb", "raw", "depth", "normals", "mesh"):
        actions += [{"set": {"mode": mode, "mesh_resolution": 32}}, {"wait": True},
                    {"screenshot": str(tmp_path / f"{mode}.png")}]
    script = tmp_path / "s.json"
    script.write_text(json.dumps(actions))
    result = vis("--script", str(script), "--exit", "--device", "cpu", "--size", "800x600")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    for mode in ("rgb", "raw", "depth", "normals", "mesh"):
        assert np.asarray(Image.open(tmp_path / f"{mode}.png")).std() > 0, mode
