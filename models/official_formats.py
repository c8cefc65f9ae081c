"""Read official ``torch.save`` archives that hold pickled modules and objects, without running them.

pi-GAN's ``generator.pth`` is ``torch.save(module)`` of a whole generator and its ``ema.pth`` a
pickled ``torch_ema.ExponentialMovingAverage``; loading them the official way imports the method's
code and unpickles with ``weights_only=False``. This reader never does: the archive's
``*/data.pkl`` is unpickled by the allow-listed unpickler of :mod:`models.eg3d_pickle` (every class
becomes an inert record of its ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` and plain
attributes), each storage is read from its own archive entry as raw bytes (size checked against its
element count, CPU whatever device it was tagged with), and any other global raises
:class:`~models.errors.UnsafePickleError` naming the file and the global before anything is called.
Work and memory are bounded: one pickle of at most :data:`MAX_PICKLE_BYTES`, storages of at most
``max_bytes`` in all, no entry read twice.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from models.eg3d_pickle import InertObject, _one_line, _printable, _SafeUnpickler
from models.errors import CheckpointError, UnsafePickleError

__all__ = [
    "TORCH_ZIP_PLAIN_CLASSES",
    "find_data_pickle",
    "is_torch_zip",
    "module_parameters",
    "module_state",
    "read_torch_zip",
]

TORCH_ZIP_PLAIN_CLASSES: frozenset[str] = frozenset(
    {
        # pi-GAN (marcoamonteiro/pi-GAN): generators/generators.py and siren/siren.py
        "generators.generators.ImplicitGenerator3d",
        "siren.siren.SPATIALSIRENBASELINE",
        "siren.siren.TALLSIREN",
        "siren.siren.CustomMappingNetwork",
        "siren.siren.FiLMLayer",
        "siren.siren.UniformBoxWarp",
        # torch_ema 0.2 (the EMA object pi-GAN and GRAM save)
        "torch_ema.ema.ExponentialMovingAverage",
        # torch.nn modules inside them, never instantiated
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.container.ModuleList",
        "torch.nn.modules.activation.LeakyReLU",
        "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.activation.Sigmoid",
        "torch.nn.modules.activation.Softplus",
        "torch.nn.modules.activation.Tanh",
        # EasyDict configs some forks keep on their modules
        "easydict.EasyDict",
    }
)
"""Classes that may appear in official ``torch.save`` archives; each becomes an inert record."""

MAX_PICKLE_BYTES = 256 * 2**20
"""Largest ``data.pkl`` read (real generator pickles are a few kilobytes)."""
MAX_ENTRIES = 200_000
"""Most archive entries looked at."""
DEFAULT_MAX_BYTES = 8 * 2**30
"""Default bound on the storages of one archive, in bytes."""

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "torch.DoubleStorage": torch.float64, "torch.FloatStorage": torch.float32, "torch.HalfStorage": torch.float16,
    "torch.BFloat16Storage": torch.bfloat16, "torch.LongStorage": torch.int64, "torch.IntStorage": torch.int32,
    "torch.ShortStorage": torch.int16, "torch.CharStorage": torch.int8, "torch.ByteStorage": torch.uint8,
    "torch.BoolStorage": torch.bool,
}


class _StorageType:
    """What a ``torch.<Type>Storage`` global resolves to: only its dtype, used by persistent ids."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype

    def __call__(self, *args: Any) -> Any:
        raise pickle.UnpicklingError(f"refusing to call {self.name}")


def _device(kind: Any, index: Any = None) -> str:
    """``torch.device(...)`` as its string (a pickled attribute; every tensor is mapped to the CPU)."""
    if not isinstance(kind, str) or (index is not None and not isinstance(index, int)):
        raise pickle.UnpicklingError("malformed torch.device")
    return _printable(kind if index is None else f"{kind}:{index}")[:40]


