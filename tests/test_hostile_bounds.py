"""Bounded work and memory whatever a checkpoint claims: pickles that would make the unpickler or the
readers do exponential work or allocate gigabytes, and configs that ask for huge models, are refused
in well under a second with one line naming the file (issue: hostile and broken input)."""

from __future__ import annotations

import collections
import json
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from models import load_generator
from models.eg3d_pickle import load_eg3d_pickle
from models.errors import CheckpointError
from tests.eg3d_pickle_writer import Call, GlobalRef, dump

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
MEMO_BOMB = b"\x80\x02]r\xff\xff\xff\x0f."
"""An empty list stored at memo index 2**28 - 1: 9 bytes that make the C unpickler allocate 4 GB."""
DEPTH = 60
"""Levels of sharing in the billion-laughs files: 2**60 paths through a file of a few kB."""


def _fails_fast(call, path: Path, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as info:
        call(path)
    assert time.perf_counter() - start < 10  # unbounded, these run for minutes and take gigabytes
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))


def test_memo_bomb_pickle_is_refused_before_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "memo.pkl"
    path.write_bytes(MEMO_BOMB)
    _fails_fast(load_generator, path, "memo entry 268435455")


def test_memo_bomb_in_a_torch_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memo.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", MEMO_BOMB)
        archive.writestr("archive/version", "3\n")
    _fails_fast(load_generator, path, "memo entry 268435455")


def test_deep_marks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "marks.pkl"
    path.write_bytes(b"\x80\x02" + b"(" * 5000 + b"t" * 5000 + b".")
    _fails_fast(load_generator, path, "nests more than")


class _Module:
    """Pickled as ``torch.nn.modules.container.Sequential`` (on the allow-list), never a real module."""


_RENAMES = {id(_Module): ("torch.nn.modules.container", "Sequential")}


def _module(parameters: dict, children: dict) -> _Module:
    module = _Module()
    module.__dict__.update(training=False, _parameters=collections.OrderedDict(parameters), _buffers={},
                           _non_persistent_buffers_set=set(), _modules=collections.OrderedDict(children))
    return module


def _laughs() -> list:
    """A list whose two items are the same list, DEPTH levels down: 2**DEPTH leaves when written out."""
    value: list = [1]
    for _ in range(DEPTH):
        value = [value, value]
    return value


def _snapshot(path: Path, place: str) -> Path:
    """An EG3D-layout snapshot whose G_ema holds the sharing in ``place``."""
    root_children = {}
    state = {"training": False, "_parameters": {}, "_buffers": {}, "_non_persistent_buffers_set": set(),
             "_init_args": (), "_init_kwargs": {"z_dim": 8}}
    if place == "init_kwargs":
        state["_init_kwargs"] = {"z_dim": 8, "mapping_kwargs": {"layers": _laughs()}}
    elif place == "attributes":
        state["rendering_kwargs"] = {"box_warp": 1, "deep": _laughs()}
    else:
        child = _module({"w": torch.nn.Parameter(torch.zeros(1))}, {})
        for _ in range(DEPTH):
            child = _module({}, {"a": child, "b": child})
        root_children["backbone"] = child
    state["_modules"] = collections.OrderedDict(root_children)
    meta = dict(type="class", version=6, module_src="", class_name="TriPlaneGenerator", state=state)
    record = Call(GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))
    dump({"G_ema": record}, path, renames=_RENAMES)
    assert path.stat().st_size < 20_000
    return path


@pytest.mark.parametrize("place", ["init_kwargs", "attributes", "submodules"])
def test_billion_laughs_are_refused(tmp_path: Path, place: str) -> None:
    path = _snapshot(tmp_path / f"laughs-{place}.pkl", place)
    if place == "attributes":  # an attribute that is not plain data is not configuration: it is dropped
        _, _, _, attributes = load_eg3d_pickle(path)
        assert "rendering_kwargs" not in attributes
        return
    match = "init kwargs hold non-plain data" if place == "init_kwargs" else "more than 100000 submodules"
    _fails_fast(load_eg3d_pickle, path, match)
    _fails_fast(load_generator, path, match)


def _with_config(tmp_path: Path, name: str, change) -> Path:
    """The legacy volumegan-tiny checkpoint with its config changed by ``change(config_dict)``."""
    source = LEGACY / "volumegan-tiny.safetensors"
    with safe_open(str(source), "pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["config"])
    replaced = change(config)
    meta["config"] = replaced if isinstance(replaced, str) else json.dumps(config)
    path = tmp_path / f"{name}.safetensors"
    save_file(load_file(str(source)), str(path), metadata=meta)
    return path


@pytest.mark.parametrize(("name", "change", "match"), [
    ("z_dim", lambda c: c["mapping"].update(z_dim=3_000_000), r"mapping.z_dim is 3000000: out of range"),
    ("z_dim_1e9", lambda c: c["mapping"].update(z_dim=10**9), r"mapping.z_dim is 1000000000"),
    ("layers", lambda c: c["mapping"].update(layers=10**6), r"mapping.layers is 1000000"),
    ("layers_60000", lambda c: c["mapping"].update(layers=60_000), r"more than \d+ parameters, buffers and modules"),
    ("negative", lambda c: c["mapping"].update(w_dim=-5), r"w_dim is -5"),
    ("nan", lambda c: c["points"].update(near=float("nan")), r"near is nan"),
    ("string", lambda c: c.update(img_resolution="64"), r"img_resolution must be int, not str"),
    ("null", lambda c: c.update(neural_rendering_resolution=None), r"neural_rendering_resolution must be int"),
    ("huge_render", lambda c: c.update(neural_rendering_resolution=3_000_000), r"out of range"),
    ("samples", lambda c: c["points"].update(num_coarse=10**7), r"num_coarse is 10000000"),
    ("renderer_list", lambda c: c.update(renderer=[1]), r"invalid model config"),
    ("nested", lambda c: "[" * 100_000 + "]" * 100_000, r"RecursionError"),
    ("wider", lambda c: c["mapping"].update(hidden=64), r"shape mismatch \(file != config\)"),
])
def test_config_is_checked_before_building(tmp_path: Path, name: str, change, match: str) -> None:
    _fails_fast(load_generator, _with_config(tmp_path, name, change), match)


def test_build_cannot_replace_a_checked_record(tmp_path: Path) -> None:
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "TriPlaneGenerator", "state": {}}
    record = Call(GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))
    path = tmp_path / "build.pkl"
    dump({"G_ema": _Built(record, {"state": 5})}, path)
    _fails_fast(load_generator, path, "BUILD opcode tries to replace")


class _Built:
    """Pickles as ``obj`` followed by a BUILD opcode with ``state``."""

    def __init__(self, obj: Call, state: dict):
        self.obj, self.state = obj, state

    def __reduce__(self):
        return self.obj.func, self.obj.args, self.state
