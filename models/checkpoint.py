"""Generator checkpoints: our safetensors format, and import of official EG3D pickles.

Our format is one ``.safetensors`` file: the generator's state dict, with the model config stored
as JSON in the header metadata. Reading it never executes code (safetensors holds only tensors and
strings), and files are written atomically (temp file in the same folder, fsync, rename), so a
crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from models.build import build_eg3d, build_pipeline
from models.eg3d import EG3D_PRESETS, EG3DConfig
from models.eg3d_pickle import InertObject
from models.errors import CheckpointError, one_line
from models.methods import PIPELINE_PRESET_NAMES
from models.methods.eg3d import from_eg3d, official_to_pipeline_names
from models.pipeline import PipelineGenerator
from models.pipeline_config import PipelineConfig

FORMAT_NAME = "3dgan-studio/generator"
"""Value of the ``format`` metadata key in our checkpoints."""
FORMAT_VERSION = "1"
"""Checkpoint format version written by this code."""

def _identity_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return state_dict


GENERATOR_TYPES: dict[str, tuple[Callable[[dict[str, Any]], PipelineConfig], Callable[[dict], dict]]] = {
    "eg3d": (lambda data: from_eg3d(EG3DConfig.from_dict(data)), official_to_pipeline_names),
    "pipeline": (PipelineConfig.from_dict, _identity_names),
}
"""``method`` metadata of our checkpoints -> (pipeline config from the saved dict, parameter-name map).
'eg3d' files were written before EG3D joined the pipeline, under the official parameter names."""


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@functools.cache
def _current_umask() -> int:
    """The process umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for writing so that readers see either the old file or the complete new one.

    Yields a binary file in the same folder (a temp name); on a clean exit it is flushed, fsynced
    and renamed over ``path``. On any error the temp file is removed and ``path`` is untouched.

    Raises:
        CheckpointError: naming the path, if the folder is missing or not writable or the disk is full.
    """
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(path, f"cannot write: {e.strerror or e}") from e
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as f:
        f.write(data)


def generator_config(G: nn.Module) -> Any:
    """The config that rebuilds ``G``, including live changes such as edited rendering options."""
    current = getattr(G, "current_config", None)
    return current() if callable(current) else G.config


def save_generator(G: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``G`` as a ``.safetensors`` checkpoint with its config in the header.

    Args:
        G: a generator whose ``config`` has ``method`` and ``to_dict()``.
        path: destination; replaced atomically.
        metadata: extra string metadata (e.g. kimg, run name).
    """
    from safetensors.torch import save as safetensors_save

    config = generator_config(G)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "method": config.method,
        "config": json.dumps(config.to_dict()),
    }
    for key, value in (metadata or {}).items():
        header[str(key)] = str(value)
    atomic_write_bytes(path, safetensors_save(tensors, metadata=header))