class _TorchZipUnpickler(_SafeUnpickler):
    """The allow-listed unpickler plus the storages of a torch zip archive (persistent ids)."""

    allow_list_name: ClassVar[str] = "official-checkpoint"

    def __init__(self, file: io.BufferedIOBase, path: str, plain_classes: frozenset[str], archive: zipfile.ZipFile,
                 prefix: str, max_bytes: int, big_endian: bool):
        super().__init__(file, path, plain_classes)
        self._archive, self._prefix, self._max_bytes, self._big_endian = archive, prefix, max_bytes, big_endian
        self._storages: dict[str, torch.TypedStorage] = {}
        self._bytes_read = 0
        for name, dtype in _STORAGE_DTYPES.items():
            self._allowed[name] = _StorageType(name, dtype)
        self._allowed["torch.device"] = _device
        self._allowed["easydict.EasyDict"] = self._allowed["dnnlib.util.EasyDict"]

    def _numpy_scalar(self, dtype: Any, data: Any = None) -> Any:
        # Training scalars (GRAF's fid_best, GIRAFFE's best FID): checked raw bytes of a numeric dtype
        # (both numpy module spellings resolve here), handed on as a plain Python number.
        return super()._numpy_scalar(dtype, data).item()

    def persistent_load(self, pid: Any) -> Any:
        # torch.save: ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError(self._path, f"refusing persistent id {_printable(repr(pid))[:80]}")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(self._path, "storage of an unknown type")
        if not isinstance(key, str) or not key.isalnum() or not isinstance(location, str):
            raise CheckpointError(self._path, "malformed storage record")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise CheckpointError(self._path, f"storage {key} has a malformed size")
        cached = self._storages.get(key)
        if cached is not None:
            if cached.dtype != storage_type.dtype:
                raise CheckpointError(self._path, f"storage {key} is used with two types")
            return cached
        self._storages[key] = storage = self._read_storage(key, storage_type.dtype, numel)
        return storage

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.TypedStorage:
        name = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(name)
        except KeyError:
            raise CheckpointError(self._path, f"archive has no entry {_printable(name)[:120]} for a tensor") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        size = numel * itemsize
        if info.file_size != size:
            raise CheckpointError(self._path, f"storage {key} holds {info.file_size} bytes, its tensor needs {size}")
        self._bytes_read += size
        if self._bytes_read > self._max_bytes:
            raise CheckpointError(self._path, f"tensors exceed the {self._max_bytes} byte limit")
        data = bytearray(self._archive.read(info)) if size else bytearray()
        if not size:
            flat = torch.empty((0,), dtype=dtype)
        else:
            flat = torch.frombuffer(data, dtype=torch.uint8)
            if self._big_endian and itemsize > 1:
                flat = flat.view(-1, itemsize).flip(-1).reshape(-1).clone()
            flat = flat.view(dtype)
        return torch.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True)


