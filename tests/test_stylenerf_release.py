"""Official StyleNeRF checkpoints (facebookresearch/StyleNeRF ``ffhq_{256,512,1024}.pkl``: persistence
pickles whose init kwargs are omegaconf nodes): the import through ``load_generator``, the name map,
hostile and broken variants of the format, and the reference check on ``shared/fixtures/stylenerf_ref``.
Every size is read from the fixture's files."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models import load_generator
from models.eg3d_pickle import _INERT_CLASSES, InertObject, PersistentRecord
from models.epigraf_pickle import TypingAny
from models.errors import CheckpointError, UnsafePickleError
from models.methods.stylenerf import DROPPED, official_to_pipeline_names, pipeline_to_official_names
from models.releases import RELEASES
from models.stylenerf_pickle import load_stylenerf_generator_record, read_stylenerf_pickle
from tests.conftest import SHARED_DIR, require
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

STYLENERF_DIR = SHARED_DIR / "fixtures" / "stylenerf_ref"
RELEASE = "stylenerf-ffhq256"
"""The fixture is a small 64 px network: name a release (the file's own settings replace its)."""


def _pkl() -> Path:
    return require(STYLENERF_DIR / "network.pkl")


def _official_state() -> dict[str, torch.Tensor]:
    return load_stylenerf_generator_record(_pkl(), read_stylenerf_pickle(_pkl()))[1]


def test_reference_check_stylenerf(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.reference_check import main

    assert main([str(require(STYLENERF_DIR)), "-v"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{STYLENERF_DIR}: StyleNeRF cases=3 max_rel_err=") and lines[0].endswith(" ok"), lines[0]
    reported = {line.split(":")[0].strip() for line in lines[1:]}
    for output in ("ws", "image", "image_nerf", "feat_nerf", "surface_xyz", "q_fg_sigma_raw", "q_fg_feat",
                   "q_bg_sigma_raw", "q_bg_feat"):
        assert output in reported


def test_import_reads_sizes_from_the_file_and_names_round_trip() -> None:
    config = json.loads(require(STYLENERF_DIR / "config.json").read_text())
    state = _official_state()
    G = load_generator(_pkl(), release=RELEASE)
    assert G.img_resolution == config["G_init_kwargs"]["img_resolution"]
    assert G.neural_rendering_resolution == config["G_init_kwargs"]["synthesis_kwargs"]["resolution_vol"]
    assert G.num_ws == config["num_ws"] and G.decoder.num_ws == config["fg_nerf_num_ws"]
    assert [f"b{r}" for r in G.upsampler.block_resolutions] == config["upsampler_blocks"]
    renderer = config["G_init_kwargs"]["synthesis_kwargs"]["renderer_kwargs"]
    assert G.rendering_kwargs["depth_resolution"] == renderer["n_ray_samples"]
    assert G.embedder.background_samples == renderer["n_bg_samples"]
    ours = pipeline_to_official_names(G.state_dict())
    kept = {k: v for k, v in state.items() if not DROPPED.match(k)}
    assert set(ours) == set(kept)
    for key, tensor in kept.items():
        assert torch.equal(ours[key], tensor), key
    assert set(official_to_pipeline_names(ours)) == set(G.state_dict())


def test_release_entries_and_detection() -> None:
    for name, res in (("stylenerf-ffhq256", 256), ("stylenerf-ffhq512", 512), ("stylenerf-ffhq1024", 1024)):
        release = RELEASES[name]
        assert release.img_resolution == res and release.network.endswith(f" {res} px")
        assert (release.fov_degrees, release.near, release.far, release.truncation_psi) == (12.0, 0.88, 1.12, 0.7)
    with pytest.raises(CheckpointError, match="no known release"):
        load_generator(_pkl())  # 64 px: none of the released sizes
    with pytest.raises(CheckpointError, match="release 'gram-ffhq'"):
        load_generator(_pkl(), release="gram-ffhq")


def test_renders_every_output_and_settings_apply() -> None:
    G = load_generator(_pkl(), release=RELEASE, settings={"num_coarse": 4, "num_fine": 2})
    assert (G.rendering_kwargs["depth_resolution"], G.rendering_kwargs["depth_resolution_importance"]) == (4, 2)
    z = torch.from_numpy(np.random.RandomState(0).randn(2, G.z_dim).astype(np.float32))
    c = G.default_camera(batch=2, yaw=0.2, pitch=-0.1)
    with torch.no_grad():
        out = G(z, c, truncation_psi=0.7)
    r, size = G.neural_rendering_resolution, G.img_resolution
    assert out["image"].shape == (2, 3, size, size) and out["image_raw"].shape == (2, 3, r, r)
    assert out["image_depth"].shape == (2, 1, r, r)
    assert all(torch.isfinite(v).all() for v in out.values())


# --- hostile and broken files ---------------------------------------------------------------------

def _repickle(data: Any, path: Path, module_src: str, edit=None) -> Path:
    """Write the fixture's records back as a StyleNeRF-layout persistence pickle whose every embedded
    module source is ``module_src`` (``edit`` may change the records first)."""
    memo: dict[int, Any] = {}

    def convert(obj: Any) -> Any:
        if id(obj) in memo:
            return memo[id(obj)]
        if isinstance(obj, PersistentRecord):
            meta: dict[str, Any] = {"type": "class", "version": obj.version, "module_src": module_src,
                                    "class_name": obj.class_name}
            call = memo[id(obj)] = Call(GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))
            meta["state"] = convert(obj.state)
            return call
        if isinstance(obj, InertObject):
            memo[id(obj)] = obj
            obj.state = convert(obj.state)
            return obj
        if isinstance(obj, TypingAny):
            return GlobalRef("typing", "Any")
        if isinstance(obj, dict):
            out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
            memo[id(obj)] = out
            out.update((k, convert(v)) for k, v in obj.items())
            return out
        if isinstance(obj, (list, tuple)):
            return type(obj)(convert(v) for v in obj)
        return obj

    if edit is not None:
        edit(data)
    renames = {id(cls): tuple(name.rsplit(".", 1)) for name, cls in _INERT_CLASSES.items()}
    dump(convert(data), path, protocol=4, renames=renames)
    return path


def _records() -> dict[str, Any]:
    return read_stylenerf_pickle(_pkl())


def _synthesis_kwargs(data: dict[str, Any]) -> InertObject:
    return data["G_ema"].state["_init_kwargs"]["synthesis_kwargs"]


def test_embedded_source_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    source = f"open({str(marker)!r}, 'w').close()\nclass Generator: pass\n"
    path = _repickle(_records(), tmp_path / "ffhq_256.pkl", source)
    G = load_generator(path, release=RELEASE)
    assert not marker.exists()
    reference = load_generator(_pkl(), release=RELEASE)
    for key, tensor in reference.state_dict().items():
        assert torch.equal(G.state_dict()[key], tensor), key


@pytest.mark.parametrize("place", ["omegaconf_leaf", "top_level", "defaultdict_factory"])
def test_hostile_global_is_refused_with_nothing_run(tmp_path: Path, place: str) -> None:
    marker = tmp_path / "marker"
    evil = Call(GlobalRef("os", "system"), (f"touch '{marker}'",))

    def edit(data: dict[str, Any]) -> None:
        if place == "omegaconf_leaf":  # an AnyNode's value inside the synthesis kwargs
            _synthesis_kwargs(data).state["_content"]["conv_clamp"].state["_val"] = evil
        elif place == "top_level":
            data["augment_pipe"] = evil
        else:  # omegaconf's resolver cache built with a callable default factory
            _synthesis_kwargs(data).state["_metadata"].state["resolver_cache"] = \
                Call(GlobalRef("collections", "defaultdict"), (GlobalRef("builtins", "eval"),))

    path = _repickle(_records(), tmp_path / "ffhq_256.pkl", "pass\n", edit)
    with pytest.raises(UnsafePickleError) as info:
        load_generator(path, release=RELEASE)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "nothing was executed" in message
    assert ("'builtins.eval'" if place == "defaultdict_factory" else "'os.system'") in message
    assert not marker.exists()


def test_defaultdict_with_another_allowed_callable_is_refused(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        _synthesis_kwargs(data).state["_metadata"].state["resolver_cache"] = Call(
            GlobalRef("collections", "defaultdict"), (GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj"),))

    path = _repickle(_records(), tmp_path / "ffhq_256.pkl", "pass\n", edit)
    with pytest.raises(UnsafePickleError, match="factory") as info:
        load_generator(path, release=RELEASE)
    assert "\n" not in str(info.value)


def test_truncated_and_mis_shaped_files_are_one_line_errors(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(_pkl().read_bytes()[: 200_000])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_generator(truncated, release=RELEASE)
    assert str(info.value).startswith(f"{truncated}: ") and "\n" not in str(info.value)

    def widen(data: dict[str, Any]) -> None:
        fg = data["G_ema"].state["_modules"]["synthesis"].state["_modules"]["fg_nerf"]
        to_rgb = fg.state["_modules"]["to_rgb"].state["_parameters"]
        to_rgb["weight"] = torch.nn.Parameter(torch.zeros(3, to_rgb["weight"].shape[1] + 1, 1, 1))

    path = _repickle(_records(), tmp_path / "wide.pkl", "pass\n", widen)
    with pytest.raises(CheckpointError, match="to_rgb.weight") as info:
        load_generator(path, release=RELEASE)
    assert "\n" not in str(info.value)

    def growing(data: dict[str, Any]) -> None:
        data["G_ema"].state["_modules"]["synthesis"].state["_buffers"]["alpha"] = torch.tensor(0.5)

    path = _repickle(_records(), tmp_path / "growing.pkl", "pass\n", growing)
    with pytest.raises(CheckpointError, match="finished growing"):
        load_generator(path, release=RELEASE)


def test_cameras_follow_the_official_conventions() -> None:
    """z-up world, frontal camera on +x, OpenGL axes: the official look-at from the README's float64 angles
    gives the recorded ``world_mat`` bit for bit, our labels map to it and back exactly, and our orbit
    camera at yaw u is StyleNeRF's at azimuth u (same side, same up)."""
    import math

    from ops.camera import fov_to_focal
    from ops.stylenerf import label_from_stylenerf, stylenerf_camera, stylenerf_matrices

    cases = np.load(require(STYLENERF_DIR / "cases.npz"))
    for i, (yaw, offset) in enumerate(((0.0, 0.0), (0.25, 0.12), (-0.2, -0.08))):  # README "cases.npz"
        official = torch.from_numpy(cases[f"{i}_world_mat"])
        assert torch.equal(stylenerf_camera(yaw, math.pi / 2 + offset), official)
        world, camera = stylenerf_matrices(label_from_stylenerf(official, fov_to_focal(12.0)))
        assert torch.equal(world, official) and torch.equal(camera, torch.from_numpy(cases[f"{i}_camera_mat"]))
    G = load_generator(_pkl(), release=RELEASE)
    for yaw in (0.0, 0.25, -0.2):
        world, _ = stylenerf_matrices(G.default_camera(yaw=yaw))
        assert torch.allclose(world, stylenerf_camera(yaw, math.pi / 2), atol=1e-6)
