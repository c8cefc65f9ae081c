"""Test helper: write pickles with the byte layout of official EG3D ``network-snapshot-*.pkl`` files.

Nothing of EG3D is needed. A pure-Python pickler whose ``save_global`` can write any global name
puts the real names (``torch_utils.persistence._reconstruct_persistent_obj``,
``dnnlib.util.EasyDict``, ``training.triplane.OSGDecoder``, ...) into the stream, so no fake
modules have to be installed in ``sys.modules``. :class:`GlobalRef` and :class:`Call` let tests
hand-assemble hostile pickles (``os.system``, ``builtins.eval``, ...) the same way.
:func:`official_layout_copy` turns our EG3D generator into the object tree an official pickle holds.
"""

from __future__ import annotations

import _compat_pickle
import collections
import copy
import io
import os
import pickle
from typing import Any

import numpy as np
import torch
from torch import nn

from models.decoders import OSGDecoder
from models.mappings import StyleGAN2Mapping
from models.methods.eg3d import to_eg3d
from models.pipeline import PipelineGenerator
from models.stylegan2 import (
    FullyConnectedLayer,
    MappingNetwork,
    StyleGAN2Generator,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
)
from models.superresolution import Superresolution
from ops.triplane import plane_axes

DEFAULT_MODULE_SRC = '"""Stand-in for the EG3D module source that persistence stores."""\n'


class GlobalRef:
    """Pickles as the global ``module.name`` without importing or resolving it."""

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Callable only so that pickle accepts it as the function of a REDUCE.
        raise RuntimeError("GlobalRef is a pickling stand-in and cannot be called")


class Call:
    """Pickles as ``REDUCE(func, args)``: a call the unpickler would make."""

    def __init__(self, func: Any, args: tuple):
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple]:
        return self.func, self.args

    def __deepcopy__(self, memo: dict) -> Call:
        # copy.deepcopy would otherwise make the call through __reduce__.
        return self


