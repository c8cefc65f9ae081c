"""Official StyleSDF checkpoints (royorel/StyleSDF ``full_models/*.pt``, ``pretrained_renderer/*_vol_renderer.pt``:
``torch.save({'g_ema', 'g', 'd'})``): the import through ``load_generator``, the official loader's
shape-matching copy, hostile files, conversion to our format, the presets, and the reference check
on ``shared/fixtures/stylesdf_ref``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import CheckpointError, UnsafePickleError
from models.methods.stylesdf import official_network, pipeline_to_official_names
from models.releases import RELEASES
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

STYLESDF_DIR = SHARED_DIR / "fixtures" / "stylesdf_ref"
FULL = "stylesdf-ffhq1024"
"""The fixture is a small full pipeline (one decoder block): name a release to take its settings."""


def _g_ema(name: str) -> dict[str, torch.Tensor]:
    return torch.load(require(STYLESDF_DIR / name), map_location="cpu", weights_only=True)["g_ema"]


def test_reference_check_stylesdf(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(STYLESDF_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{STYLESDF_DIR}: StyleSDF cases=3 max_rel_err=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    for output in ("w_renderer", "w_decoder", "thumb", "thumb_renderer", "image", "xyz", "mask",
                   "net_rgb", "net_sdf", "net_feat"):
        assert output in reported


def test_import_copies_every_entry_and_names_round_trip() -> None:
    for name, release in (("full_model.pt", FULL), ("vol_renderer.pt", "stylesdf-ffhq-vol-renderer")):
        state = _g_ema(name)
        G = load_generator(STYLESDF_DIR / name, release=release)
        ours = pipeline_to_official_names(G.state_dict())
        assert set(ours) == set(state), name
        for key, tensor in state.items():
            assert torch.equal(ours[key], tensor), key
        assert torch.isfinite(G.mapping_network.w_avg).all() and G.mapping_network.w_avg.abs().sum() > 0
    renderer = load_generator(STYLESDF_DIR / "vol_renderer.pt", release="stylesdf-ffhq-vol-renderer")
    assert renderer.upsampler.num_ws == 0 and renderer.img_resolution == 64
    again = load_generator(STYLESDF_DIR / "vol_renderer.pt", release="stylesdf-ffhq-vol-renderer")
    assert torch.equal(renderer.mapping_network.w_avg, again.mapping_network.w_avg)  # computed once, seeded


def test_release_detection() -> None:
    assert official_network({k: tuple(v.shape) for k, v in _g_ema("vol_renderer.pt").items()}).endswith("renderer")
    with pytest.warns(UserWarning, match="cannot tell"):
        load_generator(STYLESDF_DIR / "vol_renderer.pt")
    with pytest.raises(CheckpointError, match="no known release"):
        load_generator(STYLESDF_DIR / "full_model.pt")  # one decoder block: neither 1024 nor 512 px
    ffhq, afhq = RELEASES["stylesdf-ffhq1024"], RELEASES["stylesdf-afhq512"]
    assert (ffhq.img_resolution, afhq.img_resolution) == (1024, 512)
    assert (ffhq.pose_prior, afhq.pose_prior) == ("stylesdf", "stylesdf_afhq")  # AFHQ: azimuth std 0.15
    for release in (ffhq, afhq, RELEASES["stylesdf-ffhq-vol-renderer"]):
        assert (release.fov_degrees, release.near, release.far, release.num_coarse, release.num_fine) == \
            (12.0, 0.88, 1.12, 24, 0)
        assert release.last_back and release.truncation_psi == 0.5 and release.truncation_samples == 10_000


def _save(tmp_path: Path, name: str, checkpoint) -> Path:
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def test_shape_mismatch_is_skipped_and_unknown_entries_refused(tmp_path: Path) -> None:
    state = dict(_g_ema("vol_renderer.pt"))
    state["renderer.sigmoid_beta"] = torch.ones(2)
    path = _save(tmp_path, "odd.pt", {"g_ema": state, "g": {}, "d": {}})
    with pytest.warns(UserWarning, match="skipping 1 entries"):
        G = load_generator(path, release="stylesdf-ffhq-vol-renderer")
    assert float(G.renderer.sdf_alpha) == pytest.approx(0.1)  # kept its initial value, as the official loader
    state = dict(_g_ema("vol_renderer.pt"), **{"renderer.network.extra.weight": torch.ones(1)})
    path = _save(tmp_path, "extra.pt", {"g_ema": state, "g": {}, "d": {}})
    with pytest.raises(CheckpointError, match="renderer.network.extra.weight"):
        load_generator(path, release="stylesdf-ffhq-vol-renderer")


def test_hostile_file_is_refused_with_nothing_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    pickled = tmp_path / "payload.pkl"
    dump({"g_ema": Call(GlobalRef("os", "system"), (f"touch '{marker}'",)), "g": {}, "d": {}}, pickled, protocol=2)
    path = tmp_path / "ffhq1024x1024.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ffhq1024x1024/data.pkl", pickled.read_bytes())
        archive.writestr("ffhq1024x1024/version", "3\n")
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        load_generator(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert not marker.exists()
    bogus = _save(tmp_path, "bogus.pt", {"g_ema": {"style.0.weight": torch.ones(2, 2)}, "g": {}, "d": {}})
    with pytest.raises(CheckpointError, match="not a StyleSDF generator"):
        load_generator(bogus, release=FULL)


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    out = tmp_path / "stylesdf.safetensors"
    rc = visualizer.main(["convert", str(require(STYLESDF_DIR / "full_model.pt")), str(out), "--release", FULL])
    assert rc == 0
    G = load_generator(STYLESDF_DIR / "full_model.pt", release=FULL)
    H = load_generator(out)
    assert torch.equal(G.mapping_network.w_avg, H.mapping_network.w_avg)  # both truncation means are saved
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim).astype(np.float32))
    c = G.default_camera(yaw=0.2, pitch=-0.1)
    with torch.no_grad():
        a = G(z, c, truncation_psi=0.5)
        b = H(z, c, truncation_psi=0.5)
    for key in ("image", "image_raw", "image_depth"):
        assert torch.equal(a[key], b[key]), key


def test_presets_follow_the_official_code() -> None:
    from models.mappings import StyleSDFMapping
    from models.methods import pipeline_preset
    from models.point_sampling import StratifiedPointSampler
    from models.upsamplers import StyleSDFDecoderUpsampler
    from models.volume_rendering import LastDeltaIntegrator, SDFSigmoidDensity

    for name in ("stylesdf", "stylesdf-tiny"):
        config = pipeline_preset(name)
        assert config.mapping.kind == StyleSDFMapping.kind and config.upsampler.kind == StyleSDFDecoderUpsampler.kind
        assert config.points.offset_grid and config.points.depth_along_axis and config.points.perturb == "offset"
        assert not config.density.per_world_unit and config.density.alpha_as_is
        assert config.integrator.force_background and config.renderer.camera_frame_views
    full = pipeline_preset("stylesdf")
    assert (full.mapping.z_dim, full.mapping.w_dim, full.mapping.layers) == (256, 256, 3)
    assert (full.upsampler.w_dim, full.upsampler.mapping_layers, full.upsampler.lr_multiplier,
            full.upsampler.channel_multiplier) == (512, 5, 0.01, 2)
    assert (full.points.num_coarse, full.points.num_fine, full.pose.fov_degrees) == (24, 0, 12.0)
    # a legacy config (no new fields) keeps the old behaviour
    old_points, old_density = StratifiedPointSampler.Config(), SDFSigmoidDensity.Config()
    assert not (old_points.offset_grid or old_points.depth_along_axis)
    assert old_density.per_world_unit and not old_density.alpha_as_is
    assert not LastDeltaIntegrator.Config().force_background


def test_preset_stages_build_and_render() -> None:
    from models.methods import pipeline_preset
    from models.pipeline import PipelineGenerator
    from training.methods.stylesdf import stylesdf_stage

    config = pipeline_preset("stylesdf-tiny")
    for stage in (1, 2):
        G = PipelineGenerator(stylesdf_stage(config, stage)).eval()
        z = torch.randn(2, G.z_dim)
        with torch.no_grad():
            out = G(z, G.default_camera(2), truncation_psi=0.7)
        assert torch.isfinite(out["image"]).all()
        assert out["image"].shape[-1] == (16 if stage == 1 else 32)


def test_training_tracks_both_truncation_means() -> None:
    """The mapping's w_avg EMA (update_emas) holds the renderer w mean in the renderer's slots and the
    decoder ws' own mean in the decoder's (not the renderer w's)."""
    from models.build import build_pipeline

    torch.manual_seed(0)
    G = build_pipeline("stylesdf-tiny")
    c = G.default_camera(64)
    with torch.no_grad():
        for _ in range(600):
            G.mapping(torch.randn(64, G.z_dim), c, update_emas=True)
        estimate = G.estimate_truncation_mean(4000)
    assert torch.allclose(G.mapping_network.w_avg, estimate, atol=0.1 * float(estimate.abs().max()))
