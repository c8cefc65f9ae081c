"""The model zoo (issue 18): its recipes are valid training commands, the bundled files load and
record that they learned, and the Model panel's list reads their headers without torch."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from renderers.model_source import ZOO_DIR, bundled_models, read_safetensors_metadata
from training.zoo import ENTRIES, ZOO

MAX_BYTES = 3_000_000
"""Largest zoo file (issue 18)."""


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.method)
def test_each_entry_is_a_valid_fit_command_for_a_small_model(entry, tmp_path):
    import train
    from models.build import build_generator
    from models.methods import method_names

    assert entry.method in method_names()
    args = train.build_parser().parse_args(entry.fit_command(tmp_path)[1:])
    assert args.data == str(tmp_path / f"heads{entry.resolution}.zip") and args.resume == "auto"
    config = train.resolve_train_config(args)
    assert config.generator.img_resolution == entry.resolution and config.batch == entry.batch
    with torch.device("meta"):
        G = build_generator(config.generator)
    size = sum(t.numel() * t.element_size() for t in G.state_dict().values())
    assert size < MAX_BYTES, f"{entry.method}: {size / 1e6:.2f} MB of weights"


def test_one_data_seed_for_every_entry(tmp_path):
    commands = {tuple(e.data_command(tmp_path)) for e in ENTRIES if e.resolution == 32}
    assert len(commands) == 1 and "--seed" in next(iter(commands))


def _write_header(path: Path, metadata: dict[str, str]) -> None:
    header = json.dumps({"__metadata__": metadata}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def test_bundled_models_are_listed_from_their_headers(tmp_path):
    _write_header(tmp_path / "b.safetensors", {"zoo": "pigan", "kimg": "10.000", "swd_init": "250.1", "swd": "90.2"})
    _write_header(tmp_path / "a.safetensors", {"method": "eg3d"})
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 1 << 40))  # header size beyond any limit
    (tmp_path / "short.safetensors").write_bytes(b"\x01")
    (tmp_path / "notes.txt").write_text("not a model")
    listed = bundled_models(tmp_path)
    assert [(m.method, m.path.name) for m in listed] == [("eg3d", "a.safetensors"), ("pigan", "b.safetensors")]
    assert listed[1].label == "pigan (10 kimg, SWD 250.1 -> 90.2)" and listed[0].label == "eg3d"
    assert bundled_models(tmp_path / "missing") == []


def test_header_reader_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match=r"x\.safetensors: unreadable safetensors header"):
        read_safetensors_metadata(path)
    path.write_bytes(struct.pack("<Q", 1 << 30))
    with pytest.raises(ValueError, match="larger than"):
        read_safetensors_metadata(path)


SHIPPED = bundled_models()


def test_every_method_of_the_zoo_ships_a_model():
    """One bundled file per zoo entry (the nine methods), each made by its entry's own command."""
    assert sorted(m.method for m in SHIPPED) == sorted(ZOO)
    for model in SHIPPED:  # each file was trained with its entry as it stands
        entry, shipped = ZOO[model.method], model.metadata["command"]
        assert f"--cfg {entry.cfg} " in shipped and f"--kimg {entry.kimg:g} " in shipped, model.method
        for item in entry.overrides:
            assert f"--set {item}" in shipped, (model.method, item)


