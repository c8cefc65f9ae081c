"""Official-layout EG3D pickles of the reference generator load, render the fixture, and convert."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from models import CheckpointError, UnsafePickleError, load_generator
from models.pipeline import PipelineGenerator
from tests.conftest import REPO_ROOT
from tests.eg3d_pickle_writer import Call, GlobalRef, official_layout_copy, write_eg3d_pickle
from tests.test_eg3d_reference import MAX_ABS_ERR, reproduce_case


@pytest.mark.parametrize("case", [0, 1, 2])
def test_official_pickle_renders_the_fixture(official_pickle, ref128_cases, case):
    G = load_generator(official_pickle)
    out = reproduce_case(G, ref128_cases, case)
    for key in ("ws", "image", "image_raw", "image_depth"):
        err = (out[key] - torch.from_numpy(ref128_cases[f"{case}_{key}"])).abs().max().item()
        assert err <= MAX_ABS_ERR, f"case {case} {key}: {err:.3g}"


def test_fp16_layers_conv_clamp_and_finetuned_resolution(tmp_path, ref128_generator, ref128_init_kwargs, ref128_cases):
    """Real-world variants: fp16 layer counts, conv_clamp and neural resolution 128 after fine-tuning."""
    kwargs = dict(ref128_init_kwargs, num_fp16_res=4, conv_clamp=256, sr_num_fp16_res=4)
    tree, persistent, plain = official_layout_copy(ref128_generator)
    tree.neural_rendering_resolution = 128
    path = tmp_path / "fp16.pkl"
    write_eg3d_pickle(path, tree, kwargs, persistent, plain, protocol=2, numpy_path="numpy.core.multiarray")
    G = load_generator(path)
    embedder, upsampler = G.config.embedder, G.config.upsampler
    assert (embedder.num_fp16_res, embedder.conv_clamp, upsampler.num_fp16_res) == (4, 256, 4)
    assert G.neural_rendering_resolution == 128
    assert G.upsampler.block0.use_fp16 and G.embedder.backbone.b256.use_fp16
    # On the CPU fp16 layers run in fp32 and the clamp (256) is far above these activations,
    # so the fixture images are reproduced exactly as without the options.
    z = torch.from_numpy(ref128_cases["2_z"])
    c = torch.from_numpy(ref128_cases["2_c"])
    with torch.no_grad():
        out = G.synthesis(G.mapping(z, c, truncation_psi=0.5), c, neural_rendering_resolution=64)
    err = (out["image"] - torch.from_numpy(ref128_cases["2_image"])).abs().max().item()
    assert err <= MAX_ABS_ERR


def test_module_src_is_never_executed(tmp_path, ref128_generator, ref128_init_kwargs):
    marker = tmp_path / "pwned"
    src = f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w').write('ran')\n"
    tree, persistent, plain = official_layout_copy(ref128_generator)
    path = tmp_path / "evil-src.pkl"
    write_eg3d_pickle(path, tree, ref128_init_kwargs, persistent, plain, module_src=src)
    G = load_generator(path)
    assert isinstance(G, PipelineGenerator) and G.config.preset == "eg3d"
    assert not marker.exists()


def test_hostile_global_in_network_is_refused(tmp_path, ref128_generator, ref128_init_kwargs):
    marker = tmp_path / "pwned"
    tree, persistent, plain = official_layout_copy(ref128_generator)
    tree.backbone.synthesis.b4.__dict__["payload"] = Call(GlobalRef("os", "system"), (f"touch {marker}",))
    path = tmp_path / "evil-global.pkl"
    write_eg3d_pickle(path, tree, ref128_init_kwargs, persistent, plain)
    with pytest.raises(UnsafePickleError) as e:
        load_generator(path)
    assert "os.system" in str(e.value) and str(path) in str(e.value)
    assert not marker.exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), *args], capture_output=True, text=True,
                          timeout=300)


def test_convert_command(tmp_path, official_pickle, ref128_cases):
    out_path = tmp_path / "converted.safetensors"
    result = run_cli("convert", str(official_pickle), str(out_path))
    assert result.returncode == 0, result.stderr
    assert out_path.exists() and "wrote" in result.stdout
    G = load_generator(out_path)
    out = reproduce_case(G, ref128_cases, 0)
    err = (out["image"] - torch.from_numpy(ref128_cases["0_image"])).abs().max().item()
    assert err <= MAX_ABS_ERR

    again = run_cli("convert", str(official_pickle), str(out_path))
    assert again.returncode != 0 and "exists" in again.stderr


def test_convert_reports_bad_input_in_one_line(tmp_path, ref128_generator, ref128_init_kwargs):
    truncated = tmp_path / "truncated.pkl"
    tree, persistent, plain = official_layout_copy(ref128_generator)
    write_eg3d_pickle(truncated, tree, ref128_init_kwargs, persistent, plain)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    result = run_cli("convert", str(truncated), str(tmp_path / "x.safetensors"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {truncated}:")
    assert not (tmp_path / "x.safetensors").exists()


def test_wrong_network_class_is_named(tmp_path, ref128_generator, ref128_init_kwargs):
    tree, persistent, plain = official_layout_copy(ref128_generator)
    persistent[""] = "Generator"
    path = tmp_path / "stylegan2.pkl"
    write_eg3d_pickle(path, tree, ref128_init_kwargs, persistent, plain)
    with pytest.raises(CheckpointError, match="G_ema is a Generator, not an EG3D TriPlaneGenerator"):
        load_generator(path)


def test_unsupported_option_is_named(tmp_path, ref128_generator, ref128_init_kwargs):
    tree, persistent, plain = official_layout_copy(ref128_generator)
    path = tmp_path / "odd.pkl"
    write_eg3d_pickle(path, tree, dict(ref128_init_kwargs, architecture="resnet"), persistent, plain)
    with pytest.raises(CheckpointError, match="unsupported EG3D .*architecture"):
        load_generator(path)