def load_state_checked(G: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Copy ``state_dict`` into ``G`` after checking names and shapes against the config.

    Raises:
        CheckpointError: listing missing, unexpected or mis-shaped tensors (first few of each).
    """
    expected = G.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("shape mismatch (file != config)", mismatched), ("missing", missing), ("unexpected", unexpected)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise CheckpointError(path, "tensors do not match the model config; " + "; ".join(problems))
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(state_dict[name])


def read_safetensors_generator(path: str | os.PathLike) -> nn.Module:
    """Build a generator from our ``.safetensors`` checkpoint (on the CPU, eval mode).

    Work and memory are bounded by the file, whatever its header claims: the config's fields are
    type- and range-checked, the model is first built on the ``meta`` device (no storage) and its
    tensor names and shapes compared with the header's, and only then built for real and filled.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            if meta.get("format") == FORMAT_NAME and meta.get("method") in GENERATOR_TYPES:
                config = _safetensors_config(path, meta, shapes)
                tensors = {k: f.get_tensor(k) for k in shapes}
    except SafetensorError as e:
        raise CheckpointError(path, f"not a readable safetensors file (truncated or corrupt?): {one_line(e, 200)}") from None
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(path, f"safetensors file is not a 3D-GAN Studio generator (format={meta.get('format')!r:.60})")
    if meta.get("method") not in GENERATOR_TYPES:
        raise CheckpointError(path, f"unknown generator method {meta.get('method')!r:.60}; known: "
                                    f"{', '.join(sorted(GENERATOR_TYPES))}")
    G = PipelineGenerator(config)
    load_state_checked(G, GENERATOR_TYPES[meta["method"]][1](tensors), path)
    return G


class _TooManyRegistrations(ValueError):
    """A model being built registers more parameters, buffers and modules than its file can hold."""


@contextlib.contextmanager
def _registrations_at_most(limit: int) -> Iterator[None]:
    """Abort (``_TooManyRegistrations``) a model built on this thread once it has registered more than
    ``limit`` parameters, buffers and submodules: a config asking for 60000 layers fails after
    ``limit`` of them, not after building them all."""
    from torch.nn.modules import module as torch_module

    thread, count = threading.get_ident(), [0]

    def tally(*_: Any) -> None:
        if threading.get_ident() == thread:
            count[0] += 1
            if count[0] > limit:
                raise _TooManyRegistrations(f"the config builds more than {limit} parameters, buffers and modules, "
                                            "far more than the file's tensors")

    handles = [torch_module.register_module_parameter_registration_hook(tally),
               torch_module.register_module_buffer_registration_hook(tally),
               torch_module.register_module_module_registration_hook(tally)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _safetensors_config(path: str | os.PathLike, meta: dict[str, str], shapes: dict[str, tuple[int, ...]]
                        ) -> PipelineConfig:
    """The checked config of our checkpoint's header (see :func:`check_config_against_shapes`)."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(path, f"unsupported checkpoint format version {meta.get('format_version')!r:.40} "
                                    f"(this build reads {FORMAT_VERSION})")
    config_from_dict, names = GENERATOR_TYPES[meta["method"]]
    try:
        config = config_from_dict(json.loads(meta.get("config", "")))
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError, OverflowError) as e:
        raise CheckpointError(path, f"invalid model config in metadata: {type(e).__name__}: {one_line(e, 200)}") from None
    check_config_against_shapes(path, config, _renamed_shapes(shapes, names))
    return config


def _renamed_shapes(shapes: dict[str, tuple[int, ...]], names: Callable[[dict], dict]) -> dict[str, tuple[int, ...]]:
    """``shapes`` under the names ``names`` maps them to (renaming reads names only)."""
    renamed = names(dict.fromkeys(shapes))
    return dict(zip(renamed, shapes.values(), strict=True)) if len(renamed) == len(shapes) else {}


def check_config_against_shapes(path: str | os.PathLike, config: PipelineConfig,
                                shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise CheckpointError unless ``config`` is valid, every field in range, and the model it builds has
    exactly the tensors ``shapes`` names (our names), with those shapes. Checked on the ``meta`` device
    (no storage), stopping once the model registers far more than the file's tensors: a file's config
    cannot make the loader build a huge model before its tensors are compared."""
    try:
        config.validate()
        with torch.device("meta"), _registrations_at_most(4 * len(shapes) + 1000):
            expected = {k: tuple(v.shape) for k, v in PipelineGenerator(config).state_dict().items()}
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError, OverflowError, RuntimeError) as e:
        raise CheckpointError(path, f"invalid model config: {one_line(e, 200)}") from None
    if shapes != expected:
        missing = [k for k in expected if k not in shapes]
        unexpected = [k for k in shapes if k not in expected]
        mismatched = [f"{k} {shapes[k]} != {v}" for k, v in expected.items() if k in shapes and shapes[k] != v]
        problems = [f"{label}: {', '.join(items[:3])}" + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")
                    for label, items in (("shape mismatch (file != config)", mismatched), ("missing", missing),
                                         ("unexpected", unexpected)) if items]
        raise CheckpointError(path, "tensors do not match the model config; " + "; ".join(problems))


def read_eg3d_pickle_generator(path: str | os.PathLike, key: str = "G_ema", data: dict[str, Any] | None = None
                               ) -> nn.Module:
    """Build a generator from an official EG3D ``network-snapshot-*.pkl`` without executing it (``data``:
    the pickle's top-level dict, if already read)."""
    from models.eg3d_pickle import load_eg3d_pickle

    class_name, init_kwargs, state_dict, attributes = load_eg3d_pickle(path, key=key, data=data)
    if class_name != "TriPlaneGenerator":
        raise CheckpointError(path, f"{key} is a {class_name}, not an EG3D TriPlaneGenerator")
    try:
        config = from_eg3d(EG3DConfig.from_official(init_kwargs, attributes))
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError, OverflowError) as e:
        raise CheckpointError(path, f"unsupported EG3D generator options: {type(e).__name__}: {one_line(e, 200)}") \
            from None
    state_dict = official_to_pipeline_names(state_dict)
    check_config_against_shapes(path, config, {k: tuple(v.shape) for k, v in state_dict.items()})
    G = PipelineGenerator(config)
    load_state_checked(G, state_dict, path)
    return G


def is_stylenerf_pickle(data: Any, key: str = "G_ema") -> bool:
    """Whether a network pickle's ``key`` is StyleNeRF's (a persistent ``Generator`` whose ``synthesis``
    is a ``NeRFSynthesisNetwork``), told by the persistent records' class names."""
    from models.eg3d_pickle import PersistentRecord
    from models.methods.stylenerf import STYLENERF_SYNTHESIS

    record = data.get(key) if isinstance(data, dict) else None
    modules = record.state.get("_modules") if isinstance(record, PersistentRecord) else None
    synthesis = modules.get("synthesis") if isinstance(modules, dict) else None
    return isinstance(synthesis, PersistentRecord) and synthesis.class_name == STYLENERF_SYNTHESIS


