"""Read official NVlabs EG3D network pickles (``network-snapshot-*.pkl``) without running their code.

EG3D saves its networks with ``torch_utils.persistence``: every persistent module is stored as a
call to ``_reconstruct_persistent_obj(meta)`` whose ``meta`` carries the full Python source of the
module, and the official loader ``exec``s that source. This reader never does. It unpickles with an
allow-list: persistent objects become :class:`PersistentRecord`, the few plain classes a generator
uses become :class:`InertObject`, tensors are rebuilt by our own functions from storages that
``torch.load(weights_only=True)`` decodes, and any other global raises
:class:`~models.errors.UnsafePickleError` before it can be called.
"""

from __future__ import annotations

import _compat_pickle
import collections
import hashlib
import io
import os
import pickle
import pickletools
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from models.errors import CheckpointError, UnsafePickleError

__all__ = [
    "PLAIN_CLASSES",
    "EasyDict",
    "InertObject",
    "NumpyArrayRecord",
    "NumpyDTypeRecord",
    "PersistentRecord",
    "load_eg3d_pickle",
    "read_network_pickle",
]

#: Ordinary (non-persistent) classes found in EG3D generator pickles. They are never imported:
#: each becomes an :class:`InertObject` subclass that only records its pickled state.
PLAIN_CLASSES: frozenset[str] = frozenset(
    {
        "training.triplane.OSGDecoder",
        "training.volumetric_rendering.renderer.ImportanceRenderer",
        "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
        "training.volumetric_rendering.ray_sampler.RaySampler",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.activation.Softplus",
    }
)


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The name the stock unpickler would import for a global written as ``module.name``.

    Protocols 0-2 write some names the Python 2 way (``__builtin__.set``, ``commands.Popen``);
    the stock unpickler maps them only inside the default find_class, which we replace.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# Only simple numeric dtypes: object ('O') dtypes would let a scalar/array carry arbitrary objects.
_NUMPY_DTYPE_SPEC = re.compile(r"[biufc][0-9]{1,2}")

_TORCH_DTYPES: dict[str, torch.dtype] = {
    name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)
}


@dataclass(eq=False)  # states hold tensors, so field-wise == would be ambiguous
class PersistentRecord:
    """An inert ``torch_utils.persistence`` object: class name, format version and ``__dict__``.

    The module source is never kept, only its length and SHA-256, so it cannot be run later by
    accident either.
    """

    class_name: str
    version: int
    state: dict[str, Any]
    module_src_len: int = 0
    module_src_sha256: str = ""

    def __setstate__(self, state: Any) -> None:
        # A BUILD opcode aimed at a record would swap its checked fields for anything.
        raise pickle.UnpicklingError("a BUILD opcode tries to replace a persistent object's checked state")


class InertObject:
    """An instance of an allow-listed plain class, kept as data (constructor args and state).

    Each allowed qualified name gets its own subclass (see :func:`_inert_class`), so the pickle's
    NEWOBJ / REDUCE / BUILD opcodes work on it without any code of the original class.
    """

    qualified_name: ClassVar[str] = ""

    def __new__(cls, *args: Any) -> InertObject:
        self = super().__new__(cls)
        self.new_args = args
        self.state = None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # These two make copy.deepcopy reproduce the record instead of nesting its attributes.
    def __getnewargs__(self) -> tuple:
        return self.new_args

    def __getstate__(self) -> Any:
        return self.state

    def __repr__(self) -> str:
        return f"InertObject({self.qualified_name!r})"

    @property
    def dict_state(self) -> dict[str, Any]:
        """The instance ``__dict__`` from the pickled state ({} when there was none)."""
        state = self.state
        # BUILD states are either the __dict__ or a (__dict__, slots) pair.
        if isinstance(state, tuple) and len(state) == 2:
            state = state[0]
        return state if isinstance(state, dict) else {}


_INERT_CLASSES: dict[str, type[InertObject]] = {}


def _inert_class(qualified_name: str) -> type[InertObject]:
    """The cached :class:`InertObject` subclass standing for ``qualified_name``."""
    cls = _INERT_CLASSES.get(qualified_name)
    if cls is None:
        short = qualified_name.rsplit(".", 1)[-1]
        cls = type(f"Inert{short}", (InertObject,), {"qualified_name": qualified_name})
        _INERT_CLASSES[qualified_name] = cls
    return cls


