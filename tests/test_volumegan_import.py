"""Official VolumeGAN checkpoints: import through ``load_generator`` (``generator_smooth``, no code run),
the release entry, conversion to our format, and the reference check on ``shared/fixtures/volumegan_ref``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import CheckpointError, UnsafePickleError
from models.official_formats import read_torch_zip
from models.releases import RELEASES, choose
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

VOLUMEGAN_DIR = SHARED_DIR / "fixtures" / "volumegan_ref"
SETTINGS = dict(num_coarse=8, num_fine=8)
"""The fixture renders 8 + 8 samples (its ps_cfg); the release renders 36 + 36 as the official render.py."""


def _load(path: Path | None = None, **kwargs):
    return load_generator(path or require(VOLUMEGAN_DIR / "checkpoint.pth"), settings=SETTINGS, **kwargs)


def test_import_takes_generator_smooth_and_kwargs() -> None:
    data = read_torch_zip(require(VOLUMEGAN_DIR / "checkpoint.pth"))
    kwargs = data["model_kwargs_init"]["generator_smooth"]
    assert isinstance(kwargs, dict) and kwargs["model_type"] == "VolumeGANGenerator"  # EasyDict: a plain dict
    G = _load()
    smooth, raw = data["models"]["generator_smooth"], data["models"]["generator"]
    ours = G.decoder.net.layers[0].weight
    assert torch.equal(ours, smooth["nerfmlp.fg_mlps.0.weight"]) and not torch.equal(ours, raw["nerfmlp.fg_mlps.0.weight"])
    assert torch.equal(G.mapping_network.w_avg, smooth["w_avg"])
    assert G.img_resolution == kwargs["resolution"] and G.neural_rendering_resolution == kwargs["nerf_res"]
    assert G.z_dim == kwargs["z_dim"] and G.num_ws == 10
    assert G.embedder.volume.stage_channels == [16, 8, 8]
    assert G.rendering_kwargs["release"] == "volumegan-ffhq256"
    assert G.rendering_kwargs["truncation_psi"] == 0.7 and G.rendering_kwargs["truncation_cutoff"] == 8


def test_release_entry() -> None:
    release = RELEASES["volumegan-ffhq256"]
    assert (release.method, release.img_resolution, release.fov_degrees, release.near, release.far) == \
        ("volumegan", 256, 12.0, 0.8, 1.2)
    assert (release.num_coarse, release.num_fine, release.truncation_psi, release.truncation_cutoff) == (36, 36, 0.7, 8)
    assert choose("volumegan-runner", "VolumeGANGenerator") is release
    with pytest.raises(ValueError, match="is a VolumeGANGenerator"):
        choose("pigan-torch-save", "siren.siren.SPATIALSIRENBASELINE", "volumegan-ffhq256")


def _hostile_checkpoint(path: Path, payload) -> Path:
    pickled = path.with_suffix(".pkl")
    dump(payload, pickled, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint/data.pkl", pickled.read_bytes())
        archive.writestr("checkpoint/version", "3\n")
    pickled.unlink()
    return path


@pytest.mark.parametrize("where", ["kwargs", "top"])
def test_hostile_checkpoint_is_refused(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "marker"
    evil = Call(GlobalRef("os", "system"), (f"touch '{marker}'",))
    kwargs = {"model_type": "VolumeGANGenerator", "resolution": evil} if where == "kwargs" else {}
    payload = {"models": {"generator_smooth": {}}, "model_kwargs_init": {"generator_smooth": kwargs}}
    if where == "top":
        payload["running_metadata"] = evil
    path = _hostile_checkpoint(tmp_path / "volumegan_ffhq256.pth", payload)
    with pytest.raises(UnsafePickleError, match="refusing global 'os.system'") as info:
        load_generator(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert not marker.exists()


def _plain(value):
    """The stand-in EasyDicts as plain dicts (so that ``torch.save`` pickles no class of ours)."""
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


def test_wrong_shapes_and_missing_entries_are_one_line_errors(tmp_path: Path) -> None:
    data = read_torch_zip(require(VOLUMEGAN_DIR / "checkpoint.pth"))
    state = dict(data["models"]["generator_smooth"])
    kwargs = _plain(data["model_kwargs_init"]["generator_smooth"])
    del state["synthesis.output2.bias"]
    torch.save({"models": {"generator_smooth": state}, "model_kwargs_init": {"generator_smooth": kwargs}},
               tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing: upsampler.output2.bias"):
        load_generator(tmp_path / "missing.pth")
    kwargs["out_dim"] = 32
    torch.save({"models": {"generator_smooth": dict(data["models"]["generator_smooth"])},
                "model_kwargs_init": {"generator_smooth": kwargs}}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="nerfmlp.fg_color.weight is"):
        load_generator(tmp_path / "shape.pth")


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    out = tmp_path / "volumegan.safetensors"
    rc = visualizer.main(["convert", str(require(VOLUMEGAN_DIR / "checkpoint.pth")), str(out)])
    assert rc == 0
    G = load_generator(VOLUMEGAN_DIR / "checkpoint.pth")
    H = load_generator(out)
    assert torch.equal(G.mapping_network.w_avg, H.mapping_network.w_avg)
    assert H.rendering_kwargs["truncation_cutoff"] == 8
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim).astype(np.float32))
    c = G.default_camera(yaw=0.2, pitch=-0.1)
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.7, truncation_cutoff=8)
        b = H(z, c, truncation_psi=0.7, truncation_cutoff=8)
    for key in ("image", "image_raw", "image_depth"):
        assert torch.equal(a[key], b[key])


def test_reference_check_volumegan(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(VOLUMEGAN_DIR))]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{VOLUMEGAN_DIR}: VolumeGAN cases=3 max_rel_err=") and line.endswith(" ok"), line


def test_camera_frame_rays_are_the_corner_grid_rays() -> None:
    """'camera_frame' (VolumeGAN's float32 order) forms the same rays and coarse points as the corner grid
    with ``o + d z``, up to round-off, also for an off-centre (patch) camera."""
    from models.pipeline_config import RenderingOptions
    from ops.camera import camera_frame_points, camera_frame_rays, generate_rays, orbit_label, unpack_label
    from ops.ray_sampling import ray_samples

    label = torch.cat([orbit_label(0.3, -0.2, 1.0, [0, 0, 0], 4.0), orbit_label(-0.1, 0.1, 1.2, [0, 0, 0], 5.0)])
    label[1, 16 + 2] = 0.4  # principal point off centre
    cam2world, intrinsics = unpack_label(label)
    origins, directions, unit = camera_frame_rays(cam2world, intrinsics, 8)
    want_o, want_d = generate_rays(cam2world, intrinsics, 8, grid="corners")
    assert torch.allclose(origins, want_o) and torch.allclose(directions, want_d, atol=1e-6)
    depths = torch.linspace(0.8, 1.2, 5).reshape(1, 1, 5, 1).expand(2, 64, 5, 1)
    points = camera_frame_points(cam2world, unit, depths)
    assert torch.allclose(points, ray_samples(want_o, want_d, depths)[0], atol=1e-6)
    with pytest.raises(ValueError, match="corners"):
        RenderingOptions(rays="camera_frame")
    with pytest.raises(ValueError, match="renderer.rays"):
        RenderingOptions(rays="sideways", pixel_grid="corners")