class _FakeEasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` (NEWOBJ + SETITEMS, like the real one)."""


class _Pickler(pickle._Pickler):  # the Python pickler, because its save_global can be overridden
    def __init__(self, file: io.BufferedIOBase, protocol: int, renames: dict[int, tuple[str, str]]):
        super().__init__(file, protocol)
        self._renames = renames

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, GlobalRef):
            return obj.name  # a string makes pickle call save_global(obj, name)
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        target = (obj.module, obj.name) if isinstance(obj, GlobalRef) else self._renames.get(id(obj))
        if target is None:
            super().save_global(obj, name)
            return
        module, qualname = target
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            if self.proto < 3:  # same Python 2 renaming the stock pickler does
                module = _compat_pickle.REVERSE_IMPORT_MAPPING.get(module, module)
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)


def dump(obj: Any, path: str | os.PathLike, protocol: int = 4, renames: dict[int, tuple[str, str]] | None = None) -> None:
    """Pickle ``obj`` to ``path``; ``renames`` maps ``id(global object)`` to the (module, name) to write."""
    buf = io.BytesIO()
    _Pickler(buf, protocol, renames or {}).dump(obj)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def _easydict(value: Any) -> Any:
    """Deep copy of ``value`` with every dict turned into an EasyDict, as EG3D's configs are."""
    if isinstance(value, dict):
        return _FakeEasyDict({k: _easydict(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_easydict(v) for v in value]
    return value


class _Mirror:
    """Builds a picklable copy of a module tree in which selected modules look like EG3D's."""

    def __init__(self, persistent: dict[str, str], plain: dict[str, str], module_src: str,
                 renames: dict[int, tuple[str, str]]):
        self.persistent = persistent
        self.plain = plain
        self.module_src = module_src
        self.renames = renames
        self.plain_types: dict[str, type] = {}
        self.reconstruct = GlobalRef("torch_utils.persistence", "_reconstruct_persistent_obj")

    def plain_type(self, qualified_name: str) -> type:
        cls = self.plain_types.get(qualified_name)
        if cls is None:
            module, _, name = qualified_name.rpartition(".")
            cls = type(name, (), {})
            self.plain_types[qualified_name] = cls
            self.renames[id(cls)] = (module, name)
        return cls

    def persistent_obj(self, class_name: str, state: dict[str, Any]) -> Call:
        """What persistence.__reduce__ emits: _reconstruct_persistent_obj(meta)."""
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=class_name, state=state)
        return Call(self.reconstruct, (meta,))

    def __call__(self, module: torch.nn.Module, path: str, root_extra: dict[str, Any]) -> Any:
        state = dict(module.__getstate__())
        state["_modules"] = collections.OrderedDict(
            (name, None if child is None else self(child, f"{path}.{name}" if path else name, {}))
            for name, child in module._modules.items()
        )
        if path in self.persistent:
            state.update(root_extra)
            state.setdefault("_init_args", ())
            state.setdefault("_init_kwargs", {})
            return self.persistent_obj(self.persistent[path], state)
        if path in self.plain:
            cls = self.plain_type(self.plain[path])
        else:
            cls = type(module)  # pickles under its real torch name
        clone = cls.__new__(cls)
        clone.__dict__.update(state)
        return clone


def write_eg3d_pickle(
    path: str | os.PathLike,
    G: torch.nn.Module,
    init_kwargs: dict,
    persistent_classes: dict[str, str],
    plain_classes: dict[str, str],
    *,
    attributes: dict | None = None,
    protocol: int = 4,
    numpy_path: str = "numpy._core.multiarray",
    module_src: str = DEFAULT_MODULE_SRC,
    extra_top_level: dict[str, Any] | None = None,
) -> None:
    """Write ``G`` (as both ``G`` and ``G_ema``) in the layout of an EG3D network snapshot.

    ``persistent_classes`` maps module paths ('' is the root) to persistent class names,
    ``plain_classes`` maps module paths to qualified names of ordinary classes; other submodules
    keep their real torch classes. The root's state gets ``init_kwargs`` (as an EasyDict) and
    ``attributes``. ``numpy_path`` is the module written for numpy's ``scalar``/``_reconstruct``.
    ``extra_top_level`` adds entries to the top-level dict (for hostile-pickle tests).
    """
    if "" not in persistent_classes:
        raise ValueError("the root module ('') must be persistent")
    renames: dict[int, tuple[str, str]] = {id(_FakeEasyDict): ("dnnlib.util", "EasyDict")}
    # Whatever this numpy version calls them, write the functions under the requested module.
    renames[id(np.float64(0).__reduce__()[0])] = (numpy_path, "scalar")
    renames[id(np.zeros(1).__reduce__()[0])] = (numpy_path, "_reconstruct")
    mirror = _Mirror(persistent_classes, plain_classes, module_src, renames)

    def root_extra() -> dict[str, Any]:
        # Fresh per network: G and G_ema are separate deep copies in real snapshots.
        return dict(attributes or {}, _init_args=(), _init_kwargs=_easydict(init_kwargs))

    D = torch.nn.Module()
    D.register_parameter("b4_out_bias", torch.nn.Parameter(torch.zeros(1)))
    D_state = dict(D.__getstate__(), _init_args=(), _init_kwargs={"c_dim": 25})

    snapshot = {
        "G": mirror(G, "", root_extra()),
        "D": mirror.persistent_obj("DualDiscriminator", D_state),
        "G_ema": mirror(copy.deepcopy(G), "", root_extra()),
        "augment_pipe": None,
        "training_set_kwargs": _FakeEasyDict(path="ffhq.zip", resolution=512, use_labels=True, xflip=False),
    }
    snapshot.update(extra_top_level or {})
    dump(snapshot, path, protocol, renames)


# --- our generator in the official object tree -------------------------------------------------

OFFICIAL_PLAIN = {
    "renderer": "training.volumetric_rendering.renderer.ImportanceRenderer",
    "renderer.ray_marcher": "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "ray_sampler": "training.volumetric_rendering.ray_sampler.RaySampler",
}
"""EG3D's parameter-free helpers, pickled as plain (not persistent) objects, by attribute path."""


def official_class_name(module: nn.Module) -> str | None:
    """The persistent EG3D class an official pickle would record for our module, if any."""
    if isinstance(module, SynthesisBlock):
        return "SynthesisBlock" if module.upsample else "SynthesisBlockNoUp"
    if isinstance(module, Superresolution):
        return module.module_name
    names = {
        StyleGAN2Generator: "Generator", MappingNetwork: "MappingNetwork", StyleGAN2Mapping: "MappingNetwork",
        SynthesisNetwork: "SynthesisNetwork", SynthesisLayer: "SynthesisLayer", ToRGBLayer: "ToRGBLayer",
        FullyConnectedLayer: "FullyConnectedLayer",
    }
    return names.get(type(module))


def official_layout_copy(G: PipelineGenerator) -> tuple[nn.Module, dict[str, str], dict[str, str]]:
    """A copy of an EG3D-preset G shaped like the official object tree (``TriPlaneGenerator``:
    backbone with mapping and synthesis, superresolution, decoder), our config objects removed,
    EG3D's parameter-free renderer/ray-sampler children added, and the class-name maps for the writer."""
    source = copy.deepcopy(G)
    config = to_eg3d(G.current_config())
    backbone = StyleGAN2Generator.__new__(StyleGAN2Generator)
    nn.Module.__init__(backbone)
    backbone.mapping, backbone.synthesis = source.mapping_network, source.embedder.backbone
    backbone.z_dim, backbone.c_dim, backbone.w_dim = config.z_dim, config.c_dim, config.w_dim
    backbone.img_resolution, backbone.img_channels = config.triplane_resolution, 3 * 32
    backbone.num_ws = source.embedder.backbone.num_ws
    clone = nn.Module()
    clone.z_dim, clone.c_dim, clone.w_dim = config.z_dim, config.c_dim, config.w_dim
    clone.img_resolution, clone.img_channels = config.img_resolution, config.img_channels
    clone.rendering_kwargs = config.to_official()["rendering_kwargs"]
    clone.neural_rendering_resolution = config.neural_rendering_resolution
    clone.backbone, clone.superresolution, clone.decoder = backbone, source.upsampler, source.decoder.net
    for module in clone.modules():
        for attr in ("config", "layout", "_last_planes", "shares_last_ws", "noise_mode", "official_raw"):
            module.__dict__.pop(attr, None)
    renderer = nn.Module()
    renderer.plane_axes = plane_axes("official")  # a plain attribute in EG3D, not a buffer
    renderer.ray_marcher = nn.Module()
    clone.renderer = renderer
    clone.ray_sampler = nn.Module()
    persistent, plain = {"": "TriPlaneGenerator"}, dict(OFFICIAL_PLAIN)
    for name, module in clone.named_modules():
        if isinstance(module, OSGDecoder):
            plain[name] = "training.triplane.OSGDecoder"
        elif (cls := official_class_name(module)) is not None:
            persistent[name] = cls
    return clone, persistent, plain
