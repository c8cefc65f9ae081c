"""Official GRAM checkpoints (microsoft/GRAM ``generator.pth`` state dict + ``ema.pth``): the import
through ``load_generator``, release detection from weight shapes, hostile EMA files, conversion to our
format, and the reference check on ``shared/fixtures/gram_ref``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import CheckpointError, UnsafePickleError
from models.methods.gram import official_network, official_to_pipeline_names, pipeline_to_official_names
from models.official_formats import read_torch_zip
from models.releases import RELEASES, choose
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

GRAM_DIR = SHARED_DIR / "fixtures" / "gram_ref"
SMALL = dict(num_coarse=16, img_resolution=32)
"""Few samples for fast tests (the fixture's own settings are in tests.reference_check._gram_settings)."""


def _copy(tmp_path: Path, ema: bool = True) -> Path:
    folder = tmp_path / "gram"
    folder.mkdir()
    shutil.copy(require(GRAM_DIR / "generator.pth"), folder / "generator.pth")
    if ema:
        shutil.copy(GRAM_DIR / "ema.pth", folder / "ema.pth")
    return folder / "generator.pth"


def _hostile_zip(path: Path, payload) -> Path:
    pickled = path.with_suffix(".pkl")
    dump(payload, pickled, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ema/data.pkl", pickled.read_bytes())
        archive.writestr("ema/version", "3\n")
    pickled.unlink()
    return path


def test_import_takes_ema_shadow_params_in_parameter_order() -> None:
    state = read_torch_zip(require(GRAM_DIR / "generator.pth"))
    ema = read_torch_zip(GRAM_DIR / "ema.pth").dict_state["shadow_params"]
    assert len(state) == len(ema) == 62
    G = load_generator(GRAM_DIR / "generator.pth", release="gram-ffhq", settings=SMALL)
    ours = pipeline_to_official_names(G.state_dict())
    assert list(ours) == list(state)  # GramGenerator.parameters() order (the README's table)
    for (name, tensor), shadow in zip(ours.items(), ema):
        assert torch.equal(tensor, shadow), name
    assert not torch.equal(ours["representation.rf_network.network.0.layer.weight"],
                           state["representation.rf_network.network.0.layer.weight"])
    assert torch.isfinite(G.mapping_network.w_avg).all() and G.mapping_network.w_avg.abs().sum() > 0
    again = load_generator(GRAM_DIR / "generator.pth", release="gram-ffhq", settings=SMALL)
    assert torch.equal(G.mapping_network.w_avg, again.mapping_network.w_avg)  # computed once, seeded


def test_names_round_trip() -> None:
    state = read_torch_zip(require(GRAM_DIR / "generator.pth"))
    assert pipeline_to_official_names(official_to_pipeline_names(state)).keys() == state.keys()


def test_release_detection_from_shapes(tmp_path: Path) -> None:
    state = read_torch_zip(require(GRAM_DIR / "generator.pth"))
    for name, width in (("gram-ffhq", 128), ("gram-cats", 64), ("gram-carla", 256)):
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        shapes["representation.sample_network.network.0.weight"] = (width, 3)
        assert choose("gram-state-dict", official_network(shapes)).name == name
    # a real file of the CATS width loads with CATS's settings, unasked
    big = dict(state)
    for key in big:
        if key.startswith("representation.sample_network."):
            big[key] = torch.randn([64 if s == 16 else s for s in big[key].shape]) * 0.1
    torch.save(big, tmp_path / "generator.pth")
    with pytest.warns(UserWarning, match="no ema.pth beside it"):
        G = load_generator(tmp_path / "generator.pth")
    cats = RELEASES["gram-cats"]
    assert G.config.extra["release"] == "gram-cats"
    assert (G.config.pose.fov_degrees, G.config.renderer.lock_view_dependence) == (cats.fov_degrees, True)
    assert G.config.embedder.num_manifolds == 24 and G.config.embedder.hidden == 64
    # the fixture's width (16) is no release: one line asking for one
    with pytest.raises(CheckpointError, match="no known release .*pass release=") as info:
        load_generator(GRAM_DIR / "generator.pth")
    assert "\n" not in str(info.value)


def test_carla_release_settings() -> None:
    G = load_generator(require(GRAM_DIR / "generator.pth"), release="gram-carla", settings=SMALL)
    e = G.config.embedder
    assert (e.num_manifolds, e.levels_start, e.levels_end, e.background_plane) == (48, 35.0, 5.0, False)
    assert e.coordinate_scale == pytest.approx(1.0) and e.field_scale == pytest.approx(2 / 0.24)
    assert G.config.renderer.white_back and G.config.integrator.delta == 0.02
    z = torch.from_numpy(np.random.RandomState(1).randn(1, G.z_dim).astype(np.float32))
    with torch.no_grad():
        out = G(z, G.default_camera(yaw=0.3), truncation_psi=0.7, neural_rendering_resolution=8)
    assert torch.isfinite(out["image"]).all() and torch.isfinite(out["image_depth"]).all()  # empty rays: far end


def test_hostile_ema_beside_a_gram_generator_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path, ema=False)
    marker = tmp_path / "marker"
    ema = _hostile_zip(path.with_name("ema.pth"), Call(GlobalRef("os", "system"), (f"touch '{marker}'",)))
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        load_generator(path, release="gram-ffhq")
    assert str(info.value).startswith(f"{ema}: ") and "\n" not in str(info.value)
    assert not marker.exists()


def test_ema_of_the_wrong_network_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path, ema=False)
    shutil.copy(require(SHARED_DIR / "fixtures" / "pigan_ref" / "ema.pth"), path.with_name("ema.pth"))
    with pytest.raises(CheckpointError, match="shadow params"):
        load_generator(path, release="gram-ffhq")


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    out = tmp_path / "gram.safetensors"
    rc = visualizer.main(["convert", str(require(GRAM_DIR / "generator.pth")), str(out), "--release", "gram-ffhq"])
    assert rc == 0
    G = load_generator(GRAM_DIR / "generator.pth", release="gram-ffhq")
    H = load_generator(out)
    assert torch.equal(G.mapping_network.w_avg, H.mapping_network.w_avg)  # the truncation mean is saved
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim).astype(np.float32))
    c = G.default_camera(yaw=0.2, pitch=-0.1)
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.7, neural_rendering_resolution=16)
        b = H(z, c, truncation_psi=0.7, neural_rendering_resolution=16)
    for key in ("image", "image_depth"):
        assert torch.equal(a[key], b[key])


def test_reference_check_gram(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(GRAM_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{GRAM_DIR}: GRAM cases=3 max_rel_err=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    for output in ("image", "image_lockview", "depth", "manifold_s", "manifold_points", "manifold_valid",
                   "query_rgb", "query_sigma", "query_s", "sorted_depth", "sorted_weights"):
        assert output in reported


def test_presets_follow_the_official_code() -> None:
    from models.methods import pipeline_preset

    for name in ("gram", "gram-tiny"):
        config = pipeline_preset(name)
        e = config.embedder
        assert e.field_scale == pytest.approx(2 / 0.24) and e.last_infinite and e.plane_always_valid, name
        assert config.renderer.pixel_grid == "corners" and not config.mapping.affine_truncation, name
    # a legacy config (no new fields) keeps the old behaviour
    from models.embedders import ManifoldEmbedder

    old = ManifoldEmbedder.Config()
    assert (old.field_scale, old.last_infinite, old.plane_always_valid) == (0.0, False, False)
