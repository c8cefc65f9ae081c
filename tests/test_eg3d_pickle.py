"""Tests for models.eg3d_pickle: inert reading of EG3D network pickles, and refusal of hostile ones."""

from __future__ import annotations

import collections
import io
import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.eg3d_pickle import (
    EasyDict,
    InertObject,
    PersistentRecord,
    load_eg3d_pickle,
    read_network_pickle,
)
from models.errors import CheckpointError, UnsafePickleError
from tests.eg3d_pickle_writer import Call, GlobalRef, dump, write_eg3d_pickle

# --- a tiny generator whose tree and tensor names follow EG3D's TriPlaneGenerator --------------


class FullyConnectedLayer(torch.nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features))
        self.bias = torch.nn.Parameter(torch.randn(out_features))
        self.activation = "linear"
        self.weight_gain = 1 / np.sqrt(in_features)


class MappingNetwork(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc0 = FullyConnectedLayer(8, 8)
        self.register_buffer("w_avg", torch.randn(8))
        self.w_avg_beta = 0.998


class SynthesisNetwork(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b4_conv1_weight = torch.nn.Parameter(torch.randn(4, 4, 3, 3).half())  # an fp16 layer
        self.register_parameter("b4_conv1_bias", None)  # None entries are skipped by state_dict
        self.register_buffer("b4_conv1_noise_const", torch.randn(4, 4))
        self.register_buffer("b4_resample_filter", torch.rand(4, 4).half())
        self.register_buffer("b4_cache", torch.ones(2), persistent=False)
        self.register_buffer("b4_unused", None)


class Backbone(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mapping = MappingNetwork()
        self.synthesis = SynthesisNetwork()


class SuperResolution(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block0_torgb_weight = torch.nn.Parameter(torch.randn(3, 4).half())
        self.register_buffer("block0_resample_filter", torch.rand(4, 4))
        self.input_resolution = 64


class Decoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(FullyConnectedLayer(4, 8), torch.nn.Softplus(), FullyConnectedLayer(8, 4))
        # A Parameter with Python attributes pickles through _rebuild_parameter_with_state.
        self.net[2].bias.lr_note = "kept by torch, dropped by the reader"


class RayMarcher(torch.nn.Module):
    pass


class Renderer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ray_marcher = RayMarcher()
        self.plane_axes = torch.eye(3)  # a plain tensor attribute, not in the state dict


class RaySampler(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ray_origins_h = None


class Generator(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = 512, 25, 512
        self.img_resolution, self.img_channels = 512, 3
        self.renderer = Renderer()
        self.ray_sampler = RaySampler()
        self.backbone = Backbone()
        self.superresolution = SuperResolution()
        self.decoder = Decoder()
        self.neural_rendering_resolution = 64
        self.rendering_kwargs = {"box_warp": 1, "avg_camera_pivot": [0, 0, 0.2], "depth_resolution": 48}
        self.plane_dtype = torch.float16  # pickles as the global torch.float16


PERSISTENT = {
    "": "TriPlaneGenerator",
    "backbone": "StyleGAN2Backbone",
    "backbone.mapping": "MappingNetwork",
    "backbone.mapping.fc0": "FullyConnectedLayer",
    "backbone.synthesis": "SynthesisNetwork",
    "superresolution": "SuperresolutionHybrid8XDC",
    "decoder.net.0": "FullyConnectedLayer",
    "decoder.net.2": "FullyConnectedLayer",
}
PLAIN = {
    "decoder": "training.triplane.OSGDecoder",
    "renderer": "training.volumetric_rendering.renderer.ImportanceRenderer",
    "renderer.ray_marcher": "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "ray_sampler": "training.volumetric_rendering.ray_sampler.RaySampler",
}
INIT_KWARGS = {
    "z_dim": 512,
    "c_dim": 25,
    "w_dim": 512,
    "img_resolution": 512,
    "img_channels": 3,
    "sr_num_fp16_res": 4,
    "mapping_kwargs": {"num_layers": 2},
    "rendering_kwargs": {"box_warp": 1, "avg_camera_pivot": [0, 0, 0.2], "density_reg": np.float64(0.25)},
    "sr_kwargs": {"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
    "conv_clamp": None,
    "truncation_psi": np.float32(0.5),
    "num_steps": np.int64(3),
}
NUMPY_NEW, NUMPY_OLD = "numpy._core.multiarray", "numpy.core.multiarray"


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator()


def _write(path: Path, G: torch.nn.Module, **kwargs: Any) -> Path:
    write_eg3d_pickle(path, G, INIT_KWARGS, PERSISTENT, PLAIN, **kwargs)
    return path


def _assert_one_line_error(exc: CheckpointError, path: Path) -> None:
    message = str(exc)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protocol, numpy_path",
    [(0, NUMPY_NEW), (1, NUMPY_OLD), (2, NUMPY_NEW), (2, NUMPY_OLD), (3, NUMPY_OLD),
     (4, NUMPY_NEW), (4, NUMPY_OLD), (5, NUMPY_NEW)],
)
def test_round_trip_state_dict_and_kwargs(tmp_path: Path, generator: Generator, protocol: int, numpy_path: str) -> None:
    path = _write(tmp_path / "snap.pkl", generator, protocol=protocol, numpy_path=numpy_path)
    # The numpy scalars really were written under the requested module path.
    raw = path.read_bytes()
    assert numpy_path.encode() in raw
    assert (NUMPY_OLD if numpy_path == NUMPY_NEW else NUMPY_NEW).encode() not in raw

    class_name, init_kwargs, state_dict, attributes = load_eg3d_pickle(path)

    assert class_name == "TriPlaneGenerator"
    expected = generator.state_dict()
    assert list(state_dict) == list(expected)
    assert "decoder.net.0.weight" in state_dict and "backbone.mapping.w_avg" in state_dict
    assert "backbone.synthesis.b4_cache" not in state_dict  # non-persistent buffer
    for name, tensor in expected.items():
        got = state_dict[name]
        assert type(got) is torch.Tensor, name  # plain tensors, not Parameters
        assert got.dtype == tensor.dtype and got.shape == tensor.shape, name
        assert torch.equal(got, tensor), name
    assert {t.dtype for t in state_dict.values()} == {torch.float32, torch.float16}

    assert init_kwargs == {
        **INIT_KWARGS,
        "rendering_kwargs": {"box_warp": 1, "avg_camera_pivot": [0, 0, 0.2], "density_reg": 0.25},
        "truncation_psi": 0.5,
        "num_steps": 3,
    }
    assert type(init_kwargs) is dict and type(init_kwargs["rendering_kwargs"]) is dict
    assert type(init_kwargs["rendering_kwargs"]["density_reg"]) is float
    assert type(init_kwargs["truncation_psi"]) is float and type(init_kwargs["num_steps"]) is int

    assert attributes["rendering_kwargs"] == generator.rendering_kwargs
    assert attributes["neural_rendering_resolution"] == 64
    assert (attributes["z_dim"], attributes["c_dim"], attributes["w_dim"]) == (512, 25, 512)
    assert attributes["img_resolution"] == 512
    assert attributes["plane_dtype"] == "torch.float16"
    assert "training" not in attributes and not any(k.startswith("_") for k in attributes)


def test_read_network_pickle_returns_inert_records(tmp_path: Path, generator: Generator) -> None:
    src = "# module source of TriPlaneGenerator\nclass TriPlaneGenerator: pass\n"
    path = _write(tmp_path / "snap.pkl", generator, module_src=src)
    data = read_network_pickle(path)

    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None
    for key, name in (("G", "TriPlaneGenerator"), ("G_ema", "TriPlaneGenerator"), ("D", "DualDiscriminator")):
        record = data[key]
        assert isinstance(record, PersistentRecord)
        assert (record.class_name, record.version) == (name, 6)
        assert record.module_src_len == len(src)
        assert src not in repr(record)  # the source itself is not kept anywhere
    g = data["G_ema"]
    decoder = g.state["_modules"]["decoder"]
    assert isinstance(decoder, InertObject) and decoder.qualified_name == "training.triplane.OSGDecoder"
    net = decoder.dict_state["_modules"]["net"]
    assert net.qualified_name == "torch.nn.modules.container.Sequential"
    assert isinstance(net.dict_state["_modules"]["0"], PersistentRecord)
    assert isinstance(g.state["_init_kwargs"], EasyDict)
    assert g.state["_init_kwargs"].mapping_kwargs == {"num_layers": 2}
    tsk = data["training_set_kwargs"]
    assert isinstance(tsk, EasyDict) and tsk.resolution == 512


def test_numeric_numpy_array_attribute(tmp_path: Path, generator: Generator) -> None:
    table = np.arange(6, dtype=np.float32).reshape(2, 3)
    for protocol in (2, 4):
        path = _write(tmp_path / f"arr{protocol}.pkl", generator, attributes={"table": table}, protocol=protocol)
        assert load_eg3d_pickle(path)[3]["table"] == table.tolist()


def test_extra_plain_classes_opt_in(tmp_path: Path) -> None:
    G = torch.nn.Module()
    G.head = torch.nn.Linear(2, 3)
    path = tmp_path / "linear.pkl"
    write_eg3d_pickle(path, G, {}, {"": "TriPlaneGenerator"}, {})
    with pytest.raises(UnsafePickleError, match=r"'torch\.nn\.modules\.linear\.Linear'") as info:
        load_eg3d_pickle(path)
    _assert_one_line_error(info.value, path)
    _, _, state_dict, _ = load_eg3d_pickle(path, extra_plain_classes=["torch.nn.modules.linear.Linear"])
    assert list(state_dict) == ["head.weight", "head.bias"]
    assert torch.equal(state_dict["head.weight"], G.head.weight)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_tensors_from_the_stock_pickler(tmp_path: Path, protocol: int) -> None:
    # torch's own reduce output, written by the C pickler: fp16, Parameters, views with offsets.
    base = torch.arange(12, dtype=torch.float16).reshape(3, 4)
    data = {
        "fp16": base,
        "param": torch.nn.Parameter(torch.randn(2, 3)),
        "view": base[1:, 1::2],
        "transposed": base.t(),
        "int64": torch.arange(5),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "od": collections.OrderedDict(a=1),
        "names": {"x", "y"},
    }
    path = tmp_path / "stock.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    got = read_network_pickle(path)
    for key in ("fp16", "param", "view", "transposed", "int64", "bool", "scalar"):
        assert type(got[key]) is torch.Tensor and got[key].dtype == data[key].dtype, key
        assert torch.equal(got[key], data[key]), key
    assert got["view"].stride() == data["view"].stride()
    assert got["od"] == data["od"] and got["names"] == data["names"]


# --- hostile pickles ---------------------------------------------------------------------


def _marker_command(marker: Path) -> dict[str, tuple[str, str, tuple]]:
    """Each hostile global with arguments that would create ``marker`` if called."""
    shell = f"touch '{marker}'"
    return {
        "os.system": ("os", "system", (shell,)),
        "posix.system": ("posix", "system", (shell,)),
        "builtins.eval": ("builtins", "eval", (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.Popen": ("subprocess", "Popen", (["touch", str(marker)],)),
    }


def test_module_src_is_never_executed(tmp_path: Path, generator: Generator) -> None:
    marker = tmp_path / "marker"
    src = f"open({str(marker)!r}, 'w').close()\nclass TriPlaneGenerator: pass\n"
    path = _write(tmp_path / "snap.pkl", generator, module_src=src)
    class_name, _, state_dict, _ = load_eg3d_pickle(path)
    assert class_name == "TriPlaneGenerator" and state_dict
    assert not marker.exists()


def test_hostile_payload_is_live_with_plain_pickle(tmp_path: Path) -> None:
    # Control: the eval payload used below really does run under an ordinary unpickler.
    marker = tmp_path / "marker"
    module, name, args = _marker_command(marker)["builtins.eval"]
    dump(Call(GlobalRef(module, name), args), tmp_path / "evil.pkl")
    pickle.loads((tmp_path / "evil.pkl").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("global_name", ["os.system", "posix.system", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("place", ["top_level", "root_attribute", "init_kwargs", "plain_module_state"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_hostile_global_is_refused(tmp_path: Path, global_name: str, place: str, protocol: int) -> None:
    marker = tmp_path / "marker"
    module, name, args = _marker_command(marker)[global_name]
    evil = Call(GlobalRef(module, name), args)
    torch.manual_seed(0)
    G = Generator()
    kwargs: dict[str, Any] = {"protocol": protocol}
    if place == "top_level":
        kwargs["extra_top_level"] = {"evil": evil}
    elif place == "root_attribute":
        kwargs["attributes"] = {"rendering_kwargs": {"box_warp": 1, "hook": evil}}
    elif place == "plain_module_state":
        G.renderer.ray_marcher.evil = evil
    path = tmp_path / "evil.pkl"
    init_kwargs = {**INIT_KWARGS, "mapping_kwargs": {"evil": evil}} if place == "init_kwargs" else INIT_KWARGS
    write_eg3d_pickle(path, G, init_kwargs, PERSISTENT, PLAIN, **kwargs)

    for reader in (read_network_pickle, load_eg3d_pickle):
        with pytest.raises(UnsafePickleError, match=f"refusing global '{global_name}'") as info:
            reader(path)
        _assert_one_line_error(info.value, path)
    assert not marker.exists()


def test_classic_protocol0_exploit_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "classic.pkl"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match="'os.system'") as info:
        read_network_pickle(path)
    _assert_one_line_error(info.value, path)
    assert not marker.exists()


class _EvalOnLoad:
    """Pickles as builtins.eval(code): a payload for a torch.save archive."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple]:
        return eval, (self.code,)


def _storage_call(payload: bytes) -> Call:
    """A tensor whose storage is ``torch.storage._load_from_bytes(payload)``, as torch writes it."""
    storage = Call(GlobalRef("torch.storage", "_load_from_bytes"), (payload,))
    return Call(
        GlobalRef("torch._utils", "_rebuild_tensor_v2"),
        (storage, 0, (1,), (1,), False, collections.OrderedDict()),
    )


@pytest.mark.parametrize("zip_format", [True, False])
def test_hostile_storage_payload_is_refused(tmp_path: Path, generator: Generator, zip_format: bool) -> None:
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    torch.save(_EvalOnLoad(f"open({str(marker)!r}, 'w').close()"), buf, _use_new_zipfile_serialization=zip_format)
    path = _write(tmp_path / "evil.pkl", generator, attributes={"plane_axes": _storage_call(buf.getvalue())})
    with pytest.raises(UnsafePickleError, match=r"weights_only=True") as info:
        load_eg3d_pickle(path)
    _assert_one_line_error(info.value, path)
    assert not marker.exists()
    # Control: torch's own loader, as torch.storage._load_from_bytes calls it, would run it.
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    assert marker.exists()


def test_storage_payload_that_is_not_a_storage(tmp_path: Path, generator: Generator) -> None:
    buf = io.BytesIO()
    torch.save(torch.zeros(1), buf)
    path = _write(tmp_path / "odd.pkl", generator, attributes={"plane_axes": _storage_call(buf.getvalue())})
    with pytest.raises(CheckpointError, match="holds a Tensor") as info:
        load_eg3d_pickle(path)
    _assert_one_line_error(info.value, path)


def test_object_dtype_is_refused(tmp_path: Path, generator: Generator) -> None:
    path = _write(tmp_path / "obj.pkl", generator, attributes={"table": np.array([None, 1], dtype=object)})
    with pytest.raises(UnsafePickleError, match="numpy dtype 'O8'") as info:
        load_eg3d_pickle(path)
    _assert_one_line_error(info.value, path)


def test_persistent_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"\x80\x04\x8c\x03abc\x94Q.")  # SHORT_BINUNICODE 'abc', BINPERSID
    with pytest.raises(UnsafePickleError, match="persistent id") as info:
        read_network_pickle(path)
    _assert_one_line_error(info.value, path)


# --- files that are not network pickles --------------------------------------------------


def _bad_files(good: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, expected message fragment)."""
    return {
        "truncated": (good[: len(good) // 2], "truncated"),
        "truncated_header": (good[:3], "truncated"),
        "random": (random.Random(0).randbytes(4096), ""),
        "json": (json.dumps({"G_ema": [1, 2]}).encode(), "not a valid pickle"),
        "list": (pickle.dumps([1, 2, 3]), "top-level object is a list"),
        "no_g_ema": (pickle.dumps({"G": None, "D": None}), "no 'G_ema' network"),
        "g_ema_not_network": (pickle.dumps({"G_ema": {"weight": 1}}), "'G_ema' is a dict, not a persistent network"),
        "empty": (b"", "file is empty"),
        "torch_save_zip": (_torch_save_bytes(), "zip archive"),
    }


def _torch_save_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buf)
    return buf.getvalue()


def test_bad_files_raise_checkpoint_error(tmp_path: Path, generator: Generator) -> None:
    good = _write(tmp_path / "good.pkl", generator).read_bytes()
    for name, (content, fragment) in _bad_files(good).items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            load_eg3d_pickle(path)
        _assert_one_line_error(info.value, path)
        assert fragment in str(info.value), (name, str(info.value))


def test_missing_file_raises_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.pkl"
    with pytest.raises(CheckpointError, match="cannot open file") as info:
        read_network_pickle(path)
    _assert_one_line_error(info.value, path)
