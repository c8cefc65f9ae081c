"""Official GIRAFFE checkpoints (autonomousvision/giraffe ``checkpoint_<name>-<hash>.pt``: im2scene's
``CheckpointIO`` dict with the ``model`` state dict, optimiser states and a numpy FID): the import through
``load_generator``, EMA choice, hostile and broken files, every release's settings, per-call scene
controls, and the reference check on ``shared/fixtures/giraffe_ref``."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_generator
from models.errors import CheckpointError, UnsafePickleError
from models.methods.giraffe import official_network, official_to_pipeline_names, pipeline_to_official_names
from models.official_formats import read_torch_zip
from models.releases import RELEASES
from models.scene import ObjectPose, RenderOptions, SceneControls
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump
from tests.reference_check import _giraffe_settings, giraffe_label

GIRAFFE_DIR = SHARED_DIR / "fixtures" / "giraffe_ref"
FIXTURE_RELEASE = "giraffe-compcars64"
"""The fixture is the Cars configuration with narrow layers (no released size)."""


def _fixture() -> tuple[Path, dict]:
    config = json.loads(require(GIRAFFE_DIR / "config.json").read_text())
    return require(GIRAFFE_DIR / "model_best.pt"), _giraffe_settings(config)


def _load(**kwargs):
    path, settings = _fixture()
    return load_generator(path, release=kwargs.pop("release", FIXTURE_RELEASE), settings=settings, **kwargs)


def _case(i: int = 0):
    cases = np.load(require(GIRAFFE_DIR / "cases.npz"))
    t = {k: torch.from_numpy(np.asarray(cases[k])) for k in cases.files if k.startswith(f"{i}_")}
    objects = t[f"{i}_z_shape_obj"].shape[1]
    z = torch.cat([torch.cat([t[f"{i}_z_shape_obj"][:, k], t[f"{i}_z_app_obj"][:, k]], 1) for k in range(objects)]
                  + [t[f"{i}_z_shape_bg"], t[f"{i}_z_app_bg"]], 1)
    return z, giraffe_label(t[f"{i}_world_mat"], t[f"{i}_camera_mat"]), t


def _rewrite(path: Path, out: Path, edit) -> Path:
    """A copy of a torch zip with its data.pkl bytes passed through ``edit``."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, edit(data) if info.filename.endswith("/data.pkl") else data)
    return out


