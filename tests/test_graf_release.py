"""Official GRAF checkpoints (autonomousvision/graf ``CheckpointIO`` files: ``carla_64.pt`` ... ``cub_64.pt``,
``model_best.pt``): the import through ``load_generator`` (``generator_test``, else ``generator``), the numpy
training scalars, hostile and broken files, the releases and their settings, the view-less variant, the
per-camera near/far shift, the preset, and the reference check on ``shared/fixtures/graf_ref``."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import CheckpointError, UnsafePickleError
from models.methods.graf import GRAF_AXES, official_network, pipeline_to_official_names
from models.official_formats import find_data_pickle, read_torch_zip
from models.releases import RELEASES
from ops.camera import intrinsics_from_focal, pack_label
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

GRAF_DIR = SHARED_DIR / "fixtures" / "graf_ref"
CHECKPOINT = GRAF_DIR / "model_best.pt"


def _settings() -> tuple[str, dict]:
    from tests.reference_check import _graf_settings

    return _graf_settings(json.loads(require(GRAF_DIR / "config.json").read_text()))


def _load(path: Path = CHECKPOINT, **changes) -> torch.nn.Module:
    release, settings = _settings()
    return load_generator(require(path) if path == CHECKPOINT else path, release=changes.pop("release", release),
                          settings=settings | changes)


def _case(i: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    """(z, our camera label of the official pose, cases.npz) of case i."""
    cases = dict(np.load(require(GRAF_DIR / "cases.npz")))
    fov = _settings()[1]["fov_degrees"]
    pose = torch.eye(4)[None]
    pose[0, :3] = torch.from_numpy(cases[f"{i}_pose"])[[list(GRAF_AXES).index(k) for k in range(3)]]
    label = pack_label(pose @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])),
                       intrinsics_from_focal(1 / (2 * math.tan(math.radians(fov) / 2))))
    return torch.from_numpy(cases[f"{i}_z"]), label, cases


def _image(G, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesis(G.mapping(z, c), c)["image"]


def _rewrite(tmp_path: Path, name: str, change) -> Path:
    """A copy of the fixture whose ``data.pkl`` bytes went through ``change``."""
    path = tmp_path / name
    with zipfile.ZipFile(require(CHECKPOINT)) as source, zipfile.ZipFile(path, "w") as target:
        entry = find_data_pickle(source, CHECKPOINT)
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, change(data) if info.filename == entry else data)
    return path


def test_reference_check_graf(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(GRAF_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{GRAF_DIR}: GRAF cases=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    assert {"pose", "rays_o", "rays_d", "near_far", "image", "acc", "disp", "dec_rgb_logits", "dec_sigma"} <= reported


def test_the_ema_renders_and_names_round_trip(tmp_path: Path) -> None:
    checkpoint = read_torch_zip(require(CHECKPOINT))
    G = _load()
    ours = pipeline_to_official_names(G.state_dict())
    assert set(ours) == set(checkpoint["generator_test"])
    for key, tensor in checkpoint["generator_test"].items():
        assert torch.equal(ours[key], tensor), key
    z, c, cases = _case(0)
    assert np.abs(_image(G, z, c).numpy() - cases["0_image"]).max() < 1e-5
    assert np.abs(_image(G, z, c).numpy() - cases["0_image_from_generator_not_test"]).max() > 1e-2
    # a file with only the training generator renders that one (the official fallback)
    only = {k: v for k, v in checkpoint.items() if k != "generator_test"}
    torch.save(only, tmp_path / "carla_64.pt")
    H = _load(tmp_path / "carla_64.pt")
    assert np.abs(_image(H, z, c).numpy() - cases["0_image_from_generator_not_test"]).max() < 1e-5


def test_numpy_training_scalars_become_plain_numbers(tmp_path: Path) -> None:
    checkpoint = read_torch_zip(require(CHECKPOINT))
    assert type(checkpoint["fid_best"]) is float and checkpoint["fid_best"] == 27.5
    assert checkpoint["it"] == 99999 and checkpoint["kid_best"] == math.inf
    # numpy 1 writes numpy.core, numpy 2 numpy._core: both spellings read
    old = _rewrite(tmp_path, "celebA_64.pt", lambda data: data.replace(b"numpy._core.multiarray\nscalar",
                                                                        b"numpy.core.multiarray\nscalar"))
    assert read_torch_zip(old)["fid_best"] == 27.5
    # an object dtype could carry any object: refused
    odd = _rewrite(tmp_path, "odd.pt", lambda data: data.replace(b"X\x02\x00\x00\x00f8", b"X\x02\x00\x00\x00O8"))
    with pytest.raises((CheckpointError, UnsafePickleError)):
        read_torch_zip(odd)


def test_hostile_and_broken_files_are_refused_with_nothing_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    pickled = tmp_path / "payload.pkl"
    dump({"generator_test": {}, "fid_best": Call(GlobalRef("os", "system"), (f"touch '{marker}'",))}, pickled,
         protocol=2)
    path = tmp_path / "carla_64.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("carla_64/data.pkl", pickled.read_bytes())
        archive.writestr("carla_64/version", "3\n")
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        load_generator(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert not marker.exists()
    truncated = tmp_path / "cats_64.pt"
    truncated.write_bytes(require(CHECKPOINT).read_bytes()[:20_000])
    with pytest.raises(CheckpointError) as info:
        load_generator(truncated)
    assert str(info.value).startswith(f"{truncated}: ") and "\n" not in str(info.value)
    checkpoint = read_torch_zip(require(CHECKPOINT))
    state = dict(checkpoint["generator_test"])
    state["pts_linears.3.weight"] = torch.zeros(7, 7)
    torch.save({"generator_test": state}, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match="pts_linears.3|layers.3") as info:
        _load(tmp_path / "shapes.pt")
    assert "\n" not in str(info.value)
    torch.save({"generator_test": {"pts_linears.0.weight": torch.zeros(4, 2)}}, tmp_path / "tiny.pt")
    with pytest.raises(CheckpointError, match="GRAF"):
        _load(tmp_path / "tiny.pt")


def test_releases_and_how_a_file_picks_one(tmp_path: Path) -> None:
    graf = {name: r for name, r in RELEASES.items() if r.method == "graf"}
    assert sorted(r.file_name for r in graf.values()) == sorted(
        [f"carla/carla_{s}.pt" for s in (64, 128, 256, 512)] + ["faces/celebA_64.pt", "faces/celebA_128.pt",
         "faces/celebA_hq_256.pt", "faces/celebA_hq_512.pt", "cats/cats_64.pt", "birds/cub_64.pt"])
    for r in graf.values():
        assert (r.near, r.far, r.num_coarse, r.num_fine, r.truncation_psi) == (7.5, 12.5, 64, 0, 1.0)
        assert r.radius == (r.radius_max or 10.0)  # eval.py renders a radius range at its largest radius
    assert (graf["graf-carla128"].fov_degrees, graf["graf-carla128"].white_back, graf["graf-carla128"].radius_max) == \
        (30.0, True, None)
    assert (graf["graf-celebahq512"].fov_degrees, graf["graf-celebahq512"].white_back) == (10.0, False)
    assert graf["graf-celeba64"].radius_max == 10.5 and graf["graf-cub64"].radius_max == 11.0
    assert graf["graf-cats64"].pose_prior == "graf_cats" and graf["graf-cub64"].white_back
    with pytest.warns(UserWarning, match="cannot tell"):
        G = load_generator(require(CHECKPOINT))  # model_best.pt: not a released name
    assert G.config.extra["release"] == "graf-carla64"
    named = tmp_path / "celebA_128.pt"
    named.write_bytes(CHECKPOINT.read_bytes())
    G = load_generator(named)
    assert G.config.extra["release"] == "graf-celeba128" and G.img_resolution == 128
    assert G.config.points.radius_max == 10.5 and not G.config.renderer.white_back
    with pytest.raises(CheckpointError, match="graf-cub64"):
        load_generator(named, release="graf-cub64")  # the cub network has no view directions


def test_the_view_less_variant(tmp_path: Path) -> None:
    """cub_64: ``views_linears.0`` reads [feature, z_app] (no PE(d)); z_app as wide as z_shape."""
    checkpoint = read_torch_zip(require(CHECKPOINT))
    state = dict(checkpoint["generator_test"])
    width, first_in = state["pts_linears.0.weight"].shape
    z_shape = first_in - 63
    state["views_linears.0.weight"] = torch.randn(width // 2, width + z_shape) * 0.1
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert official_network(shapes).endswith("no view directions")
    assert official_network({k: tuple(v.shape) for k, v in checkpoint["generator_test"].items()}).endswith(
        ", view directions")
    torch.save({"generator": state, "generator_test": state}, tmp_path / "cub_64.pt")
    G = load_generator(tmp_path / "cub_64.pt")
    assert G.config.extra["release"] == "graf-cub64" and not G.config.decoder.view_directions
    assert G.z_dim == 2 * z_shape and G.config.points.radius_max == 11.0
    c = G.default_camera()
    z = torch.randn(1, G.z_dim)
    with torch.no_grad():
        out = G.synthesis(G.mapping(z, c), c, neural_rendering_resolution=16)
        points = torch.randn(1, 5, 3)
        a = G.sample(points, torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1), z, c)
        b = G.sample(points, torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1), z, c)
    assert torch.isfinite(out["image"]).all()
    assert torch.equal(a["rgb"], b["rgb"])  # the colour does not depend on the view


def test_near_and_far_move_with_the_camera_radius() -> None:
    """celebA, celebA_hq and cub: each ray samples near - (r_max - r) .. far - (r_max - r), r = |origin|."""
    G = _load(release="graf-celeba64", fov_degrees=10.0, radius_max=10.5, num_coarse=5)
    for radius in (9.5, 10.0, 10.5):
        c = G.default_camera(yaw=0.3, pitch=0.1)
        c[:, [3, 7, 11]] *= radius / c[:, [3, 7, 11]].norm()
        origins, directions, _ = G.camera_rays(c, 4)
        depths = G.sample_depths(origins, directions, 5)[0, :, :, 0]
        shift = 10.5 - origins.norm(dim=-1)[0]
        assert torch.allclose(depths[:, 0], 7.5 - shift) and torch.allclose(depths[:, -1], 12.5 - shift)
    carla = _load()
    assert carla.config.points.radius_max is None


def test_the_preset_follows_the_official_code() -> None:
    from models.embedders import CoordinateEmbedder
    from models.methods import pipeline_preset
    from models.point_sampling import StratifiedPointSampler
    from models.volume_rendering import LastDeltaIntegrator

    for name in ("graf", "graf-tiny"):
        config = pipeline_preset(name)
        assert config.embedder.world_axes == GRAF_AXES and config.renderer.pixel_grid == "integers"
        assert config.renderer.rays == "axis" and config.points.depth_along_axis and config.points.lerp_grid
        assert config.points.perturb == "midpoint_bins" and config.points.radius_max == 10.5
        assert config.integrator.depth_sum and config.pose.prior == "graf_celeba"
    full = pipeline_preset("graf")
    assert (full.decoder.hidden, full.decoder.layers, full.decoder.skip, full.decoder.z_shape_dim,
            full.decoder.z_app_dim, full.decoder.dir_frequencies, full.embedder.pe_frequencies) == \
        (256, 8, 4, 128, 128, 4, 10)
    assert (full.points.near, full.points.far, full.points.num_coarse, full.points.num_fine) == (7.5, 12.5, 64, 0)
    # a legacy config (no new fields) keeps the old behaviour
    assert CoordinateEmbedder.Config().world_axes == (0, 1, 2)
    old = StratifiedPointSampler.Config()
    assert old.radius_max is None and not old.lerp_grid and not LastDeltaIntegrator.Config().depth_sum


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    release, settings = _settings()
    out = tmp_path / "graf.safetensors"
    assert visualizer.main(["convert", str(require(CHECKPOINT)), str(out), "--release", release]) == 0
    G, H = load_generator(CHECKPOINT, release=release), load_generator(out)
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
    c = G.default_camera(yaw=0.4, pitch=-0.2)
    with torch.no_grad():
        a, b = G(z, c, neural_rendering_resolution=16), H(z, c, neural_rendering_resolution=16)
    for key in ("image", "image_depth"):
        assert torch.equal(a[key], b[key]), key


def _released_state(views: bool) -> dict[str, torch.Tensor]:
    """Random weights in the released shapes (width 256, z 128 + 128, PE 10 / 4; fixture README)."""
    shapes = {f"pts_linears.{i}.weight": (256, 256) for i in range(8)}
    shapes |= {"pts_linears.0.weight": (256, 191), "pts_linears.5.weight": (256, 447),
               "views_linears.0.weight": (128, 411 if views else 384), "feature_linear.weight": (256, 256),
               "alpha_linear.weight": (1, 256), "rgb_linear.weight": (3, 128)}
    state = {}
    for name, shape in shapes.items():
        state[name] = torch.randn(shape) * 0.05
        state[name.replace("weight", "bias")] = torch.zeros(shape[0])
    return state


@pytest.mark.parametrize("name, release", [("carla_128.pt", "graf-carla128"), ("cub_64.pt", "graf-cub64")])
def test_released_shapes_build_the_released_network(tmp_path: Path, name: str, release: str) -> None:
    views = release != "graf-cub64"
    state = _released_state(views)
    torch.save({"generator": state, "generator_test": state, "it": 1, "fid_best": np.float64(20.0)}, tmp_path / name)
    G = load_generator(tmp_path / name)
    assert G.config.extra["release"] == release and G.z_dim == 256
    decoder = G.config.decoder
    assert (decoder.hidden, decoder.layers, decoder.skip, decoder.z_shape_dim, decoder.z_app_dim) == (256, 8, 4, 128, 128)
    assert decoder.view_directions == views and G.img_resolution == RELEASES[release].img_resolution
    assert (G.rendering_kwargs["depth_resolution"], G.rendering_kwargs["avg_camera_fov"]) == (64, 30.0)
    c = G.default_camera()
    with torch.no_grad():
        out = G.synthesis(G.mapping(torch.randn(1, 256), c), c, neural_rendering_resolution=8)
    assert out["image"].shape == (1, 3, 8, 8) and torch.isfinite(out["image"]).all()