def find_data_pickle(archive: zipfile.ZipFile, path: str | os.PathLike) -> str:
    """The one ``<folder>/data.pkl`` entry of a torch archive (its folder is named after the saved file)."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(path, f"zip archive has more than {MAX_ENTRIES} entries")
    found = [i.filename for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
    if len(found) != 1:
        names = ", ".join(_printable(i.filename)[:40] for i in infos[:3]) or "nothing"
        what = "no" if not found else "several"
        raise CheckpointError(path, f"a zip archive with {what} '<folder>/data.pkl', not a torch checkpoint (holds {names})")
    return found[0]


_ZIP_ERRORS = (zipfile.BadZipFile, UnicodeDecodeError, NotImplementedError, ValueError, EOFError)
"""What ``zipfile`` raises for a damaged central directory: bad magic, names that are not UTF-8 (with
the UTF-8 flag set), an unsupported "version needed", sizes that do not add up."""


def is_torch_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip archive with one ``<folder>/data.pkl`` (what ``torch.save`` writes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            find_data_pickle(archive, path)
        return True
    except (OSError, CheckpointError, *_ZIP_ERRORS):
        return False


def read_torch_zip(path: str | os.PathLike, *, extra_plain_classes: Iterable[str] = (),
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Unpickle a ``torch.save`` archive into inert records (no code from the file runs).

    Modules and other allow-listed objects come back as :class:`~models.eg3d_pickle.InertObject`
    (read them with :func:`module_state`), tensors as plain CPU tensors whatever device their
    storages were tagged with.

    Raises:
        UnsafePickleError: a global outside the allow-list (the message names the file and the global).
        CheckpointError: anything else that is not a readable archive (one line naming the file).
    """
    plain = TORCH_ZIP_PLAIN_CLASSES | frozenset(extra_plain_classes)
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise CheckpointError(path, f"cannot open file: {exc.strerror or _one_line(exc)}") from None
    except _ZIP_ERRORS as exc:
        raise CheckpointError(path, f"not a readable zip archive: {type(exc).__name__}: {_one_line(exc)}") from None
    with archive:
        entry = find_data_pickle(archive, path)
        prefix = entry[: -len("data.pkl")]
        info = archive.getinfo(entry)
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(path, f"its pickle is {info.file_size} bytes, over the {MAX_PICKLE_BYTES} byte limit")
        try:
            big_endian = False
            if f"{prefix}byteorder" in archive.namelist():
                order = archive.read(f"{prefix}byteorder")[:16].strip()
                if order not in (b"little", b"big"):
                    raise CheckpointError(path, "archive names an unknown byte order")
                big_endian = order == b"big"
            data = archive.read(info)
            return _TorchZipUnpickler(io.BytesIO(data), os.fspath(path), plain, archive, prefix, max_bytes,
                                      big_endian).load()
        except CheckpointError:
            raise
        except _ZIP_ERRORS as exc:
            raise CheckpointError(path, f"archive is truncated or corrupt: {_one_line(exc)}") from None
        except pickle.UnpicklingError as exc:
            raise CheckpointError(path, f"not a valid pickle: {_one_line(exc)}") from None
        except Exception as exc:  # malformed opcodes/arguments surface as many exception types
            raise CheckpointError(path, f"malformed pickle: {type(exc).__name__}: {_one_line(exc)}") from None


def module_state(obj: Any, path: str | os.PathLike, where: str = "<root>") -> dict[str, Any]:
    """The pickled ``__dict__`` of an inert module or object (``_parameters``, ``_modules``, attributes)."""
    if not isinstance(obj, InertObject):
        raise CheckpointError(path, f"'{_printable(where)[:120]}' is a {type(obj).__name__}, not a pickled object")
    return obj.dict_state


def module_parameters(obj: Any, path: str | os.PathLike, prefix: str = "", _depth: int = 0,
                      _seen: set[int] | None = None) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of a pickled module's parameters in ``nn.Module.parameters()`` order (own
    parameters first, then each child's; a module or tensor shared by two parents counted once, as
    ``named_modules`` does, which also keeps the walk linear in the file's size)."""
    seen = set() if _seen is None else _seen
    if _depth > 100:
        raise CheckpointError(path, f"module '{_printable(prefix)[:120]}' is nested too deeply")
    seen.add(id(obj))
    state = module_state(obj, path, prefix[:-1] or "<root>")
    out: list[tuple[str, torch.Tensor]] = []
    params, children = state.get("_parameters") or {}, state.get("_modules") or {}
    if not isinstance(params, dict) or not isinstance(children, dict):
        raise CheckpointError(path, f"module '{_printable(prefix[:-1])[:120]}' has malformed parameters or submodules")
    for name, tensor in params.items():
        if tensor is None:
            continue
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(path, f"'{_printable(prefix + str(name))[:120]}' is not a tensor")
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out.append((f"{prefix}{name}", tensor))
    for name, child in children.items():
        if child is not None and id(child) not in seen:
            out.extend(module_parameters(child, path, f"{prefix}{name}.", _depth + 1, seen))
    return out
