"""Read EpiGRAF's network snapshots (``network-snapshot-*.pkl``, the released ``model.pkl``) without running them.

They are StyleGAN-style persistence pickles like EG3D's (read by :mod:`models.eg3d_pickle`'s
machinery), with three differences: module paths carry a ``src.`` prefix, the snapshot also holds
Adam optimisers, a visualisation grid and stats, and every network's ``cfg`` is an omegaconf node
(``DictConfig`` / ``ListConfig`` / ``AnyNode`` with unresolved ``${...}`` interpolations) whose
parent chain reaches the pickled experiment root. omegaconf is never imported: its classes are
inert records (:class:`~models.eg3d_pickle.InertObject`), and :func:`omegaconf_to_plain` resolves
``${a.b}`` interpolations against the pickled root itself.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
from typing import Any

from models.eg3d_pickle import (
    _MAX_DEPTH,
    _MAX_PLAIN_VALUES,
    EasyDict,
    InertObject,
    PersistentRecord,
    _collect_tensors,
    _printable,
    _SafeUnpickler,
    _to_plain,
    read_network_pickle,
)
from models.errors import CheckpointError, UnsafePickleError

PERSISTENCE_GLOBAL = "_reconstruct_persistent_obj"
"""The persistence function every StyleGAN-style network pickle calls (its module tells the forks apart)."""
EPIGRAF_PERSISTENCE = "src.torch_utils.persistence"
"""EpiGRAF's persistence module (EG3D's and StyleNeRF's have no ``src.`` prefix)."""

OMEGACONF_CLASSES: frozenset[str] = frozenset({
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.nodes.AnyNode",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
})
"""omegaconf 2.0 classes in the configs (kept as inert records, never imported)."""

EPIGRAF_PLAIN_CLASSES: frozenset[str] = OMEGACONF_CLASSES | {
    "torch.nn.modules.sparse.Embedding",  # D's class mapping
    "torch.optim.adam.Adam",  # G_opt, D_opt
}
"""Plain classes of an EpiGRAF snapshot beyond EG3D's (inert records)."""


class TypingAny:
    """Stands for ``typing.Any`` (omegaconf's default ``ref_type``), which is only ever a marker."""

    def __repr__(self) -> str:
        return "typing.Any"


class EpigrafUnpickler(_SafeUnpickler):
    """EG3D's allow-list with EpiGRAF's ``src.``-prefixed persistence and EasyDict, the omegaconf
    records, the optimisers' ``defaultdict(dict)`` state, and the builtins omegaconf metadata names."""

    allow_list_name = "EpiGRAF"

    def __init__(self, file: io.BufferedIOBase, path: str, plain_classes: frozenset[str]):
        super().__init__(file, path, plain_classes | EPIGRAF_PLAIN_CLASSES)
        del self._allowed["torch_utils.persistence._reconstruct_persistent_obj"], self._allowed["dnnlib.util.EasyDict"]
        self._allowed.update({
            f"{EPIGRAF_PERSISTENCE}.{PERSISTENCE_GLOBAL}": self._persistent_obj,
            "src.dnnlib.util.EasyDict": EasyDict,
            "typing.Any": TypingAny(),
            "collections.defaultdict": self._defaultdict,
            "builtins.list": list,
            "builtins.int": int,
        })

    def _defaultdict(self, factory: Any = None) -> dict:
        # Only the factories omegaconf / torch.optim use; the items follow as SETITEMS.
        if factory not in (None, dict, list):
            raise UnsafePickleError(self._path, "refusing collections.defaultdict with a factory other than dict/list")
        return {}


def persistence_module(path: str | os.PathLike, max_ops: int = 100_000) -> str | None:
    """The module of the first ``*._reconstruct_persistent_obj`` global in a pickle, read from its
    opcodes without unpickling anything (None if there is none in the first ``max_ops`` opcodes or the
    file is not a readable pickle): which fork wrote a network pickle."""
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for count, (op, arg, _pos) in enumerate(pickletools.genops(f)):
                if count >= max_ops:
                    return None
                if isinstance(arg, str) and "UNICODE" in op.name:
                    strings = [*strings[-1:], arg]
                elif op.name == "GLOBAL" and isinstance(arg, str) and arg.endswith(" " + PERSISTENCE_GLOBAL):
                    return arg.split(" ")[0]
                elif op.name == "STACK_GLOBAL" and len(strings) == 2 and strings[1] == PERSISTENCE_GLOBAL:
                    return strings[0]
    except (OSError, ValueError, EOFError):
        return None
    return None


def read_epigraf_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """The snapshot dict of inert records (see :func:`models.eg3d_pickle.read_network_pickle`)."""
    return read_network_pickle(path, unpickler=EpigrafUnpickler)


# --- omegaconf ---------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")


class Unresolved(str):
    """An interpolation that cannot be resolved from the pickle (a resolver such as ``${env:X}``, a
    missing key): kept as its text."""