def read_epigraf_pickle_generator(path: str | os.PathLike, release: str | None = None,
                                  settings: dict[str, Any] | None = None) -> nn.Module:
    """Build a generator from an EpiGRAF snapshot (the released ``model.pkl``) without executing it:
    its ``G_ema``, the architecture from the tensor shapes, rendering from the resolved ``cfg``.

    ``release`` / ``settings``: as for :func:`read_pigan_generator` (default: the release the file's
    class-label size identifies; settings override what the file says). The truncation mean is the
    file's ``w_avg``.
    """
    from models.epigraf_pickle import load_epigraf_generator_record
    from models.methods.epigraf import from_official, official_network, official_to_pipeline_names
    from models.releases import choose

    path = Path(path)
    _record, cfg, state_dict = load_epigraf_generator_record(path)
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    try:
        chosen = choose("epigraf-pickle", official_network(cfg, shapes), release, where=os.fspath(path))
    except (KeyError, ValueError) as e:
        raise CheckpointError(path, f"unsupported EpiGRAF generator: {e}") from None
    G = _release_generator(path, "EpiGRAF", chosen, lambda: from_official(cfg, shapes, chosen, settings))
    load_state_checked(G, official_to_pipeline_names(state_dict), path)
    return G


PICKLE_READERS: dict[str, Callable[..., nn.Module]] = {"src.torch_utils.persistence": read_epigraf_pickle_generator}
"""Network pickles by the module of their persistence global, where it is not EG3D's ``torch_utils.persistence``
(read by :func:`read_eg3d_pickle_generator`)."""


def read_network_pickle_generator(path: str | os.PathLike, release: str | None = None,
                                  settings: dict[str, Any] | None = None) -> nn.Module:
    """A StyleGAN-style network pickle, told apart by its persistence module (read from the opcodes,
    nothing unpickled) and then by its generator's persistent class names: EpiGRAF's ``src.``-prefixed
    ``Generator``, StyleNeRF's ``Generator`` (a ``NeRFSynthesisNetwork`` synthesis) or EG3D's
    ``TriPlaneGenerator`` (the last two read once, with StyleNeRF's allow-list, a superset of EG3D's)."""
    from models.epigraf_pickle import persistence_module
    from models.stylenerf_pickle import read_stylenerf_pickle

    reader = PICKLE_READERS.get(persistence_module(path) or "")
    if reader is not None:
        return reader(path, release=release, settings=settings)
    data = read_stylenerf_pickle(path)
    if is_stylenerf_pickle(data):
        return read_stylenerf_pickle_generator(path, release=release, settings=settings, data=data)
    return read_eg3d_pickle_generator(path, data=data)


def read_stylenerf_pickle_generator(path: str | os.PathLike, release: str | None = None,
                                    settings: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                                    key: str = "G_ema") -> nn.Module:
    """Build a generator from an official StyleNeRF pickle (``ffhq_256.pkl``, ...: its ``G_ema``) without
    running anything from it: the embedded module source is never run, omegaconf nodes are inert
    records, sizes come from the tensor shapes.

    Args:
        release: the ``models.releases`` StyleNeRF entry (default: the one of the file's image size;
            a named StyleNeRF release fits any size). The file's own fov, depth range, samples and
            resolutions replace the release's.
        settings: ``Release`` fields to change after that.
        data: the pickle's top-level dict, if already read.
    """
    from models.methods.stylenerf import from_official, official_network, official_to_pipeline_names, release_settings
    from models.releases import choose
    from models.stylenerf_pickle import load_stylenerf_generator_record, read_stylenerf_pickle

    path = Path(path)
    if data is None:
        data = read_stylenerf_pickle(path)
    if not is_stylenerf_pickle(data, key):
        raise CheckpointError(path, f"{key} is not a StyleNeRF Generator (no NeRFSynthesisNetwork synthesis)")
    kwargs, state_dict = load_stylenerf_generator_record(path, data, key)
    alpha = state_dict.get("synthesis.alpha")
    if alpha is not None and (alpha.numel() != 1 or not float(alpha) >= 1):
        raise CheckpointError(path, f"synthesis.alpha is {alpha.flatten()[:1].tolist()}: only a generator that "
                                    "has finished growing (alpha 1) is supported")
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    try:
        chosen = choose("stylenerf-pickle", official_network(kwargs), release, where=os.fspath(path), any_network=True)
        chosen = chosen.replace(**release_settings(kwargs)).replace(**(settings or {}))
        config = from_official(kwargs, shapes, chosen)
        config.extra["release"] = chosen.name
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise CheckpointError(path, f"unsupported StyleNeRF generator: {one_line(e, 200)}") from None
    state = official_to_pipeline_names(state_dict)
    check_config_against_shapes(path, config, {k: tuple(v.shape) for k, v in state.items()})
    G = PipelineGenerator(config)
    load_state_checked(G, state, path)
    return G


PIGAN_GENERATOR = "generators.generators.ImplicitGenerator3d"
"""The class pi-GAN's ``generator.pth`` pickles (``torch.save(module)``)."""
TORCH_EMA = "torch_ema.ema.ExponentialMovingAverage"
"""The class of pi-GAN's / GRAM's ``ema.pth``."""


def _ema_path(path: Path) -> Path:
    """Where the official scripts look for the EMA: ``path.split('generator')[0] + 'ema.pth'``."""
    return path.with_name(path.name.split("generator")[0] + "ema.pth") if "generator" in path.name \
        else path.with_name("ema.pth")


