"""EpiGRAF's released snapshots (``model.pkl``, StyleGAN-style persistence pickles with ``src.`` module
paths and omegaconf configs): the import through ``load_generator``, hostile and broken variants of
the format, the name map, and the class control, on ``shared/fixtures/epigraf_ref``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import load_generator
from models.epigraf_pickle import EPIGRAF_PERSISTENCE, persistence_module
from models.errors import CheckpointError, UnsafePickleError
from models.methods.epigraf import from_official, official_to_pipeline_names, pipeline_to_official_names
from models.releases import RELEASES
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

EPIGRAF_DIR = SHARED_DIR / "fixtures" / "epigraf_ref"


def _pickle() -> Path:
    return require(EPIGRAF_DIR / "network.pkl")


def _config() -> dict:
    return json.loads(require(EPIGRAF_DIR / "config.json").read_text())


def test_reference_check_epigraf(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(EPIGRAF_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{EPIGRAF_DIR}: EpiGRAF cases=3 max_rel_err=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    assert {"cam2world", "ws", "planes", "q_rgb_sigma_raw", "image", "depth", "patch_image"} <= reported


def test_sizes_and_settings_come_from_the_file() -> None:
    config = _config()
    cfg = config["G_init_kwargs"]["cfg"]
    G = load_generator(_pickle())
    c = G.config
    assert c.extra["release"] == "epigraf-ffhq512"  # unconditional: the FFHQ release
    assert (c.mapping.z_dim, c.mapping.w_dim, c.mapping.layers) == (512, cfg["w_dim"], cfg["map_depth"])
    assert (c.embedder.resolution, c.embedder.channels) == (cfg["tri_plane"]["res"], cfg["tri_plane"]["feat_dim"])
    assert (c.decoder.hidden, c.decoder.layers) == (cfg["tri_plane"]["mlp"]["hid_dim"], cfg["tri_plane"]["mlp"]["n_layers"])
    # cfg.dataset is '${dataset}' in the pickle: resolved through the pickled experiment root
    camera = cfg["dataset"]["camera"]
    assert (c.pose.fov_degrees, c.points.near, c.points.far) == (camera["fov"], camera["ray_start"], camera["ray_end"])
    assert c.points.box_side == pytest.approx(2 * cfg["dataset"]["cube_scale"])
    assert c.points.num_coarse == c.points.num_fine == cfg["num_ray_steps"]  # the synthesis keeps the file's steps
    assert c.img_resolution == RELEASES["epigraf-ffhq512"].img_resolution
    assert G.num_ws == config["num_ws"]
    # the file's buffer (the fixture perturbed it after construction, so not config.json's value)
    mean = torch.tensor(config["G_init_kwargs"]["mapping_kwargs"]["mean_camera_pose"])
    assert G.mapping_network.mean_camera_pose.shape == mean.shape
    assert not torch.equal(G.mapping_network.mean_camera_pose, mean)


def test_release_named_must_fit_the_file() -> None:
    with pytest.raises(CheckpointError) as e:
        load_generator(_pickle(), release="epigraf-megascans-food256")
    assert str(_pickle()) in str(e.value) and "c_dim 10" in str(e.value)


def test_dispatch_reads_the_persistence_module() -> None:
    assert persistence_module(_pickle()) == EPIGRAF_PERSISTENCE


def test_names_round_trip() -> None:
    G = load_generator(_pickle())
    ours = G.state_dict()
    official = pipeline_to_official_names(ours)
    assert all(k.startswith(("mapping.", "synthesis.tri_plane_decoder.", "synthesis.tri_plane_mlp.model."))
               for k in official)
    assert official_to_pipeline_names(official).keys() == ours.keys()


def test_unsupported_options_are_refused() -> None:
    from models.releases import RELEASES as R

    shapes = {"mapping.fc0.weight": (32, 512), "synthesis.bg_model.fc.weight": (4, 4)}
    with pytest.raises(ValueError, match="background"):
        from_official({}, shapes, R["epigraf-ffhq512"])
    with pytest.raises(ValueError, match="view-conditioned"):
        from_official({"tri_plane": {"has_view_cond": True}}, {}, R["epigraf-ffhq512"])


def test_class_index_changes_a_conditional_mapping() -> None:
    from models.mappings import EpiGRAFMapping

    torch.manual_seed(0)
    mapping = EpiGRAFMapping(EpiGRAFMapping.Config(z_dim=8, w_dim=8, classes=3, camera_conditioning=True), 25, 4).eval()
    z, c = torch.randn(2, 8), torch.zeros(2, 25)
    first = mapping(z, c)
    mapping.class_index = 2
    assert first.shape == (2, 4, 8) and not torch.allclose(first, mapping(z, c))


# --- hostile and broken files ---------------------------------------------------------------------

def _placeholder(data: bytes) -> bytes:
    start = data.index(b"# official source of module training.networks_epigraf")
    return data[start:data.index(b"\n", start) + 1]


def test_module_src_is_never_executed(tmp_path: Path) -> None:
    """The fixture with the generator's module source replaced (same length) by code that would
    create a file: it loads and renders, and the file is never created."""
    marker = tmp_path / "pwned"
    data = _pickle().read_bytes()
    old = _placeholder(data)
    code = f"import os; os.system('touch {marker}')  #".encode()
    assert len(code) < len(old)
    hostile = tmp_path / "evil-src.pkl"
    hostile.write_bytes(data.replace(old, code + b"x" * (len(old) - len(code) - 1) + b"\n"))
    G = load_generator(hostile)
    assert G.config.preset == "epigraf"
    assert not marker.exists()


def _snapshot(state: dict) -> dict:
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "Generator", "state": state}
    return {"G_ema": Call(GlobalRef(EPIGRAF_PERSISTENCE, "_reconstruct_persistent_obj"), (meta,))}


@pytest.mark.parametrize("payload", [
    Call(GlobalRef("os", "system"), ("touch {marker}",)),
    Call(GlobalRef("builtins", "eval"), ("open('{marker}', 'w')",)),
    Call(GlobalRef("omegaconf", "OmegaConf"), ()),  # omegaconf itself is never imported
    Call(GlobalRef("collections", "defaultdict"), (GlobalRef("builtins", "int"),)),  # a factory that is not dict
])
def test_hostile_epigraf_pickle_is_refused(tmp_path: Path, payload: Call) -> None:
    marker = tmp_path / "pwned"
    payload.args = tuple(a.format(marker=marker) if isinstance(a, str) else a for a in payload.args)
    path = tmp_path / "evil.pkl"
    dump(_snapshot({"cfg": payload}), path)
    assert persistence_module(path) == EPIGRAF_PERSISTENCE  # goes to the EpiGRAF reader
    with pytest.raises(UnsafePickleError) as e:
        load_generator(path)
    assert str(path) in str(e.value) and len(str(e.value).splitlines()) == 1
    assert not marker.exists()


def test_truncated_and_malformed_files(tmp_path: Path) -> None:
    data = _pickle().read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(truncated)
    not_a_generator = tmp_path / "other.pkl"
    dump({"G_ema": _snapshot({"cfg": {}})["G_ema"]}, not_a_generator)
    with pytest.raises(CheckpointError) as e:
        load_generator(not_a_generator)
    assert str(not_a_generator) in str(e.value)


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    """A tensor whose size disagrees with the rest (the MLP's input width) gives one line naming it."""
    import models.methods.epigraf as epigraf

    real = epigraf.from_official

    def narrower(cfg, shapes, release, settings=None):
        config = real(cfg, shapes, release, settings)
        config.decoder.hidden += 1
        return config

    epigraf.from_official = narrower
    try:
        with pytest.raises(CheckpointError, match="decoder.net"):
            load_generator(_pickle())
    finally:
        epigraf.from_official = real


def test_official_random_sampling_is_offered() -> None:
    """The official forward always jitters and draws importance samples at random; ``random_sampling``
    renders that way in eval too, the default is the deterministic rule of the fixture."""
    from ops.camera import epigraf_pose, fov_to_focal, intrinsics_from_focal, pack_label

    fixed = load_generator(_pickle(), settings={"img_resolution": 16})
    random = load_generator(_pickle(), settings={"img_resolution": 16, "random_sampling": True})
    assert not fixed.config.renderer.random_at_eval and random.config.renderer.random_at_eval
    c = pack_label(epigraf_pose(torch.tensor([[0.0, 1.5708, 0.0]])), intrinsics_from_focal(fov_to_focal(12.0))[None])
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = fixed.mapping(z, c)
        images = [G.synthesis(ws, c)["image"] for G in (fixed, fixed, random, random)]
    assert torch.equal(images[0], images[1]) and not torch.equal(images[2], images[3])
    assert (images[2] - images[0]).abs().mean() < 0.1 * images[0].abs().mean() + 1e-3


def test_midpoint_bins_stay_in_their_bins() -> None:
    from models.point_sampling import PERTURBATIONS

    torch.manual_seed(0)
    depths = PERTURBATIONS["midpoint_bins"](2, 5, 0.88, 1.12, 12, False, "cpu")
    grid = torch.linspace(0.88, 1.12, 12)
    half = (grid[1] - grid[0]) / 2
    assert depths.shape == (2, 5, 12, 1)
    assert bool(((depths[..., 0] - grid).abs() <= half + 1e-6).all())
    assert bool((depths >= 0.88).all() and (depths <= 1.12 + 1e-6).all())


def test_conditional_truncation_pulls_toward_the_class_mean() -> None:
    from models.mappings import EpiGRAFMapping

    torch.manual_seed(0)
    config = EpiGRAFMapping.Config(z_dim=8, w_dim=8, classes=3, class_mean_samples=16)
    mapping = EpiGRAFMapping(config, 25, 4).eval()
    z, c = torch.randn(2, 8), torch.zeros(2, 25)
    mapping.class_index = 1
    rng = torch.Generator().manual_seed(0)
    mean = mapping(torch.randn(16, 8, generator=rng), torch.zeros(16, 25)).mean(0)
    expected = mapping(z, c) * 0.5 + mean * 0.5
    assert torch.allclose(mapping(z, c, truncation_psi=0.5), expected, atol=1e-6)
    mapping.class_index = 2  # another class, another mean
    assert not torch.allclose(mapping(z, c, truncation_psi=0.5), mapping(z, c) * 0.5 + mean * 0.5, atol=1e-4)


# --- omegaconf records --------------------------------------------------------------------------

def _node(kind: str, parent=None, **state):
    """An inert omegaconf record as the unpickler builds it (``kind``: DictConfig, ListConfig, AnyNode)."""
    from models.eg3d_pickle import _inert_class

    module = {"DictConfig": "dictconfig", "ListConfig": "listconfig", "AnyNode": "nodes"}[kind]
    node = _inert_class(f"omegaconf.{module}.{kind}").__new__(_inert_class(f"omegaconf.{module}.{kind}"))
    node.__setstate__({"_parent": parent, **state})
    return node


def _tree(value, parent=None):
    if isinstance(value, dict):
        node = _node("DictConfig", parent, _content={})
        node.state["_content"] = {k: _tree(v, node) for k, v in value.items()}
        return node
    if isinstance(value, list):
        node = _node("ListConfig", parent, _content=[])
        node.state["_content"] = [_tree(v, node) for v in value]
        return node
    return _node("AnyNode", parent, _val=value)


def test_omegaconf_interpolations_resolve_against_the_root() -> None:
    from models.epigraf_pickle import Unresolved, omegaconf_to_plain

    root = _tree({"dataset": {"name": "ffhq", "camera": {"fov": 12.0}, "steps": [1, "${model.n}"]},
                  "model": {"n": 3, "g": {"dataset": "${dataset}", "fov": "${dataset.camera.fov}",
                                          "path": "data/${dataset.name}.zip", "env": "${env:HOME}",
                                          "missing": "${nowhere.x}", "loop": "${model.g.loop}"}}})
    generator = root.state["_content"]["model"].state["_content"]["g"]
    with pytest.raises(CheckpointError, match="too deeply"):
        omegaconf_to_plain(generator)  # a self-referencing interpolation is refused, not followed forever
    del generator.state["_content"]["loop"]
    plain = omegaconf_to_plain(generator)
    assert plain["dataset"] == {"name": "ffhq", "camera": {"fov": 12.0}, "steps": [1, 3]}
    assert plain["fov"] == 12.0 and plain["path"] == "data/ffhq.zip"
    assert isinstance(plain["env"], Unresolved) and plain["env"] == "${env:HOME}"  # resolvers are never run
    assert isinstance(plain["missing"], Unresolved)


def test_unresolvable_dataset_falls_back_to_the_release() -> None:
    """Where ``cfg.dataset`` cannot be resolved, the release's settings are used (sizes still come from
    the shapes)."""
    from models.epigraf_pickle import Unresolved, load_epigraf_generator_record

    _record, cfg, state_dict = load_epigraf_generator_record(_pickle())
    cfg = dict(cfg, dataset=Unresolved("${dataset}"))
    release = RELEASES["epigraf-ffhq512"]
    config = from_official(cfg, {k: tuple(v.shape) for k, v in state_dict.items()}, release)
    assert (config.pose.fov_degrees, config.points.near, config.points.far) == (release.fov_degrees, release.near,
                                                                                release.far)
    assert config.points.box_side == release.box_side and config.renderer.white_back == release.white_back


def test_batch_tools_take_a_class(tmp_path: Path) -> None:
    """``--class K`` renders class K of a class-conditional model; a class out of range, or any class of an
    unconditional model, is one error line (exit 2)."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    from models.checkpoint import save_generator
    from models.pipeline import PipelineGenerator
    from tests.conftest import REPO_ROOT

    config = load_generator(_pickle(), settings={"img_resolution": 16}).config.copy()
    config.mapping.classes = 3
    torch.manual_seed(0)
    path = tmp_path / "conditional.safetensors"
    save_generator(PipelineGenerator(config), path)

    def images(model: Path, *extra: str, out: str = "img") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), "images", str(model), "--seeds", "0",
                               "--views", "1", "--out", str(tmp_path / out), *extra],
                              capture_output=True, text=True, timeout=300)

    strips = []
    for k in (0, 2):
        result = images(path, "--class", str(k), out=f"class{k}")
        assert result.returncode == 0, result.stderr
        strips.append(np.asarray(Image.open(tmp_path / f"class{k}" / "seed0000.png")).astype(np.float32))
    assert np.abs(strips[0] - strips[1]).mean() > 0.5
    for model, k, message in ((path, "3", "outside [0, 3)"), (_pickle(), "1", "not class-conditional")):
        result = images(model, "--class", k, out="bad")
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