def test_reference_check_giraffe(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(GIRAFFE_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{GIRAFFE_DIR}: GIRAFFE cases=3 max_rel_err=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    for output in ("feat_map", "alpha_map", "image", "dec_obj_feat", "dec_obj_sigma", "dec_bg_feat", "dec_bg_sigma",
                   "nr_out", "s", "t", "R"):
        assert output in reported


def test_numpy_scalars_read_as_python_numbers_in_both_spellings(tmp_path: Path) -> None:
    path, _ = _fixture()
    data = read_torch_zip(path)
    assert type(data["loss_val_best"]) is float and data["loss_val_best"] == 31.25
    assert (data["it"], data["epoch_it"]) == (99999, 211)
    old = _rewrite(path, tmp_path / "numpy1.pt", lambda b: b.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in zipfile.ZipFile(old).read(zipfile.ZipFile(old).namelist()[0])
    assert read_torch_zip(old)["loss_val_best"] == 31.25
    assert load_generator(old, release=FIXTURE_RELEASE, settings=_fixture()[1]) is not None


def test_the_ema_generator_renders_and_the_raw_one_is_the_fallback(tmp_path: Path) -> None:
    G = _load()
    model = read_torch_zip(_fixture()[0])["model"]
    ours = pipeline_to_official_names(G.state_dict())
    for name, tensor in ours.items():
        assert torch.equal(tensor, model[f"generator_test.{name}"]), name
    # a file without generator_test: the raw generator, with a warning (the fixture's case 0 renders it)
    raw = {k: v for k, v in model.items() if not k.startswith("generator_test.")}
    torch.save({"model": raw, "it": 1, "loss_val_best": np.float64(1.5)}, tmp_path / "raw.pt")
    with pytest.warns(UserWarning, match="no generator_test"):
        H = load_generator(tmp_path / "raw.pt", release=FIXTURE_RELEASE, settings=_fixture()[1])
    z, c, t = _case(0)
    vals = t["0_vals"].tolist()
    pose = H.embedder.object_pose(t["0_val_s"][0].tolist(), t["0_val_t"][0].tolist(), float(t["0_val_r"][0]))
    options = RenderOptions(scene=SceneControls((pose,), H.embedder.background_angle(vals[2])))
    with torch.no_grad():
        image = H.synthesis(H.mapping(z, c), c, options=options)["image"]
    official = t["0_image_from_generator_not_test"].numpy()
    assert np.abs((image.numpy() + 1) / 2 - official).max() < 1e-4


def test_names_round_trip() -> None:
    model = read_torch_zip(_fixture()[0])["model"]
    state = {k[len("generator_test."):]: v for k, v in model.items() if k.startswith("generator_test.")}
    blur = "neural_renderer.upsample_rgb.1.f"
    assert state[blur].tolist() == [1.0, 2.0, 1.0]
    renamed = official_to_pipeline_names(state)
    assert blur not in pipeline_to_official_names(renamed)
    assert pipeline_to_official_names(renamed).keys() == state.keys() - {blur}


def test_hostile_file_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    pickled = tmp_path / "payload.pkl"
    dump({"model": {}, "loss_val_best": Call(GlobalRef("os", "system"), (f"touch '{marker}'",))}, pickled,
         protocol=2)
    path = tmp_path / "checkpoint_cars256-d9ea5e11.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled.read_bytes())
        archive.writestr("archive/version", "3\n")
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        load_generator(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert not marker.exists()


def test_broken_files_give_one_line_errors(tmp_path: Path) -> None:
    path, settings = _fixture()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    bad_global = _rewrite(path, tmp_path / "global.pt", lambda b: b.replace(b"collections\nOrderedDict",
                                                                          b"collections\nUserDict\x20\x20\x20"))
    model = dict(read_torch_zip(path)["model"])
    model["generator_test.decoder.blocks.0.weight"] = torch.zeros(3, 3)
    torch.save({"model": model}, tmp_path / "shapes.pt")
    torch.save({"model": {"generator_test.something": torch.zeros(1)}}, tmp_path / "other.pt")
    for broken, pattern in ((truncated, "truncated|corrupt"), (bad_global, "UserDict"), (tmp_path / "shapes.pt", "blocks.0"),
                            (tmp_path / "other.pt", "not a GIRAFFE|pi-GAN|generator")):
        with pytest.raises((CheckpointError, UnsafePickleError), match=pattern) as info:
            load_generator(broken, release=FIXTURE_RELEASE, settings=settings)
        assert str(info.value).startswith(f"{broken}: ") and "\n" not in str(info.value), str(info.value)


def test_fixture_sizes_match_no_release_and_ask_for_one() -> None:
    path, _ = _fixture()
    with pytest.raises(CheckpointError, match="no known release .*pass release=") as info:
        load_generator(path)
    assert "\n" not in str(info.value)


def test_every_release_and_its_scene_settings() -> None:
    giraffe = [r for r in RELEASES.values() if r.method == "giraffe"]
    assert len(giraffe) == 11  # configs/*/*_pretrained.yaml
    model = read_torch_zip(_fixture()[0])["model"]
    shapes = {k[len("generator_test."):]: tuple(v.shape) for k, v in model.items() if k.startswith("generator_test.")}
    network = official_network(shapes)
    assert all(r.network != network for r in giraffe)
    for release in giraffe:
        G = load_generator(_fixture()[0], release=release.name)  # one decoder serves every box
        e, boxes = G.config.embedder, release.objects
        assert (e.num_objects, e.scale_min, e.translation_max, e.rotation_range, e.object_on_plane) == (
            boxes.num_objects, boxes.scale_min, boxes.translation_max, boxes.rotation_range, boxes.object_on_plane)
        assert e.background_rotation_range == boxes.background_rotation_range
        assert G.config.pose.fov_degrees == release.fov_degrees and G.neural_rendering_resolution == 16
        assert G.z_dim == G.config.codes_needed()
    clevr = load_generator(_fixture()[0], release="giraffe-clevr2345-256")
    poses = clevr.embedder.default_controls().objects
    assert len(poses) == 5 and all(p.translation[2] == pytest.approx(0.1665) for p in poses)
    z = torch.randn(1, clevr.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        image = clevr(z, clevr.default_camera())["image"]
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()


def test_moving_an_object_changes_the_image_where_it_is() -> None:
    G = _load()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    z, c, _ = _case(0)
    scene = G.planes(G.mapping(z, c))
    home = G.embedder.object_pose()
    moved = dataclasses.replace(home, translation=(home.translation[0], home.translation[1] + 0.3, home.translation[2]))
    with torch.no_grad():
        images, alphas = [], []
        for pose in (home, moved):
            options = RenderOptions(scene=SceneControls((pose,)))
            images.append(G.render_neural(scene, c, 16, options)[0])
            alphas.append(G.embedder.alpha_maps(G, scene, c, 16, options)[0, 0])
        gone = G.render_neural(scene, c, 16, RenderOptions(scene=SceneControls(())))[0]
    change = (images[0] - images[1]).abs().amax(1)[0]
    occupied = (alphas[0] > 0.5) | (alphas[1] > 0.5)
    empty = (alphas[0] < 1e-4) & (alphas[1] < 1e-4)
    assert occupied.any() and empty.any()
    assert change[occupied].mean() > 10 * change[empty].max().clamp_min(1e-6)
    assert not torch.equal(alphas[0], alphas[1])
    assert (images[0] - gone).abs().amax(1)[0][alphas[0] > 0.5].min() > 0  # removing the object shows background
    for name, tensor in G.state_dict().items():  # rendering never edits the model
        assert torch.equal(tensor, before[name]), name
    with pytest.raises(ValueError, match="2 object poses"):
        G.render_neural(scene, c, 16, RenderOptions(scene=SceneControls((home, home))))


def test_background_rotation_is_a_render_input() -> None:
    G = load_generator(_fixture()[0], release="giraffe-church64")  # its own box and background settings
    z, c, _ = _case(0)
    scene = G.planes(G.mapping(z, c))
    with torch.no_grad():
        a = G.render_neural(scene, c, 16, RenderOptions(scene=SceneControls(background_rotation=0.0)))[0]
        b = G.render_neural(scene, c, 16, RenderOptions(scene=SceneControls(background_rotation=1.0)))[0]
    assert not torch.allclose(a, b)
    assert G.embedder.background_angle(0.5) == pytest.approx(2 * np.pi * 0.125)


def test_convert_round_trip_renders_identically(tmp_path: Path) -> None:
    import visualizer

    path, _ = _fixture()
    out = tmp_path / "giraffe.safetensors"
    assert visualizer.main(["convert", str(path), str(out), "--release", FIXTURE_RELEASE]) == 0
    G, H = load_generator(path, release=FIXTURE_RELEASE), load_generator(out)
    z, c, _ = _case(1)
    options = RenderOptions(scene=SceneControls((ObjectPose((0.1, 0.0, 0.0), (0.2, 0.2, 0.2), 1.0),)))
    with torch.no_grad():
        a = G(z, c, options=options)
        b = H(z, c, options=options)
    for key in ("image", "image_depth"):
        assert torch.equal(a[key], b[key])


def test_meshes_and_density_normals_follow_the_scene() -> None:
    from renderers.render_args import RenderArgs
    from renderers.renderer import GeneratorRenderer

    G = _load()
    renderer = GeneratorRenderer(G)
    home = G.embedder.object_pose()
    moved = SceneControls((dataclasses.replace(home, translation=(home.translation[0], home.translation[1] + 0.3,
                                                                   home.translation[2])),))
    _, planes = renderer.identity_planes(RenderArgs())
    points = torch.rand(2000, 3) - 0.5
    default_field = G.mesh_fields(planes).field(points)
    moved_field = G.mesh_fields(planes, RenderOptions(scene=moved)).field(points)
    assert not torch.equal(default_field, moved_field)
    assert torch.equal(renderer.mesh_fields(planes, moved).field(points), moved_field)
    meshes = [renderer.render(RenderArgs(mode="mesh", mesh_resolution=32, scene=scene)).mesh
              for scene in (SceneControls(), moved)]
    assert meshes[0].vertices.shape != meshes[1].vertices.shape or not np.allclose(meshes[0].vertices,
                                                                                  meshes[1].vertices)
    normals = [renderer.render(RenderArgs(mode="normals", normals_source="density", scene=scene)).normals
               for scene in (SceneControls(), moved)]
    assert not torch.equal(normals[0], normals[1])


def test_the_preset_is_the_released_ffhq256_network(tmp_path: Path) -> None:
    """The fixture README's table of the released FFHQ-256 shapes; a file of them opens (first 256 px
    release, with a warning naming the others) and as ``giraffe-ffhq256`` when named."""
    from models.methods import pipeline_preset
    from models.pipeline import PipelineGenerator

    torch.manual_seed(0)
    G = PipelineGenerator(pipeline_preset("giraffe"))
    official = pipeline_to_official_names(G.state_dict())
    table = {"decoder.fc_in.weight": (128, 60), "decoder.fc_z.weight": (128, 256), "decoder.blocks.6.weight": (128, 128),
             "decoder.fc_z_skips.0.weight": (128, 256), "decoder.fc_p_skips.0.weight": (128, 60),
             "decoder.sigma_out.weight": (1, 128), "decoder.fc_z_view.weight": (128, 256),
             "decoder.feat_view.weight": (128, 128), "decoder.fc_view.weight": (128, 24),
             "decoder.feat_out.weight": (256, 128), "background_generator.fc_in.weight": (64, 60),
             "background_generator.fc_z.weight": (64, 128), "background_generator.blocks.2.weight": (64, 64),
             "background_generator.feat_out.weight": (256, 64), "background_generator.fc_view.weight": (64, 24),
             "neural_renderer.conv_layers.0.weight": (128, 256, 3, 3), "neural_renderer.conv_layers.3.weight": (32, 32, 3, 3),
             "neural_renderer.conv_rgb.0.weight": (3, 256, 3, 3), "neural_renderer.conv_rgb.4.weight": (3, 32, 3, 3)}
    for name, shape in table.items():
        assert tuple(official[name].shape) == shape, name
    assert "decoder.blocks.7.weight" not in official and "background_generator.blocks.3.weight" not in official
    model = {f"generator_test.{k}": v for k, v in official.items()}
    model["generator_test.neural_renderer.upsample_rgb.1.f"] = torch.tensor([[1.0, 2.0, 1.0]])
    torch.save({"model": model, "it": 1, "loss_val_best": np.float64(9.5)}, tmp_path / "checkpoint_ffhq256-x.pt")
    with pytest.warns(UserWarning, match="cannot tell giraffe-cars256, giraffe-celebahq256, giraffe-ffhq256"):
        H = load_generator(tmp_path / "checkpoint_ffhq256-x.pt")
    assert H.config.extra["release"] == "giraffe-cars256" and H.img_resolution == 256
    H = load_generator(tmp_path / "checkpoint_ffhq256-x.pt", release="giraffe-ffhq256")
    assert H.config.to_dict() == {**G.config.to_dict(), "extra": H.config.extra}
    for name, tensor in H.state_dict().items():
        assert torch.equal(tensor, G.state_dict()[name]), name