def read_ema_shadow_params(path: str | os.PathLike) -> list[torch.Tensor]:
    """The ``shadow_params`` (EMA weights, ``generator.parameters()`` order) of a pickled torch_ema object.
    ``collected_params`` are ignored: in pi-GAN's ``ema.pth`` they are the raw weights."""
    from models.official_formats import read_torch_zip

    ema = read_torch_zip(path)
    if not isinstance(ema, InertObject) or ema.qualified_name != TORCH_EMA:
        raise CheckpointError(path, f"holds a {_describe_object(ema)}, not a {TORCH_EMA}")
    shadow = ema.dict_state.get("shadow_params")
    if not isinstance(shadow, list) or not all(isinstance(t, torch.Tensor) for t in shadow):
        raise CheckpointError(path, "its shadow_params are not a list of tensors")
    return shadow


def _describe_object(obj: Any) -> str:
    if isinstance(obj, InertObject):
        return obj.qualified_name
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"state dict of {len(obj)} tensors"
    if isinstance(obj, dict):
        keys = ", ".join(sorted(str(k) for k in obj)[:6])
        return f"dict with keys {keys}"[:200]
    return type(obj).__name__


def read_pigan_generator(path: str | os.PathLike, release: str | None = None,
                         settings: dict[str, Any] | None = None, ema: str | os.PathLike | bool = True,
                         generator: Any = None) -> nn.Module:
    """Build a generator from pi-GAN's ``generator.pth`` (``torch.save`` of the whole module) without
    running or importing anything from it.

    Args:
        release: the ``models.releases`` name whose render settings to use (default: the one the
            file's network identifies; CelebA where it could also be Cats, with a warning).
        settings: ``Release`` fields to change (fov_degrees, near, far, num_coarse, num_fine,
            last_back, white_back, ...), as a user would pass them.
        ema: read ``shadow_params`` from the ``ema.pth`` beside the file as the official scripts do
            (True), from this path, or not at all (False: the raw weights).
        generator: the already-read archive (else it is read from ``path``).

    The truncation mean, which the file does not store, is computed once from 10000 z (seed 0).
    """
    from models.methods.pigan import from_official, official_to_pipeline_names
    from models.official_formats import module_parameters, module_state, read_torch_zip
    from models.releases import choose

    path = Path(path)
    generator = read_torch_zip(path) if generator is None else generator
    if not isinstance(generator, InertObject) or generator.qualified_name != PIGAN_GENERATOR:
        what = _describe_object(generator)
        hint = " (an EMA file: open the generator.pth beside it)" if what == TORCH_EMA else ""
        raise CheckpointError(path, f"torch archive holds a {what}{hint}, not a pi-GAN {PIGAN_GENERATOR}")
    siren = module_state(generator, path).get("_modules", {}).get("siren")
    network = siren.qualified_name if isinstance(siren, InertObject) else type(siren).__name__
    params = module_parameters(generator, path)
    try:
        chosen = choose("pigan-torch-save", network, release, where=os.fspath(path))
        chosen = chosen.replace(**(settings or {}))
    except ValueError as e:
        raise CheckpointError(path, str(e)) from None
    warp = (module_state(siren, path, "siren").get("_modules") or {}).get("gridwarper")
    scale = module_state(warp, path, "siren.gridwarper").get("scale_factor") if warp is not None else None
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise CheckpointError(path, "siren.gridwarper has no numeric scale_factor")

    state_dict = dict(_apply_ema(path, params, ema))
    G = _release_generator(path, "pi-GAN", chosen,
                           lambda: from_official({k: tuple(v.shape) for k, v in state_dict.items()}, float(scale), chosen))
    return _load_with_truncation_mean(path, G, official_to_pipeline_names(state_dict), chosen)


def _release_generator(path: Path, method: str, chosen: Any, make_config: Callable[[], PipelineConfig]) -> nn.Module:
    """A fresh generator of an imported release's config, tagged with the release whose settings it
    uses (the app shows them); config problems become one-line errors."""
    try:
        config = make_config()
        config.extra["release"] = chosen.name
        return PipelineGenerator(config)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(path, f"unsupported {method} generator: {e}") from None


def _load_with_truncation_mean(path: Path, G: nn.Module, state: dict[str, torch.Tensor], chosen: Any) -> nn.Module:
    """Load an imported state that stores no truncation mean, then compute it once from
    ``chosen.truncation_samples`` z, as the official scripts do on every run."""
    state.setdefault("mapping_network.w_avg", G.mapping_network.w_avg)  # not in the file: computed below
    load_state_checked(G, state, path)
    G.set_truncation_mean(G.estimate_truncation_mean(chosen.truncation_samples))
    return G