@pytest.mark.skipif(not SHIPPED, reason="no zoo files bundled yet")
@pytest.mark.parametrize("model", SHIPPED, ids=lambda m: m.method)
def test_each_bundled_model_loads_renders_and_learned(model):
    from models import load_generator

    assert model.path.parent == ZOO_DIR and model.method in ZOO
    assert model.path.stat().st_size <= MAX_BYTES
    meta = model.metadata
    for key in ("data_command", "command", "kimg", "train_seconds", "swd_init", "swd", "eval"):
        assert meta.get(key), f"{model.path.name}: no {key} in its metadata"
    assert float(meta["swd"]) <= 0.5 * float(meta["swd_init"])
    assert float(meta["train_seconds"]) <= 45 * 60
    assert json.loads(meta["swd_history"])[0][0] == 0.0  # the initial value is the run's kimg-0 evaluation
    G = load_generator(str(model.path), device="cpu")
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
    c = torch.zeros(1, G.c_dim)
    if G.c_dim == 25:
        from ops.camera import orbit_label

        c = torch.as_tensor(orbit_label(0.0, 0.0, 2.7, [0, 0, 0.2], 4.2647)[0]).reshape(1, 25).float()
    with torch.no_grad():
        image = G.synthesis(G.mapping(z, c, truncation_psi=0.7), c)["image"]
    assert image.shape[-1] == ZOO[model.method].resolution and torch.isfinite(image).all()


def test_a_runs_swd_history_is_read_from_its_metrics_log(tmp_path):
    from training.zoo import swd_history

    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"metric": "swd", "kimg": 0.0, "results": {"swd": 200.0}},
        {"metric": "fid", "kimg": 1.0, "results": {"fid": 50.0}},
        {"metric": "swd", "kimg": 1.0, "results": {"swd": 90.5}})) + "\n")
    assert swd_history(tmp_path) == [(0.0, 200.0), (1.0, 90.5)]


DEFAULT_GOALS = {"geometry/within10": 0.5, "reprojection": 3.0, "reprojection/valid": 0.4, "swd": 33.6}
"""Issue 18's goals for the default model: within10 >= 0.5, reprojection <= 3.0 with valid >= 0.4,
SWD no worse than the earlier default's 33.6 (its training run's figure)."""
GROUND_TRUTH_VALID = {32: 0.374, 64: 0.438}
"""``reprojection/valid`` of the synthetic heads themselves (128 of the evaluation set traced at the
metric's cameras, background at 3.1; README) at neural resolutions 32 and 64: a faithful model
rendering 32 px cannot reach 0.4."""


def ground_truth_reprojection(count: int, resolution: int) -> tuple[float, float]:
    """(RE, valid) of ``count`` synthetic heads of the evaluation set (data seed 1) traced exactly at
    the reprojection metric's cameras (FFHQ's radius, pivot and focal: ``orbit_label``'s defaults),
    the background at the default model's far plane."""
    from ops.camera import orbit_label
    from training.methods.eg3d import SDF_FAR
    from training.synthetic import render, sample_scenes
    from training.view_metrics import REPROJECTION_YAWS, reprojection_errors, view_pairs

    src, dst = view_pairs(len(REPROJECTION_YAWS))
    error_sum, valid, pixels = 0.0, 0, 0
    for i in range(count):
        scene = sample_scenes("heads", 1, [i])
        images, depths, labels = [], [], []
        for yaw in REPROJECTION_YAWS:
            label = torch.as_tensor(orbit_label(yaw, 0.0)).reshape(1, 25).float()
            out = render(scene, label, resolution)
            images.append(out["rgb"][0] * 2 - 1)
            depths.append(torch.where(out["mask"], out["depth"], torch.full_like(out["depth"], SDF_FAR))[0])
            labels.append(label)
        images, depths, labels = torch.stack(images), torch.stack(depths), torch.cat(labels)
        error, ok = reprojection_errors(images[src], depths[src], labels[src], images[dst], depths[dst], labels[dst])
        error_sum, valid, pixels = error_sum + float(error.sum()), valid + int(ok.sum()), pixels + ok.numel()
    return error_sum / valid, valid / pixels


def test_the_ground_truth_bounds_the_valid_fraction_by_resolution():
    """The metric's one-pixel foreground erosion takes a thicker rim at 32 px than at 64: the heads
    themselves score below the goal's 0.4 at 32 and above it at 64 (8 heads here; 128 give the
    figures of GROUND_TRUTH_VALID), with a small error (3D-consistent by construction)."""
    for resolution, expected in GROUND_TRUTH_VALID.items():
        error, valid = ground_truth_reprojection(8, resolution)
        assert abs(valid - expected) < 0.02 and error < 2.0, (resolution, error, valid)
    assert GROUND_TRUTH_VALID[32] < DEFAULT_GOALS["reprojection/valid"] < GROUND_TRUTH_VALID[64]