class EasyDict(dict):
    """A dict with attribute access, standing in for ``dnnlib.util.EasyDict`` (no dnnlib code)."""

    def __getattr__(self, name: str) -> Any:
        # Dunder lookups (copy's __deepcopy__, ...) must not find items a file put in the dict.
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:
        # Real EasyDicts keep everything in items; a BUILD state, if any, is treated the same way.
        if state is None:
            return
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("EasyDict state is not a dict")
        self.update(state)


class NumpyDTypeRecord:
    """A simple numeric ``numpy.dtype`` rebuilt from ``numpy.dtype(spec)`` plus its BUILD state."""

    def __init__(self, spec: str) -> None:
        if not _NUMPY_DTYPE_SPEC.fullmatch(spec):  # also checked, with the path, by the unpickler
            raise pickle.UnpicklingError(f"refusing numpy dtype {spec!r}")
        self.value: np.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]);
        # sub-arrays and fields are refused because they could smuggle object dtypes in.
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise pickle.UnpicklingError("malformed numpy dtype state")
        order = state[1]
        if order not in ("<", ">", "|", "=") or any(x is not None for x in state[2:5]):
            raise pickle.UnpicklingError("refusing structured or sub-array numpy dtype")
        if order in ("<", ">"):
            self.value = self.value.newbyteorder(order)

    def __repr__(self) -> str:
        return f"NumpyDTypeRecord({self.value!r})"


class _NumpyNDArrayMarker:
    """What ``numpy.ndarray`` resolves to: only usable as the first argument of ``_reconstruct``."""