def _apply_ema(path: Path, params: list[tuple[str, torch.Tensor]], ema: str | os.PathLike | bool
               ) -> list[tuple[str, torch.Tensor]]:
    """``params`` with the ``shadow_params`` of the ``ema.pth`` beside ``path`` (or at ``ema``) put in, in order,
    as the official ``ema.copy_to(generator.parameters())`` does; checked for count and shapes."""
    if ema is False:
        return params
    ema_path = _ema_path(path) if ema is True else Path(ema)
    if not ema_path.exists():
        if ema is not True:
            raise CheckpointError(ema_path, "no such file")
        warnings.warn(f"{path}: no {ema_path.name} beside it; using the raw (non-EMA) weights", stacklevel=3)
        return params
    shadow = read_ema_shadow_params(ema_path)
    if len(shadow) != len(params):
        raise CheckpointError(ema_path, f"has {len(shadow)} shadow params, {path.name} has {len(params)} parameters")
    for (name, tensor), value in zip(params, shadow):
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(ema_path, f"shadow param for {name} is {tuple(value.shape)}, "
                                            f"the parameter {tuple(tensor.shape)}")
    return [(name, value) for (name, _), value in zip(params, shadow)]


GRAM_PREFIX = "representation."
"""Every parameter name of GRAM's ``generator.pth`` (a GramGenerator state dict) starts with this."""


def is_gram_state_dict(obj: Any) -> bool:
    return (isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
            and all(isinstance(k, str) and k.startswith(GRAM_PREFIX) for k in obj))


def read_gram_generator(path: str | os.PathLike, release: str | None = None, settings: dict[str, Any] | None = None,
                        ema: str | os.PathLike | bool = True, state: Any = None) -> nn.Module:
    """Build a generator from GRAM's ``generator.pth`` (``torch.save`` of a GramGenerator state dict)
    and the ``ema.pth`` beside it, without running anything from either.

    Args:
        release: the ``models.releases`` GRAM entry (default: the one whose manifold-predictor
            width the file has: FFHQ 128, CATS 64, CARLA 256; a named GRAM release fits any width).
        settings: ``Release`` fields to change, as for :func:`read_pigan_generator`.
        ema: as for :func:`read_pigan_generator` (the state dict's order is ``parameters()`` order:
            GRAM has no buffers).
        state: the already-read archive (else it is read from ``path``).

    The truncation mean, which the file does not store, is computed once from 10000 z (seed 0).
    """
    from models.methods.gram import from_official, official_network, official_to_pipeline_names
    from models.official_formats import read_torch_zip
    from models.releases import choose

    path = Path(path)
    state = read_torch_zip(path) if state is None else state
    if not is_gram_state_dict(state):
        raise CheckpointError(path, f"torch archive holds a {_describe_object(state)}, not a GRAM state dict")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    try:
        network = official_network(shapes)
        chosen = choose("gram-state-dict", network, release, where=os.fspath(path), any_network=True)
        chosen = chosen.replace(**(settings or {}))
    except ValueError as e:
        raise CheckpointError(path, str(e) + ("" if release else "; pass release=gram-ffhq|gram-cats|gram-carla")) \
            from None
    state_dict = dict(_apply_ema(path, list(state.items()), ema))
    G = _release_generator(path, "GRAM", chosen, lambda: from_official(shapes, chosen))
    return _load_with_truncation_mean(path, G, official_to_pipeline_names(state_dict), chosen)


STYLESDF_KEYS = frozenset({"g_ema", "g", "d"})
"""The entries of every StyleSDF ``.pt`` (``torch.save({'g_ema', 'g', 'd'})``); only ``g_ema`` renders."""


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def is_stylesdf_checkpoint(obj: Any) -> bool:
    return (isinstance(obj, dict) and "g_ema" in obj and set(obj) <= STYLESDF_KEYS and _is_state_dict(obj["g_ema"])
            and "style.0.weight" in obj["g_ema"])


def read_stylesdf_generator(path: str | os.PathLike, release: str | None = None,
                            settings: dict[str, Any] | None = None, checkpoint: Any = None) -> nn.Module:
    """Build a generator from StyleSDF's ``full_models/*.pt`` or ``pretrained_renderer/*_vol_renderer.pt``
    (``torch.save({'g_ema', 'g', 'd'})``), read by the allow-listed reader (nothing in it runs).

    As the official scripts: only ``g_ema`` is used; the architecture comes from its shapes (a
    renderer-only file gives a 64 px generator without the 2D decoder); entries are copied where the
    shapes agree (a mismatch is skipped with a warning, as the official loader skips it silently; an
    entry the network does not have is an error). ``release`` / ``settings``: as for
    :func:`read_pigan_generator` (default: the release the file's network identifies).
    The truncation means, which the file does not store, are computed once from 10000 z (seed 0).
    """
    from models.methods.stylesdf import from_official, official_network, official_to_pipeline_names
    from models.official_formats import read_torch_zip
    from models.releases import choose

    path = Path(path)
    checkpoint = read_torch_zip(path) if checkpoint is None else checkpoint
    if not is_stylesdf_checkpoint(checkpoint):
        raise CheckpointError(path, f"torch archive holds a {_describe_object(checkpoint)}, not a StyleSDF "
                                    "{'g_ema', 'g', 'd'} checkpoint")
    state = checkpoint["g_ema"]
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    try:
        network = official_network(shapes)
        chosen = choose("stylesdf-pt", network, release, where=os.fspath(path), any_network=True)
        chosen = chosen.replace(**(settings or {}))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(path, f"unsupported StyleSDF generator: {e}") from None
    G = _release_generator(path, "StyleSDF", chosen, lambda: from_official(shapes, chosen))
    renamed = official_to_pipeline_names(state)
    own = G.state_dict()
    unknown = [k for k in renamed if k not in own]
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise CheckpointError(path, f"g_ema has entries the StyleSDF network does not: {', '.join(unknown[:3])}{more}")
    skipped = [k for k, v in renamed.items() if tuple(v.shape) != tuple(own[k].shape)]
    if skipped:
        warnings.warn(f"{path}: skipping {len(skipped)} entries whose shapes differ (as the official loader): "
                      f"{', '.join(skipped[:3])}", stacklevel=3)
    with torch.no_grad():
        for name, tensor in renamed.items():
            if name not in skipped:
                own[name].copy_(tensor)
    G.set_truncation_mean(G.estimate_truncation_mean(chosen.truncation_samples))
    return G