def test_the_default_model_is_the_default_entry_and_records_its_figures():
    """``assets/default_generator.safetensors`` was made by ``DEFAULT``'s command (``python -m
    training.zoo build default``: 44 kimg, then 8 more at neural resolution 64 with a narrower
    sigmoid), and its metadata records its figures on 256 identities: issue 18's goals met
    (within10 0.71 and a mean angle of 9 degrees, against the density default's 0.009 and 96)."""
    import train
    from models import load_generator
    from renderers.model_source import DEFAULT_MODEL
    from training.loss import schedule_at
    from training.zoo import DEFAULT, output_path

    assert output_path(DEFAULT) == DEFAULT_MODEL and DEFAULT.method not in ZOO
    meta = read_safetensors_metadata(DEFAULT_MODEL)
    assert meta["default"] == "default" and meta["why"] == DEFAULT.why
    first, then = meta["command"].split(" && ")
    assert f"--cfg {DEFAULT.cfg} " in first and f"--kimg {DEFAULT.kimg:g} " in first and "--set" not in first
    assert f"--kimg {DEFAULT.total_kimg:g} " in then and all(f"--set {item}" in then for item in DEFAULT.then)
    assert float(meta["kimg"]) == DEFAULT.total_kimg
    commands = DEFAULT.fit_commands(Path("work"))
    configs = [train.resolve_train_config(train.build_parser().parse_args(c[1:])) for c in commands]
    assert [c.cfg for c in configs] == ["eg3d-sdf-tiny"] * 2
    # The second stretch: neural resolution 64 from 44 kimg on, a narrower sigmoid.
    assert configs[0].generator.density.alpha_max == 0.03 and configs[1].generator.density.alpha_max == 0.0125
    assert schedule_at(44_000, configs[1].loss, None).neural_rendering_resolution == 64
    assert schedule_at(44_000, configs[0].loss, None).neural_rendering_resolution == 32
    assert load_generator(DEFAULT_MODEL).neural_rendering_resolution == 64
    figures = json.loads(meta["eval"])
    assert figures["reprojection"] <= DEFAULT_GOALS["reprojection"]
    assert float(meta["swd"]) <= DEFAULT_GOALS["swd"]
    assert figures["reprojection/valid"] >= DEFAULT_GOALS["reprojection/valid"]
    assert figures["geometry/within10"] >= DEFAULT_GOALS["geometry/within10"] and figures["geometry"] <= 10
    assert float(meta["train_seconds"]) <= 2.5 * 3600


def test_the_default_models_geometry_is_a_surface():
    """Measured here, not read back: on 4 identities the density gradient and the depth map agree
    on the normals as on 256 (0.74 within 10 degrees, mean 8 degrees; 0.71 and 9 on 256; the
    earlier, density default scores 0.004 and 100 degrees on these 4), and the reprojection goals
    hold (RE 1.05, 44% valid)."""
    from models import load_generator
    from renderers.model_source import DEFAULT_MODEL
    from training.metrics import MetricOptions
    from training.view_metrics import geometry_metric, reprojection_metric

    G = load_generator(str(DEFAULT_MODEL), device="cpu")
    assert G.renderer.sdf
    options = MetricOptions(num_images=4, progress=False)
    figures = {**geometry_metric(G, None, options), **reprojection_metric(G, None, options)}
    assert figures["geometry/within10"] >= 0.65 and figures["geometry"] <= 10, figures
    assert figures["reprojection"] <= DEFAULT_GOALS["reprojection"], figures
    assert figures["reprojection/valid"] >= DEFAULT_GOALS["reprojection/valid"], figures