class NumpyArrayRecord:
    """A numeric numpy array rebuilt from ``_reconstruct(ndarray, ...)`` plus its BUILD state."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, NumpyDTypeRecord):
            raise pickle.UnpicklingError("numpy array without a numeric dtype")
        if not isinstance(raw, (bytes, bytearray)):
            # A list here would be an object array's elements.
            raise pickle.UnpicklingError("refusing numpy array that is not raw numeric data")
        if not isinstance(shape, tuple) or not all(_is_int(n) and n >= 0 for n in shape):
            raise pickle.UnpicklingError("malformed numpy array shape")
        flat = np.frombuffer(bytes(raw), dtype=dtype.value)
        self.value = flat.reshape(shape, order="F" if fortran else "C").copy()

    def __repr__(self) -> str:
        return f"NumpyArrayRecord({self.value!r})"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so names from a hostile file cannot break lines."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    """First line of an exception message, shortened: CheckpointError messages stay one line."""
    lines = str(exc).strip().splitlines()
    line = _printable(lines[0]) if lines else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class OpcodeLimits:
    """Bounds :func:`check_opcodes` puts on a pickle stream before it is unpickled."""

    max_opcodes: int = 20_000_000
    """Opcodes in the stream (each makes at most one object)."""
    max_marks: int = 1_000
    """Open MARKs at once (nesting of tuples, lists, dicts being built)."""
    max_globals: int = 10_000
    """GLOBAL / STACK_GLOBAL opcodes (names to resolve)."""


def check_opcodes(file: io.BufferedIOBase, path: str | os.PathLike, limits: OpcodeLimits = OpcodeLimits()) -> None:
    """Walk a pickle stream's opcodes without building anything and refuse what a real pickle never holds.

    The C unpickler sizes its memo to the largest index a PUT names: ``b'\\x80\\x02]r\\xff\\xff\\xff\\x0f.'``
    (9 bytes) makes it allocate 2**28 entries (4 GB). Picklers number memo entries 0, 1, 2, ... in
    order, so an index may not exceed the number of opcodes read so far; nesting, opcode and global
    counts are bounded by ``limits``. Linear in the stream; raises CheckpointError naming the file.
    """
    count = marks = globals_ = 0
    try:
        for opcode, arg, _ in pickletools.genops(file):
            count += 1
            if count > limits.max_opcodes:
                raise CheckpointError(path, f"pickle has more than {limits.max_opcodes} opcodes")
            name = opcode.name
            if name in _MEMO_OPCODES and isinstance(arg, int) and arg > count:
                raise CheckpointError(path, f"pickle names memo entry {arg} after {count} opcodes (a real pickle "
                                            "never does; it would make the unpickler allocate a huge memo)")
            if name == "MARK":
                marks += 1
                if marks > limits.max_marks:
                    raise CheckpointError(path, f"pickle nests more than {limits.max_marks} levels")
            elif name in _MARK_CLOSING_OPCODES:
                marks = max(0, marks - 1)
            elif name in ("GLOBAL", "STACK_GLOBAL", "INST"):
                globals_ += 1
                if globals_ > limits.max_globals:
                    raise CheckpointError(path, f"pickle names more than {limits.max_globals} globals")
    except CheckpointError:
        raise
    except Exception as exc:  # pickletools reports malformed or truncated streams as ValueError and others
        raise CheckpointError(path, f"not a valid pickle: {type(exc).__name__}: {_one_line(exc)}") from None


_MEMO_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
_MARK_CLOSING_OPCODES = frozenset({"TUPLE", "LIST", "DICT", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET", "INST",
                                   "OBJ", "POP_MARK"})


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals, each to an inert or safe replacement."""

    allow_list_name: ClassVar[str] = "EG3D"

    def __init__(self, file: io.BufferedIOBase, path: str, plain_classes: frozenset[str]):
        super().__init__(file)
        self._file = file
        self._path = path
        self._plain_classes = plain_classes
        self._allowed: dict[str, Any] = {
            "torch_utils.persistence._reconstruct_persistent_obj": self._persistent_obj,
            "collections.OrderedDict": collections.OrderedDict,
            "torch._utils._rebuild_tensor": self._rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": self._rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": self._rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": self._rebuild_parameter_with_state,
            "torch.storage._load_from_bytes": self._load_from_bytes,
            "dnnlib.util.EasyDict": EasyDict,
            "numpy.dtype": self._numpy_dtype,
            "numpy.ndarray": _NumpyNDArrayMarker,
            "numpy._core.multiarray.scalar": self._numpy_scalar,
            "numpy.core.multiarray.scalar": self._numpy_scalar,
            "numpy._core.multiarray._reconstruct": self._numpy_reconstruct,
            "numpy.core.multiarray._reconstruct": self._numpy_reconstruct,
            "_codecs.encode": self._codecs_encode,
            "copyreg._reconstructor": self._reconstructor,
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            # Only needed as the `base` argument of copyreg._reconstructor (protocols 0 and 1).
            "builtins.object": object,
            "builtins.dict": dict,
        }

    def load(self) -> Any:
        """Unpickle, after :func:`check_opcodes` has bounded what the stream can make the unpickler do."""
        start = self._file.tell()
        check_opcodes(self._file, self._path)
        self._file.seek(start)
        return super().load()

    # --- resolution -------------------------------------------------------------------------

    def find_class(self, module: str, name: str) -> Any:
        written = f"{module}.{name}"
        module, name = _python3_name(module, name)
        qualified = f"{module}.{name}"
        target = self._allowed.get(qualified)
        if target is not None:
            return target
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        if qualified in self._plain_classes:
            return _inert_class(qualified)
        spelled = f" (written as '{_printable(written)}')" if written != qualified else ""
        raise UnsafePickleError(
            self._path,
            f"refusing global '{_printable(qualified)}'{spelled}: not on the {self.allow_list_name} allow-list "
            "(nothing was executed)",
        )

    def persistent_load(self, pid: Any) -> Any:
        # Plain pickle.dump of EG3D networks never emits persistent ids (only torch.save does).
        raise UnsafePickleError(self._path, f"refusing persistent id {pid!r:.80}")

    # --- persistence ------------------------------------------------------------------------

    def _persistent_obj(self, meta: Any) -> PersistentRecord:
        if not isinstance(meta, dict):
            raise CheckpointError(self._path, "persistent object without a meta dict")
        src, name, state = meta.get("module_src"), meta.get("class_name"), meta.get("state")
        version = meta.get("version")
        if meta.get("type") != "class":
            raise CheckpointError(self._path, f"unsupported persistent object type {meta.get('type')!r:.40}")
        if not isinstance(src, str) or not isinstance(name, str) or not _is_int(version):
            raise CheckpointError(self._path, "persistent object with malformed meta")
        if state is None:
            state = {}
        if not isinstance(state, dict):
            raise CheckpointError(self._path, f"persistent object {name!r:.60} has a non-dict state")
        digest = hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()
        return PersistentRecord(name, version, state, len(src), digest)

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        # copyreg._reconstructor is how protocols 0/1 create plain instances and dict subclasses.
        if isinstance(cls, type) and issubclass(cls, InertObject) and base is object and state is None:
            return cls.__new__(cls)
        if cls is EasyDict and base is dict and isinstance(state, dict):
            return EasyDict(state)
        raise CheckpointError(self._path, "unsupported copyreg._reconstructor call")

    # --- tensors ----------------------------------------------------------------------------

    def _load_from_bytes(self, data: Any) -> torch.TypedStorage | torch.UntypedStorage:
        if not isinstance(data, (bytes, bytearray)):
            raise CheckpointError(self._path, "tensor storage payload is not bytes")
        # torch's own _load_from_bytes uses weights_only=False; the restricted loader refuses globals.
        try:
            with warnings.catch_warnings():
                # Corrupt payloads make torch warn about odd protocols before it fails; we raise instead.
                warnings.simplefilter("ignore", UserWarning)
                storage = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            # torch wraps every failure in a long multi-line text; keep its one informative line.
            found = re.search(r"WeightsUnpickler error: *([^\n]*)", str(exc))
            reason = _one_line(found.group(1) if found else str(exc), 200)
            if "GLOBAL" in reason or "allowlisted" in reason:
                raise UnsafePickleError(
                    self._path, f"tensor storage payload rejected by torch.load(weights_only=True): {reason}"
                ) from None
            raise CheckpointError(
                self._path, f"corrupt tensor storage payload (torch.load(weights_only=True): {reason})"
            ) from None
        except Exception as exc:
            raise CheckpointError(
                self._path, f"unreadable tensor storage payload: {type(exc).__name__}: {_one_line(exc, 200)}"
            ) from None
        if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
            raise CheckpointError(self._path, f"tensor storage payload holds a {type(storage).__name__}")
        return storage

    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, dtype: torch.dtype | None) -> torch.Tensor:
        """A plain CPU tensor viewing ``storage`` (bounds are checked by ``Tensor.set_``)."""
        if isinstance(storage, torch.TypedStorage):
            untyped, dtype = storage._untyped_storage, storage.dtype
        elif isinstance(storage, torch.UntypedStorage) and isinstance(dtype, torch.dtype):
            untyped = storage
        else:
            raise CheckpointError(self._path, "tensor rebuilt from something that is not a storage")
        if not (
            _is_int(offset)
            and isinstance(size, (tuple, list))
            and isinstance(stride, (tuple, list))
            and len(size) == len(stride)
            and all(_is_int(n) for n in (*size, *stride))
        ):
            raise CheckpointError(self._path, "tensor with malformed offset/size/stride")
        try:
            return torch.empty((0,), dtype=dtype).set_(untyped, offset, tuple(size), tuple(stride))
        except RuntimeError as exc:
            raise CheckpointError(self._path, f"tensor does not fit its storage: {_one_line(exc, 200)}") from None

    def _apply_metadata(self, tensor: torch.Tensor, metadata: Any) -> torch.Tensor:
        # Metadata is only the conj/neg bits; anything else is not something torch writes.
        if metadata:
            if not isinstance(metadata, dict) or not all(
                k in ("conj", "neg") and isinstance(v, bool) for k, v in metadata.items()
            ):
                raise CheckpointError(self._path, "tensor with unexpected metadata")
            torch._utils.set_tensor_metadata(tensor, metadata)
        return tensor

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
        return self._tensor(storage, offset, size, stride, None)

    def _rebuild_tensor_v2(
        self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
        backward_hooks: Any = None, metadata: Any = None,
    ) -> torch.Tensor:
        # requires_grad and hooks are training-time state; viewers get plain leaf tensors.
        return self._apply_metadata(self._tensor(storage, offset, size, stride, None), metadata)

    def _rebuild_tensor_v3(
        self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any,
        backward_hooks: Any, dtype: Any, metadata: Any = None,
    ) -> torch.Tensor:
        return self._apply_metadata(self._tensor(storage, offset, size, stride, dtype), metadata)

    def _rebuild_parameter(self, data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
        if not isinstance(data, torch.Tensor):
            raise CheckpointError(self._path, "parameter rebuilt from something that is not a tensor")
        return data

    def _rebuild_parameter_with_state(
        self, data: Any, requires_grad: Any, backward_hooks: Any, state: Any
    ) -> torch.Tensor:
        # Python attributes set on a Parameter are dropped: the state dict only needs the values.
        return self._rebuild_parameter(data)

    # --- numpy and codecs -------------------------------------------------------------------

    def _numpy_dtype(self, spec: Any, align: Any = False, copy: Any = True) -> NumpyDTypeRecord:
        if not isinstance(spec, str) or not _NUMPY_DTYPE_SPEC.fullmatch(spec):
            raise UnsafePickleError(self._path, f"refusing numpy dtype {spec!r:.40}: only numeric dtypes are allowed")
        return NumpyDTypeRecord(spec)

    def _numpy_scalar(self, dtype: Any, data: Any = None) -> np.generic:
        if not isinstance(dtype, NumpyDTypeRecord) or not isinstance(data, (bytes, bytearray)):
            raise CheckpointError(self._path, "refusing numpy scalar that is not raw numeric data")
        if len(data) != dtype.value.itemsize:
            raise CheckpointError(self._path, "numpy scalar with the wrong number of bytes")
        return np.frombuffer(bytes(data), dtype=dtype.value)[0]

    def _numpy_reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> NumpyArrayRecord:
        if subtype is not _NumpyNDArrayMarker:
            raise CheckpointError(self._path, "refusing numpy array of a subclass other than ndarray")
        return NumpyArrayRecord()

    def _codecs_encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        # Protocols < 3 store bytes as _codecs.encode(str, 'latin1').
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise CheckpointError(self._path, "unexpected _codecs.encode call")
        return text.encode("latin-1")


def read_network_pickle(
    path: str | os.PathLike, *, extra_plain_classes: Iterable[str] = (),
    unpickler: type[_SafeUnpickler] | None = None,
) -> dict[str, Any]:
    """Unpickle an EG3D ``network-snapshot-*.pkl`` into its top-level dict of inert records.

    ``G``, ``D`` and ``G_ema`` come back as :class:`PersistentRecord`; ``extra_plain_classes`` adds
    qualified class names to :data:`PLAIN_CLASSES` for forks that use other plain modules;
    ``unpickler``: a :class:`_SafeUnpickler` subclass with a fork's allow-list (EpiGRAF's).
    Raises :class:`UnsafePickleError` for any global not on the allow-list and
    :class:`CheckpointError` for anything else that is not a readable network pickle.
    """
    plain = PLAIN_CLASSES | frozenset(extra_plain_classes)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise CheckpointError(path, f"cannot open file: {exc.strerror or _one_line(exc)}") from None
    with f:
        head = f.read(4)
        if not head:
            raise CheckpointError(path, "file is empty")
        if head.startswith(b"PK\x03\x04"):
            raise CheckpointError(path, "this is a zip archive (a torch.save checkpoint?), not a network pickle")
        f.seek(0)
        try:
            data = (unpickler or _SafeUnpickler)(f, os.fspath(path), plain).load()
        except CheckpointError:
            raise
        except EOFError:
            raise CheckpointError(path, "file is truncated: the pickle data ends early") from None
        except pickle.UnpicklingError as exc:
            if "truncated" in str(exc):
                raise CheckpointError(path, "file is truncated: the pickle data ends early") from None
            raise CheckpointError(path, f"not a valid pickle: {_one_line(exc)}") from None
        except Exception as exc:  # malformed opcodes/arguments surface as many exception types
            raise CheckpointError(path, f"malformed pickle: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            path, f"top-level object is a {type(data).__name__}, expected the dict of an EG3D network pickle"
        )
    return data


def load_eg3d_pickle(
    path: str | os.PathLike, key: str = "G_ema", *, extra_plain_classes: Iterable[str] = (),
    data: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """Extract one network from an EG3D pickle as ``(class_name, init_kwargs, state_dict, attributes)``.

    ``init_kwargs`` is the network's ``_init_kwargs`` as plain Python data; ``state_dict`` is named
    exactly like ``nn.Module.state_dict()`` of the original; ``attributes`` holds the other
    plain-data attributes of the network (``rendering_kwargs``, ``z_dim``,
    ``neural_rendering_resolution``, ...), plus ``init_args`` when positional args were pickled.
    ``data``: the file's top-level dict if :func:`read_network_pickle` already read it.
    """
    if data is None:
        data = read_network_pickle(path, extra_plain_classes=extra_plain_classes)
    if key not in data:
        keys = _printable(", ".join(sorted(map(str, data))))[:200] or "none"
        raise CheckpointError(path, f"no '{key}' network in the pickle (keys: {keys})")
    record = data[key]
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(path, f"'{key}' is a {_describe(record)}, not a persistent network")
    state = record.state

    try:
        init_kwargs = _to_plain(state.get("_init_kwargs", {}))
    except _NotPlain as exc:
        raise CheckpointError(path, f"'{key}' init kwargs hold non-plain data ({exc})") from None
    if not isinstance(init_kwargs, dict):
        raise CheckpointError(path, f"'{key}' init kwargs are not a dict")

    state_dict: dict[str, torch.Tensor] = {}
    _collect_tensors(record, "", state_dict, path, active=set(), visits=[0])

    attributes: dict[str, Any] = {}
    for name, value in state.items():
        # Underscored names are nn.Module / persistence internals; `training` is a mode flag.
        if not isinstance(name, str) or name.startswith("_") or name == "training":
            continue
        try:
            attributes[name] = _to_plain(value)
        except _NotPlain:
            continue  # tensors, submodules and other non-plain attributes are not configuration
    init_args = state.get("_init_args")
    if init_args:
        try:
            attributes["init_args"] = _to_plain(init_args)
        except _NotPlain as exc:
            raise CheckpointError(path, f"'{key}' init args hold non-plain data ({exc})") from None
    return record.class_name, init_kwargs, state_dict, attributes


def _describe(obj: Any) -> str:
    """A short, printable description of a pickled object for error messages."""
    if isinstance(obj, PersistentRecord):
        return _printable(f"persistent {obj.class_name}"[:80])
    if isinstance(obj, InertObject):
        return obj.qualified_name
    return type(obj).__name__


def _module_state(obj: Any) -> dict[str, Any] | None:
    """The ``__dict__`` of a pickled module (persistent or plain), or None if ``obj`` is neither."""
    if isinstance(obj, PersistentRecord):
        return obj.state
    if isinstance(obj, InertObject):
        return obj.dict_state
    return None


def _collect_tensors(
    obj: Any, prefix: str, out: dict[str, torch.Tensor], path: str | os.PathLike, active: set[int], visits: list[int]
) -> None:
    """Add ``obj``'s tensors to ``out`` in ``nn.Module.state_dict()`` order and naming.

    A shared module appears under each of its names, as in ``state_dict()``; ``visits`` counts the
    modules walked, so sharing nested many levels deep (exponentially many names from a small file)
    is refused after :data:`_MAX_MODULE_VISITS` instead of being walked."""
    where = _printable(prefix[:-1])[:200] or "<root>"
    state = _module_state(obj)
    if state is None:
        raise CheckpointError(path, f"submodule '{where}' is a {_describe(obj)}, not a module")
    if id(obj) in active:  # a shared module is fine, a cycle would recurse forever
        raise CheckpointError(path, f"submodule '{where}' contains itself")
    if len(active) >= _MAX_DEPTH:
        raise CheckpointError(path, f"submodule '{where}' is nested too deeply")
    visits[0] += 1
    if visits[0] > _MAX_MODULE_VISITS:
        raise CheckpointError(path, f"more than {_MAX_MODULE_VISITS} submodules (shared modules nested "
                                    "many levels deep?)")
    active.add(id(obj))

    def entries(attr: str) -> Mapping[str, Any]:
        value = state.get(attr, {})
        if not isinstance(value, Mapping):
            raise CheckpointError(path, f"'{where}' has a malformed {attr}")
        return value

    non_persistent = state.get("_non_persistent_buffers_set") or set()
    if not isinstance(non_persistent, (set, frozenset, list, tuple)):
        raise CheckpointError(path, f"'{where}' has a malformed _non_persistent_buffers_set")
    for attr in ("_parameters", "_buffers"):
        for name, tensor in entries(attr).items():
            if tensor is None or (attr == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                label = _printable(f"{prefix}{name}")[:200]
                raise CheckpointError(path, f"'{label}' is a {_describe(tensor)}, not a tensor")
            out[f"{prefix}{name}"] = tensor
    for name, child in entries("_modules").items():
        if child is not None:
            _collect_tensors(child, f"{prefix}{name}.", out, path, active, visits)
    active.discard(id(obj))


# Deepest module tree / config nesting we follow; real EG3D trees are under 10 levels deep.
_MAX_DEPTH = 100
# Most modules walked (counting a shared one under each name) and most values in one converted
# configuration (counting shared containers each time they appear); ffhq512's G_ema has about 300
# modules and configurations of a few hundred values.
_MAX_MODULE_VISITS = 100_000
_MAX_PLAIN_VALUES = 100_000

_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)


class _NotPlain(Exception):
    """Raised by :func:`_to_plain` for a value that is not plain configuration data."""


def _to_plain(value: Any) -> Any:
    """Convert pickled configuration data to plain Python (dicts, lists, tuples, scalars).

    Each pickled container is converted once (a container shared by many parents is converted to
    one shared result), and the size the data would have written out in full is bounded by
    :data:`_MAX_PLAIN_VALUES`: a "billion laughs" of shared containers stops here, in time linear
    in the file, rather than in whatever later reads or saves the configuration."""
    return _Plainer().convert(value, 0)[0]


class _Plainer:
    """One conversion: id of each container converted -> (result, size written out in full)."""

    def __init__(self) -> None:
        self.memo: dict[int, tuple[Any, int]] = {}

    def convert(self, value: Any, depth: int) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:  # also stops self-referencing containers
            raise _NotPlain("data nested too deeply")
        # Exact types only: subclasses such as numpy.float64 (a float) are converted below.
        if type(value) in _PLAIN_SCALARS:
            return value, 1
        if isinstance(value, np.generic):
            return value.item(), 1
        if isinstance(value, NumpyDTypeRecord):
            return str(value.value), 1
        if isinstance(value, NumpyArrayRecord) and value.value is not None:
            if value.value.size > _MAX_PLAIN_VALUES:
                raise _NotPlain(f"array of {value.value.size} values")
            return value.value.tolist(), 1 + value.value.size
        if isinstance(value, torch.dtype):
            return str(value), 1
        if not isinstance(value, (dict, list, tuple, set, frozenset)):
            raise _NotPlain(_describe(value))
        done = self.memo.get(id(value))
        if done is not None:
            return done
        try:
            if isinstance(value, dict):
                pairs = [(self.convert(k, depth + 1), self.convert(v, depth + 1)) for k, v in value.items()]
                result: Any = {k: v for (k, _), (v, _) in pairs}
                size = 1 + sum(a + b for (_, a), (_, b) in pairs)
            else:
                items = [self.convert(v, depth + 1) for v in value]
                result = _rebuild_as(value)([v for v, _ in items])
                size = 1 + sum(n for _, n in items)
        except TypeError as exc:  # e.g. a key that converts to an unhashable list
            raise _NotPlain(_one_line(exc, 80)) from None
        if size > _MAX_PLAIN_VALUES:
            raise _NotPlain(f"more than {_MAX_PLAIN_VALUES} values when written out (shared containers nested "
                            "many levels deep?)")
        self.memo[id(value)] = (result, size)
        return result, size


def _rebuild_as(value: list | tuple | set | frozenset) -> Any:
    """The constructor that rebuilds a converted container of ``value``'s type."""
    return list if isinstance(value, list) else tuple if isinstance(value, tuple) else type(value)