GIRAFFE_GENERATORS = ("generator_test.", "generator.")
"""Prefixes of the generators in a GIRAFFE checkpoint's ``model``, in the order they are preferred (the EMA first)."""


def is_giraffe_checkpoint(obj: Any) -> bool:
    return (isinstance(obj, dict) and _is_state_dict(obj.get("model"))
            and any(f"{p}decoder.fc_in.weight" in obj["model"] for p in GIRAFFE_GENERATORS))


def read_giraffe_checkpoint(path: str | os.PathLike, release: str | None = None,
                            settings: dict[str, Any] | None = None, checkpoint: Any = None) -> nn.Module:
    """Build a generator from an official GIRAFFE ``checkpoint_<name>-<hash>.pt`` (im2scene's
    ``CheckpointIO``: ``model`` state dict, optimiser states, numpy scalars), read by the allow-listed
    reader (nothing in it runs). Renders with ``generator_test`` (the EMA, as ``render.py``), else
    ``generator`` with a warning. ``release`` / ``settings``: as for :func:`read_pigan_generator`
    (default: the first release with the file's sizes; a named GIRAFFE release fits any sizes). The
    truncation mean is z's mean, 0 (``render.py`` scales codes by 0.65: truncation 0.65)."""
    from models.methods.giraffe import OFFICIAL_BLUR, from_official, official_network, official_to_pipeline_names
    from models.official_formats import read_torch_zip
    from models.releases import choose

    path = Path(path)
    checkpoint = read_torch_zip(path) if checkpoint is None else checkpoint
    if not is_giraffe_checkpoint(checkpoint):
        raise CheckpointError(path, f"torch archive holds a {_describe_object(checkpoint)}, not a GIRAFFE checkpoint "
                                    "(a 'model' state dict with generator_test.decoder.*)")
    model = checkpoint["model"]
    prefix = next(p for p in GIRAFFE_GENERATORS if f"{p}decoder.fc_in.weight" in model)
    if prefix != GIRAFFE_GENERATORS[0]:
        warnings.warn(f"{path}: no generator_test (EMA) weights; using the raw generator", stacklevel=3)
    state = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    try:
        network = official_network(shapes)
        chosen = choose("giraffe-checkpoint", network, release, where=os.fspath(path), any_network=True)
        chosen = chosen.replace(**(settings or {}))
        renamed = official_to_pipeline_names(state)
    except (KeyError, ValueError, TypeError) as e:
        ask = "" if release else "; pass release=giraffe-<name> (models.releases)"
        raise CheckpointError(path, f"unsupported GIRAFFE generator: {e}{ask}") from None
    taps = state.get(OFFICIAL_BLUR)
    if taps is not None and (taps.numel() != 3 or taps.reshape(-1).tolist() != [1.0, 2.0, 1.0]):
        raise CheckpointError(path, f"{prefix}{OFFICIAL_BLUR} is not the [1, 2, 1] blur")
    G = _release_generator(path, "GIRAFFE", chosen, lambda: from_official(shapes, chosen))
    renamed["mapping_network.w_avg"] = G.mapping_network.w_avg  # z's mean: 0
    load_state_checked(G, renamed, path)
    return G


def read_official_torch_generator(path: str | os.PathLike, release: str | None = None,
                                  settings: dict[str, Any] | None = None) -> nn.Module:
    """A ``torch.save`` archive, read once and told apart by content: VolumeGAN's runner checkpoint,
    StyleSDF's {'g_ema', 'g', 'd'}, GRAF's CheckpointIO dict, GIRAFFE's training checkpoint, GRAM's state dict
    or pi-GAN's pickled module."""
    from models.official_formats import read_torch_zip

    obj = read_torch_zip(path)
    if is_giraffe_checkpoint(obj):
        return read_giraffe_checkpoint(path, release=release, settings=settings, checkpoint=obj)
    if is_volumegan_checkpoint(obj):
        return read_volumegan_checkpoint(path, release=release, settings=settings, data=obj)
    if is_stylesdf_checkpoint(obj):
        return read_stylesdf_generator(path, release=release, settings=settings, checkpoint=obj)
    if is_gram_state_dict(obj):
        return read_gram_generator(path, release=release, settings=settings, state=obj)
    if is_graf_checkpoint(obj):
        return read_graf_generator(path, release=release, settings=settings, checkpoint=obj)
    return read_pigan_generator(path, release=release, settings=settings, generator=obj)