def _is(node: Any, short: str) -> bool:
    return isinstance(node, InertObject) and node.qualified_name.rsplit(".", 1)[-1] == short


def _root(node: Any) -> Any:
    for _ in range(_MAX_DEPTH):
        parent = node.dict_state.get("_parent") if isinstance(node, InertObject) else None
        if parent is None:
            return node
        node = parent
    raise CheckpointError("<omegaconf>", "config parent chain is too long")


def _select(root: Any, key: str) -> Any:
    node = root
    for part in key.split("."):
        content = node.dict_state.get("_content") if isinstance(node, InertObject) else None
        if isinstance(content, dict) and part in content:
            node = content[part]
        elif isinstance(content, list) and part.isdigit() and int(part) < len(content):
            node = content[int(part)]
        else:
            return None
    return node


def omegaconf_to_plain(node: Any, root: Any = None, depth: int = 0, budget: list[int] | None = None) -> Any:
    """An omegaconf record as plain Python data, ``${a.b}`` interpolations resolved against ``root``
    (default: the top of ``node``'s parent chain); what cannot be resolved stays :class:`Unresolved`.
    ``budget``: values left to convert (shared by the whole conversion), so shared nodes and
    interpolations that fan out exponentially stop after ``_MAX_PLAIN_VALUES``.

    Raises:
        CheckpointError: nesting or interpolation chains deeper than the reader follows, or too many values.
    """
    if depth > _MAX_DEPTH:
        raise CheckpointError("<omegaconf>", "config nested (or interpolated) too deeply")
    budget = [_MAX_PLAIN_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise CheckpointError("<omegaconf>", f"config has more than {_MAX_PLAIN_VALUES} values when resolved")
    root = _root(node) if root is None else root
    if _is(node, "DictConfig") or _is(node, "ListConfig"):
        content = node.dict_state.get("_content")
        if isinstance(content, dict):
            return {str(k): omegaconf_to_plain(v, root, depth + 1, budget) for k, v in content.items()}
        if isinstance(content, list):
            return [omegaconf_to_plain(v, root, depth + 1, budget) for v in content]
        return _resolve_value(content, root, depth, budget)
    if _is(node, "AnyNode"):
        return _resolve_value(node.dict_state.get("_val"), root, depth, budget)
    if isinstance(node, InertObject):
        raise CheckpointError("<omegaconf>", f"unexpected {node.qualified_name} in a config")
    if isinstance(node, dict):
        return {k: omegaconf_to_plain(v, root, depth + 1, budget) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(omegaconf_to_plain(v, root, depth + 1, budget) for v in node)
    return _resolve_value(node, root, depth, budget)


def _resolve_value(value: Any, root: Any, depth: int, budget: list[int]) -> Any:
    if not isinstance(value, str) or "${" not in value:
        try:
            return _to_plain(value)
        except Exception:
            return Unresolved(_printable(repr(value))[:80])
    whole = _INTERPOLATION.fullmatch(value)
    if whole:
        key = whole.group(1).strip()
        target = None if ":" in key else _select(root, key)
        return Unresolved(value) if target is None else omegaconf_to_plain(target, root, depth + 1, budget)

    def substitute(match: re.Match) -> str:
        key = match.group(1).strip()
        target = None if ":" in key else _select(root, key)
        resolved = None if target is None else omegaconf_to_plain(target, root, depth + 1, budget)
        if resolved is None or isinstance(resolved, (Unresolved, dict, list)):
            raise KeyError(key)
        return str(resolved)

    try:
        return _INTERPOLATION.sub(substitute, value)
    except KeyError:
        return Unresolved(value)


def load_epigraf_generator_record(path: str | os.PathLike, key: str = "G_ema"
                                  ) -> tuple[PersistentRecord, dict[str, Any], dict[str, Any]]:
    """(the generator record, its ``cfg`` as resolved plain data, its state dict) of an EpiGRAF snapshot.

    Raises:
        UnsafePickleError: a global off the allow-list (nothing was executed).
        CheckpointError: not an EpiGRAF generator snapshot.
    """
    data = read_epigraf_pickle(path)
    record = data.get(key)
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(path, f"no persistent '{key}' network in the pickle")
    if record.class_name != "Generator" or "cfg" not in record.state:
        raise CheckpointError(path, f"'{key}' is a {_printable(record.class_name)[:60]}, not an EpiGRAF Generator")
    try:
        cfg = omegaconf_to_plain(record.state["cfg"])
    except CheckpointError as e:
        raise CheckpointError(path, f"'{key}'.cfg: {e.problem}") from None
    except (pickle.UnpicklingError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"'{key}'.cfg is not a readable config ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(path, f"'{key}'.cfg is not a config dict")
    state_dict: dict[str, Any] = {}
    _collect_tensors(record, "", state_dict, path, active=set(), visits=[0])
    return record, cfg, state_dict
