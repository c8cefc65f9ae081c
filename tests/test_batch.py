"""Batch tools (visualizer.py images|video|mesh|metrics): outputs decode and have the promised
layout, they are the app's pictures, --force is all-or-nothing, out-of-memory halves the batch,
bad input is a one-line error with exit status 2, and official EG3D pickles work too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from renderers import batch as B
from renderers.display_frame import frame_to_rgb, to_display_frame
from renderers.render_args import CameraPose, DisplayArgs
from renderers.renderer import GeneratorRenderer
from tests.conftest import REPO_ROOT
from training import evaluation

R = 64  # the bundled model's image size


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def G():
    model, label = B.load_model(None, "cpu")
    assert "bundled" in label and model.img_resolution == R
    return model


def quiet(_: str) -> None:
    pass


# --- parsing --------------------------------------------------------------------------------------

def test_views_count_and_explicit_list():
    poses = B.parse_views("3")
    assert [round(p.yaw, 6) for p in poses] == [-0.4, 0.0, 0.4] and all(p.pitch == 0 for p in poses)
    assert [(p.yaw, p.pitch) for p in B.parse_views("1")] == [(0.0, 0.0)]
    assert [(p.yaw, p.pitch) for p in B.parse_views("0.3:-0.1, -.5:0")] == [(0.3, -0.1), (-0.5, 0.0)]
    for bad in ("0", "a:b", "0.1", "1:2:3"):
        with pytest.raises(B.BatchError):
            B.parse_views(bad)


def test_seed_and_grid_parsing():
    assert B.parse_seed_list("0-2,7") == [0, 1, 2, 7]
    assert B.parse_grid("3x2") == (3, 2)
    for bad in ("3-1", "x", "1,,2"):
        with pytest.raises(B.BatchError):
            B.parse_seed_list(bad)
    with pytest.raises(B.BatchError):
        B.parse_grid("0x2")


def test_cell_keyframes_fixed_and_round_robin():
    assert B.cell_keyframes([5, 6, 7, 8], 4) == [[5], [6], [7], [8]]  # one seed per cell: fixed
    assert B.cell_keyframes([5, 6], 4) == [[5], [6], [5], [6]]  # fewer seeds: the list repeats
    # More seeds than cells: dealt round-robin, wrapping so every cell has ceil(5 / 2) = 3 keys.
    assert B.cell_keyframes([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3, 0]]


# --- images ---------------------------------------------------------------------------------------

def test_images_strips_rows_and_contact_sheet(G, tmp_path):
    views = B.parse_views("3")
    paths = B.run_images(G, [0, 3], views, tmp_path, depth=True, normals=True, grid=True, progress=False, log=quiet)
    assert [p.name for p in paths] == ["seed0000.png", "seed0003.png", "grid.png"]
    strips = [np.asarray(Image.open(p)) for p in paths[:2]]
    assert all(s.shape == (3 * R, 3 * R, 3) for s in strips)  # RGB, depth, normals rows x 3 views
    sheet = np.asarray(Image.open(paths[2]))
    assert np.array_equal(sheet, np.concatenate(strips, axis=0))
    # Each row is what the app shows for that mode: rendered by the shared renderer + frame_to_rgb.
    renderer = GeneratorRenderer(G)
    for row, mode in enumerate(("rgb", "depth", "normals")):
        request = B.seed_request(3)
        request.mode = mode
        request.view = CameraPose(yaw=0.4)
        expected = frame_to_rgb(to_display_frame(renderer.render(request)), DisplayArgs(), R)
        got = strips[1][row * R:(row + 1) * R, 2 * R:]
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, mode  # batched vs single float noise
    assert not np.array_equal(strips[0], strips[1])


def test_images_height_resamples_every_view_of_every_row(G, tmp_path):
    """--height 96: each view of each row (RGB, depth) is 96 pixels high, the native picture
    resampled with the shared Lanczos filter (not blown up by nearest neighbour)."""
    from renderers.images import resize_to_height

    views = B.parse_views("2")
    native = B.run_images(G, [1], views, tmp_path / "native", depth=True, progress=False, log=quiet)[0]
    tall = B.run_images(G, [1], views, tmp_path / "tall", depth=True, grid=True, height=96, progress=False,
                        log=quiet)
    strip, native = np.asarray(Image.open(tall[0])).astype(int), np.asarray(Image.open(native))
    assert strip.shape == (2 * 96, 2 * 96, 3)  # 2 rows x 2 views, each 96 x 96
    assert np.asarray(Image.open(tall[1])).shape == strip.shape  # the contact sheet of one seed
    for row in range(2):
        for col in range(2):
            expected = resize_to_height(native[row * R:(row + 1) * R, col * R:(col + 1) * R], 96).astype(int)
            got = strip[row * 96:(row + 1) * 96, col * 96:(col + 1) * 96]
            assert np.abs(got - expected).max() <= 2, (row, col)  # batched vs single float noise
    nearest = np.repeat(np.repeat(native[:R, :R], 3, axis=0), 3, axis=1)[::2, ::2].astype(int)  # 1.5x by nearest
    assert np.abs(strip[:96, :96] - nearest).mean() > 1


def test_out_of_memory_halves_the_batch(G, tmp_path, monkeypatch):
    reference = B.run_images(G, [1], B.parse_views("4"), tmp_path / "a", batch=1, progress=False, log=quiet)
    calls = []
    original = GeneratorRenderer.render_batch

    def fragile(self, requests, *args, **kwargs):
        calls.append(len(requests))
        if len(requests) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, requests, *args, **kwargs)

    monkeypatch.setattr(GeneratorRenderer, "render_batch", fragile)
    messages = []
    paths = B.run_images(G, [1], B.parse_views("4"), tmp_path / "b", batch=4, progress=False, log=messages.append)
    assert messages == ["out of memory with batch 4: retrying with batch 2",
                        "out of memory with batch 2: retrying with batch 1"]
    assert calls == [4, 2, 1, 1, 1, 1]
    assert np.array_equal(np.asarray(Image.open(paths[0])), np.asarray(Image.open(reference[0])))


def test_out_of_memory_at_batch_one_is_a_clear_error(G, tmp_path, monkeypatch):
    def broke(self, requests, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(GeneratorRenderer, "render_batch", broke)
    with pytest.raises(B.OutOfMemory, match="one item per call"):
        B.run_images(G, [1], B.parse_views("2"), tmp_path, batch=1, progress=False, log=quiet)
    assert not list(tmp_path.iterdir())


# --- video ----------------------------------------------------------------------------------------

def test_video_single_cell_orbit(G, tmp_path):
    from renderers.video import read_video_info

    result = B.run_video(G, [2], tmp_path / "orbit.mp4", frames=6, fps=12, progress=False, log=quiet)
    info = read_video_info(result.path)
    assert (info["frames"], info["size"], info["codec"], info["fps"]) == (6, (R, R), "h264", 12.0)


@pytest.mark.parametrize("grid,mode,seeds,size", [((2, 2), "rgb", [0, 1, 2, 3], (2 * R, 2 * R)),
                                                   ((3, 1), "depth", [0, 1, 2, 3, 4, 5], (3 * R, R)),
                                                   ((2, 1), "side", [0], (2 * 2 * R, R))])
def test_video_grids(G, tmp_path, grid, mode, seeds, size):
    from renderers.video import read_video_info

    out = tmp_path / "grid.mp4"
    B.run_video(G, seeds, out, trajectory="yaw", frames=4, grid=grid, mode=mode, progress=False, log=quiet)
    info = read_video_info(out)
    assert (info["frames"], info["size"], info["codec"]) == (4, size, "h264")


def test_cli_video_height_resamples_the_frames(tmp_path):
    """video --height 128: frames 128 pixels high, width to match (side mode: twice as wide), and
    they are the native frames resampled; bad heights are refused up front."""
    import imageio_ffmpeg

    from renderers.images import resize_to_height

    frames = {}
    for name, extra in (("native", []), ("tall", ["--height", "128"])):
        out = tmp_path / f"{name}.mp4"
        result = run_cli("video", "--seeds", "3", "--frames", "2", "--mode", "side", "--trajectory", "yaw",
                         "--device", "cpu", "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        reader = imageio_ffmpeg.read_frames(str(out))
        width, height = next(reader)["size"]
        frames[name] = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    assert [f.shape for f in frames["native"]] == [(R, 2 * R, 3)] * 2
    assert [f.shape for f in frames["tall"]] == [(128, 256, 3)] * 2
    for native, tall in zip(frames["native"], frames["tall"]):
        assert np.abs(resize_to_height(native, 128).astype(int) - tall.astype(int)).mean() < 6  # H.264 noise
    result = run_cli("video", "--height", "0", "--out", str(tmp_path / "bad.mp4"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: bad --height 0: give a whole number of pixels from 8 to 4096\n"


def test_video_latent_loop_passes_through_the_keyframe_seeds(G, tmp_path):
    """Two seeds in one cell: frame 0 is seed 4 and frame N/2 is seed 5 (keys sit on frames k*N/K),
    seen from the fixed camera of a 'circle' at frames 0 and N/2 (yaw 0 and pi)."""
    import imageio_ffmpeg

    out = tmp_path / "loop.mp4"
    B.run_video(G, [4, 5], out, trajectory="circle", frames=4, progress=False, log=quiet)
    reader = imageio_ffmpeg.read_frames(str(out))
    next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(R, R, 3).astype(int) for f in reader]
    renderer = GeneratorRenderer(G)
    for index, seed, yaw in ((0, 4, 0.0), (2, 5, np.pi)):
        request = B.seed_request(seed)
        request.view = CameraPose(yaw=float(yaw))
        expected = frame_to_rgb(to_display_frame(renderer.render(request)), DisplayArgs(), R).astype(int)
        other = B.seed_request(9 - seed)
        other.view = request.view
        wrong = frame_to_rgb(to_display_frame(renderer.render(other)), DisplayArgs(), R).astype(int)
        error = np.abs(frames[index] - expected).mean()
        assert error < 8  # H.264 at crf 18 with 4:2:0 chroma on 64 px frames: about 5
        assert error < np.abs(frames[index] - wrong).mean() / 4  # the other seed: about 50


def test_video_from_a_camera_path_file(G, tmp_path):
    from renderers.trajectories import CameraPath
    from renderers.video import read_video_info

    path = CameraPath(fps=10.0)
    path.add(CameraPose(yaw=-0.3))
    path.add(CameraPose(yaw=0.3), seed=(7.0, 0.0))
    path.retime(0.5)
    path.save(tmp_path / "path.json")
    result = B.run_video(G, [0], tmp_path / "path.mp4", trajectory=str(tmp_path / "path.json"), progress=False,
                         log=quiet)
    info = read_video_info(result.path)
    assert info["frames"] == path.n_frames == 5 and info["fps"] == 10.0
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(B.BatchError, match="bad.json: not valid JSON"):
        B.run_video(G, [0], tmp_path / "x.mp4", trajectory=str(tmp_path / "bad.json"), progress=False, log=quiet)
    with pytest.raises(B.BatchError, match="camera path names seeds"):
        B.run_video(G, [0, 1], tmp_path / "x.mp4", trajectory=str(tmp_path / "path.json"), progress=False, log=quiet)
    assert not (tmp_path / "x.mp4").exists()


# --- meshes ---------------------------------------------------------------------------------------

def test_meshes_are_closed_inside_the_box_and_coloured(G, tmp_path):
    import trimesh

    messages = []
    results = B.run_mesh(G, [0, 1], tmp_path, res=48, fmt="ply", colors=True, progress=False, log=messages.append)
    renderer = GeneratorRenderer(G)
    _, planes = renderer.identity_planes(B.seed_request(0))
    level = renderer.surface_level(planes)
    assert any(m.startswith(f"seed 0: level {level:.4g} (automatic)") for m in messages)
    # The bundled model is an SDF (level 0, no floater cleanup); EG3D's cleanup is for density models.
    assert level == 0.0 and not any("border cleanup" in m for m in messages)
    from models import load_generator

    density_model = load_generator(Path(__file__).parent / "fixtures" / "legacy" / "eg3d-tiny-trained.safetensors")
    density_messages = []
    B.run_mesh(density_model, [0], tmp_path / "density", res=48, fmt="ply", progress=False, log=density_messages.append)
    assert any("border cleanup" in m and "5 voxel layers" in m and "7 at +y" in m for m in density_messages)
    half = G.rendering_kwargs["box_warp"] / 2
    for path, mesh in results:
        loaded = trimesh.load(path, process=False)
        assert loaded.is_watertight and len(loaded.faces) == len(mesh.faces) > 100
        assert np.all(np.abs(loaded.vertices) <= half + 1e-5)
        assert loaded.visual.vertex_colors.shape == (len(loaded.vertices), 4)
    (path, mesh), = B.run_mesh(G, [0], tmp_path / "obj", res=32, level=level, fmt="obj", progress=False, log=quiet)
    assert trimesh.load(path, process=False).is_watertight and mesh.level == pytest.approx(level)
    (path, _), = B.run_mesh(G, [0], tmp_path / "glb", res=32, fmt="glb", progress=False, log=quiet)
    assert len(trimesh.load(path, force="mesh").faces) > 0


def test_mrc_holds_the_density_volume(G, tmp_path):
    import mrcfile

    (path, _), = B.run_mesh(G, [2], tmp_path, res=40, fmt="mrc", progress=False, log=quiet)
    with mrcfile.open(path) as mrc:
        assert mrc.data.shape == (40, 40, 40) and mrc.data.dtype == np.float32
        assert float(mrc.data.max()) > 0


def test_mesh_out_of_memory_halves_the_chunk(G, tmp_path, monkeypatch):
    import renderers.mesh as mesh_module

    original = mesh_module.sample_grid
    chunks = []

    def fragile(field_fn, bounds, resolution, chunk=2**18, **kwargs):
        chunks.append(chunk)
        if chunk > 8192:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(field_fn, bounds, resolution, chunk=chunk, **kwargs)

    monkeypatch.setattr(mesh_module, "sample_grid", fragile)
    messages = []
    (path, _), = B.run_mesh(G, [0], tmp_path, res=32, chunk=32768, progress=False, log=messages.append)
    assert chunks == [32768, 16384, 8192] and path.exists()
    assert "out of memory with chunk 32768: retrying with chunk 16384" in messages


# --- outputs are never overwritten without --force --------------------------------------------------

def test_force_is_checked_for_every_target_before_any_work(G, tmp_path):
    (tmp_path / "seed0001.png").write_bytes(b"old")
    with pytest.raises(B.BatchError, match=r"seed0001.png: exists \(use --force"):
        B.run_images(G, [0, 1], B.parse_views("1"), tmp_path, grid=True, progress=False, log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0001.png"]  # seed 0 was not written first
    B.run_images(G, [0, 1], B.parse_views("1"), tmp_path, grid=True, force=True, progress=False, log=quiet)
    assert np.asarray(Image.open(tmp_path / "seed0001.png")).shape == (R, R, 3)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "seed0000.ply").write_bytes(b"old")
    with pytest.raises(B.BatchError, match="exists"):
        B.run_mesh(G, [0], tmp_path / "m", res=16, progress=False, log=quiet)
    assert (tmp_path / "m" / "seed0000.ply").read_bytes() == b"old"


def test_cli_video_refuses_then_replaces_with_force(tmp_path):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"old")
    result = run_cli("video", "--seeds", "0", "--frames", "2", "--out", str(out), "--device", "cpu")
    assert result.returncode == 2 and result.stdout == ""  # refused before the model was even loaded
    assert result.stderr == f"error: {out}: exists (use --force to replace)\n"
    assert out.read_bytes() == b"old"
    result = run_cli("video", "--seeds", "0", "--frames", "2", "--out", str(out), "--device", "cpu", "--force")
    assert result.returncode == 0, result.stderr
    from renderers.video import read_video_info

    assert read_video_info(out)["frames"] == 2


# --- command-line errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["images", "--seeds", "3-1"], "error: bad seed list '3-1': '3-1' is not a seed or an increasing range a-b"),
    (["video", "--trajectory", "spiral"],
     "error: unknown trajectory 'spiral': not one of orbit, yaw, circle and no such camera-path file"),
    (["mesh", "{missing}", "--res", "16"], "error: {missing}: no such file or folder"),
    (["images", "{garbage}"], None),
])
def test_cli_one_line_errors(tmp_path, argv, message):
    missing, garbage = tmp_path / "missing.pkl", tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    argv = [a.format(missing=missing, garbage=garbage) for a in argv] + ["--out", str(tmp_path / "out")]
    result = run_cli(*argv)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if message is not None:
        assert lines[0] == message.format(missing=missing)
    else:
        assert str(garbage) in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_a_clear_error():
    with pytest.raises(B.BatchError, match="no CUDA device is available"):
        B.resolve_device("cuda")


def test_help_describes_the_views_and_border_rules():
    import visualizer

    parser = visualizer.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    assert "[-0.4, 0.4] rad at pitch 0" in sub["images"].format_help()
    assert "int(30*RES/256)" in " ".join(sub["mesh"].format_help().split())
    assert set(B.VIDEO_MODES) <= set(sub["video"].format_help().replace(",", " ").replace("{", " ").split())
    assert {"images", "video", "mesh", "metrics"} <= set(visualizer.SUBCOMMANDS)


# --- official EG3D pickles ---------------------------------------------------------------------------

def test_every_command_works_on_an_official_pickle(official_pickle, tmp_path):
    from renderers.video import read_video_info

    result = run_cli("images", str(official_pickle), "--seeds", "0-1", "--views", "2", "--depth", "--grid",
                     "--out", str(tmp_path / "img"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "img" / "grid.png")).shape == (4 * 128, 2 * 128, 3)
    G, _ = B.load_model(str(official_pickle), "cpu")
    B.run_video(G, [0, 1], tmp_path / "v.mp4", frames=3, grid=(2, 1), progress=False, log=quiet)
    assert read_video_info(tmp_path / "v.mp4")["size"] == (256, 128)
    (path, mesh), = B.run_mesh(G, [0], tmp_path / "mesh", res=32, progress=False, log=quiet)
    assert len(mesh.faces) > 0 and path.stat().st_size > 0


# --- metrics ------------------------------------------------------------------------------------------

def test_metrics_calls_evaluate_and_appends_a_record(G, tmp_path, monkeypatch):
    """The metrics command (training.evaluation.run_metrics: it needs the trainer's metrics)."""
    seen = {}

    def fake_evaluate(G_, data, names, num, seed=0, device="cpu", inception=None, batch=8, progress=True):
        seen.update(data=data, names=names, num=num, seed=seed, inception=inception, batch=batch)
        return {name: 1.5 for name in names}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    data = tmp_path / "data"
    data.mkdir()
    names = list(evaluation.METRICS)[:1]
    out = tmp_path / "results.jsonl"
    messages = []
    results = evaluation.run_metrics(G, "model.pkl", str(data), names, 16, seed=3, out=out, progress=False,
                                     log=messages.append)
    assert results == {names[0]: 1.5} and seen["num"] == 16 and seen["seed"] == 3
    record = json.loads(out.read_text().splitlines()[-1])
    record.pop("time", None)  # the evaluation module stamps its records
    assert record == {"model": "model.pkl", "data": str(data), "seed": 3, "num": 16, "metrics": {names[0]: 1.5}}
    with pytest.raises(B.BatchError, match="no such dataset"):
        evaluation.run_metrics(G, "m", str(tmp_path / "nope"), names, 4, progress=False, log=quiet)


def test_cli_metrics_unknown_name_and_missing_data(tmp_path):
    result = run_cli("metrics", "--metrics", "nonsense", "--num", "4", "--data", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown metric nonsense: choose from "), result.stderr
    result = run_cli("metrics", "--metrics", "fid", "--num", "4", "--data", str(tmp_path / "none.zip"))
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'none.zip'}: no such dataset file or folder\n"