GRAF_NETWORK_KEYS = ("generator_test", "generator")
"""The NeRF state dicts of a GRAF ``CheckpointIO`` file, in the order the importer takes them (the EMA first,
as the official ``eval.py``); ``it``, ``epoch_idx``, ``fid_best``, ``kid_best``, the discriminator and the
optimisers' states are ignored."""


def is_graf_checkpoint(obj: Any) -> bool:
    """Whether an unpickled torch archive is GRAF's ``CheckpointIO`` dict (a NeRF state dict under
    ``generator_test`` or ``generator``)."""
    return isinstance(obj, dict) and any(
        _is_state_dict(obj.get(key)) and "pts_linears.0.weight" in obj[key] for key in GRAF_NETWORK_KEYS)


def read_graf_generator(path: str | os.PathLike, release: str | None = None, settings: dict[str, Any] | None = None,
                        checkpoint: Any = None) -> nn.Module:
    """Build a generator from a GRAF ``CheckpointIO`` file (``carla_64.pt``, ``model_best.pt``, ...) read by
    the allow-listed reader: ``generator_test`` (the EMA the official ``eval.py`` renders with), else
    ``generator``, loaded strictly; sizes from its shapes.

    ``release``: the ``models.releases`` GRAF entry (default: the one whose released file has this file's
    name, else the first that fits the network, with a warning); ``settings``: ``Release`` fields to change,
    as for :func:`read_pigan_generator` (``near``/``far`` are depths along the optical axis, ``radius_max``
    a radius range's largest radius).
    """
    from models.methods.graf import from_official, official_network, official_to_pipeline_names
    from models.official_formats import read_torch_zip
    from models.releases import RELEASES, choose

    path = Path(path)
    checkpoint = read_torch_zip(path) if checkpoint is None else checkpoint
    if not is_graf_checkpoint(checkpoint):
        raise CheckpointError(path, f"torch archive holds a {_describe_object(checkpoint)}, not a GRAF checkpoint "
                                    "(generator_test / generator)")
    key = next(k for k in GRAF_NETWORK_KEYS if _is_state_dict(checkpoint.get(k)) and "pts_linears.0.weight"
               in checkpoint[k])
    state = checkpoint[key]
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    try:
        network = official_network(shapes)
        if release is None:
            named = [r.name for r in RELEASES.values() if r.method == "graf" and r.network == network
                     and r.file_name.rsplit("/", 1)[-1] == path.name]
            release = named[0] if named else None
        chosen = choose("graf-checkpoint", network, release, where=os.fspath(path)).replace(**(settings or {}))
    except (ValueError, TypeError) as e:
        raise CheckpointError(path, f"unsupported GRAF generator: {e}") from None
    G = _release_generator(path, "GRAF", chosen, lambda: from_official(shapes, chosen))
    renamed = official_to_pipeline_names(state)
    renamed.setdefault("mapping_network.w_avg", G.mapping_network.w_avg)  # z is used as is: its mean is 0
    load_state_checked(G, renamed, path)
    return G


VOLUMEGAN_KEYS = ("models", "model_kwargs_init")
"""Top-level keys of the official VolumeGAN (Hammer runner) checkpoint an importer needs; others are ignored."""


def is_volumegan_checkpoint(data: Any) -> bool:
    """Whether an unpickled torch archive has the Hammer runner's layout (``models`` + ``model_kwargs_init``)."""
    return isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in VOLUMEGAN_KEYS)


def read_volumegan_checkpoint(path: str | os.PathLike, release: str | None = None,
                              settings: dict[str, Any] | None = None, data: Any = None) -> nn.Module:
    """Build a generator from an official VolumeGAN checkpoint (``volumegan_ffhq256.pth``) without running or
    importing anything from it: ``models.generator_smooth`` (the EMA generator the official ``render.py``
    uses) loaded strictly under our names, sizes from ``model_kwargs_init.generator_smooth`` (its
    ``easydict.EasyDict`` read as a plain dict) checked against the tensor shapes.

    Args:
        release: the ``models.releases`` name whose render settings to use (default: the one the file's
            ``model_type`` identifies).
        settings: ``Release`` fields to change (fov_degrees, near, far, num_coarse, num_fine, ...).
        data: the file's content already read with ``read_torch_zip`` (not read again).
    """
    from models.methods.volumegan import from_official, official_to_pipeline_names
    from models.official_formats import read_torch_zip
    from models.releases import choose

    path = Path(path)
    if data is None:
        data = read_torch_zip(path)
    if not is_volumegan_checkpoint(data):
        raise CheckpointError(path, f"holds a {_describe_object(data)}, not a VolumeGAN checkpoint "
                                    "(models, model_kwargs_init)")
    state_dict = data["models"].get("generator_smooth")
    kwargs = data["model_kwargs_init"].get("generator_smooth")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(path, "models.generator_smooth is not a state dict of tensors")
    if not isinstance(kwargs, dict):
        raise CheckpointError(path, "model_kwargs_init.generator_smooth is not a dict")
    network = kwargs.get("model_type")
    try:
        chosen = choose("volumegan-runner", str(network), release, where=os.fspath(path))
        chosen = chosen.replace(**(settings or {}))
    except ValueError as e:
        raise CheckpointError(path, f"unsupported VolumeGAN generator: {e}") from None
    G = _release_generator(path, "VolumeGAN", chosen,
                           lambda: from_official(kwargs, {k: tuple(v.shape) for k, v in state_dict.items()}, chosen))
    lod = state_dict.get("synthesis.lod")
    if lod is not None and float(lod) != 0:
        raise CheckpointError(path, f"synthesis.lod is {float(lod)}: a generator still growing is not supported")
    renamed = official_to_pipeline_names(state_dict)
    own = G.state_dict()
    for name, tensor in renamed.items():  # fixed filters: the file's must be ours
        if name.endswith("resample_filter") and name in own and not torch.equal(own[name], tensor.to(own[name])):
            raise CheckpointError(path, f"{name} is not the [1, 3, 3, 1] filter")
    for name, tensor in own.items():  # the official layer{2k} has no filter of its own
        if name.endswith("resample_filter"):
            renamed.setdefault(name, tensor)
    load_state_checked(G, renamed, path)
    return G


def sniff_format(path: str | os.PathLike) -> str:
    """'safetensors', 'pickle', 'torch-zip', 'zip' or 'unknown', from the first bytes (extensions are not trusted)."""
    from models.official_formats import is_torch_zip

    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return "pickle"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch-zip" if is_torch_zip(path) else "zip"
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def _what_it_is(path: Path) -> str:
    """A few words on a file that is none of the checkpoint formats (for the one-line error)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file"
    for magic, name in ((b"\x1f\x8b", "a gzip file"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                        (b"\x93NUMPY", "a numpy .npy array"), (b"%PDF", "a PDF document"), (b"\x7fELF", "an executable"),
                        (b"version https://git-lfs", "a Git LFS pointer (the weights were not downloaded)")):
        if head.startswith(magic):
            return name
    if head.startswith(b"PK"):
        return "a zip archive that is not a torch checkpoint"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON/text file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file of unknown type"


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu", *, release: str | None = None,
                   settings: dict[str, Any] | None = None) -> nn.Module:
    """Load a generator from our ``.safetensors`` checkpoint, an official EG3D, EpiGRAF or StyleNeRF ``.pkl``
    (its G_ema, told apart by persistence module and class names), an official pi-GAN or GRAM
    ``generator.pth`` (with the ``ema.pth`` beside it), an official VolumeGAN ``.pth`` (its
    ``generator_smooth``), StyleSDF ``.pt`` (its ``g_ema``), GRAF ``.pt`` or GIRAFFE ``checkpoint_*.pt``
    (their ``generator_test``).

    ``release`` / ``settings``: for official files that do not store their render settings, the
    ``models.releases`` entry to use and changes to it (see :func:`read_pigan_generator`).
    The result is in eval mode (deterministic rendering) with gradients off.

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file")
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a checkpoint file")
    if not path.is_file():  # a named pipe would block the first read forever
        raise CheckpointError(path, "is not a regular file (a pipe, socket or device), not a checkpoint file")
    try:
        kind = sniff_format(path)
    except OSError as e:
        raise CheckpointError(path, f"cannot read: {e.strerror or e}") from e
    if kind == "safetensors":
        G = read_safetensors_generator(path)
    elif kind == "pickle":
        G = read_network_pickle_generator(path, release=release, settings=settings)
    elif kind == "torch-zip":
        G = read_official_torch_generator(path, release=release, settings=settings)
    else:
        raise CheckpointError(path, f"unrecognised file type: {_what_it_is(path)} (expected a .safetensors generator, "
                                    "an EG3D / EpiGRAF / StyleNeRF network pickle, a pi-GAN / GRAM generator.pth, "
                                    "a VolumeGAN .pth, a StyleSDF .pt, a GRAF .pt or a GIRAFFE checkpoint_*.pt)")
    return G.eval().requires_grad_(False).to(device)


def open_generator(spec: str | os.PathLike, device: torch.device | str = "cpu", seed: int = 0,
                   release: str | None = None) -> nn.Module:
    """A checkpoint path, or the name of a built-in architecture with random weights (for benchmarks).

    Presets are seeded so that two runs build the same random generator. ``release``: the
    ``models.releases`` settings for an official file that does not say which release it is.
    """
    name = os.fspath(spec)
    preset = name.removeprefix("preset:")
    if not Path(name).exists() and (preset in EG3D_PRESETS or preset in PIPELINE_PRESET_NAMES):
        torch.manual_seed(seed)
        G = build_eg3d(preset) if preset in EG3D_PRESETS else build_pipeline(preset)
        return G.eval().requires_grad_(False).to(device)
    return load_generator(name, device=device, release=release)
