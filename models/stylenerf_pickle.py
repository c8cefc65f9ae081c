"""Read StyleNeRF's network pickles (``ffhq_{256,512,1024}.pkl``) without running them.

They are EG3D-style persistence pickles (``torch_utils.persistence``, read by
:mod:`models.eg3d_pickle`'s machinery) whose generator ``init_kwargs`` hold omegaconf nodes
(``DictConfig`` / ``ListConfig`` / ``AnyNode`` with unresolved ``${...}`` interpolations and a
parent chain to the pickled training config), as EpiGRAF's ``cfg`` does: the nodes are the inert
records and the resolver of :mod:`models.epigraf_pickle`; omegaconf is never imported and the
embedded module source never runs. The allow-list is EG3D's plus those records, ``ModuleList`` and
the builtins omegaconf's metadata names, so it also reads every EG3D pickle.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import torch

from models.eg3d_pickle import PersistentRecord, _collect_tensors, _printable, _SafeUnpickler, read_network_pickle
from models.epigraf_pickle import OMEGACONF_CLASSES, EpigrafUnpickler, TypingAny, omegaconf_to_plain
from models.errors import CheckpointError

STYLENERF_PLAIN_CLASSES: frozenset[str] = OMEGACONF_CLASSES | {"torch.nn.modules.container.ModuleList"}
"""Plain classes of a StyleNeRF pickle beyond EG3D's (inert records)."""


class StyleNeRFUnpickler(_SafeUnpickler):
    """EG3D's allow-list with the omegaconf records, ``ModuleList``, omegaconf's ``defaultdict(dict)``
    resolver cache and the builtins its metadata names as types (``typing.Any``, ``list``, ``int``)."""

    allow_list_name = "EG3D/StyleNeRF"

    def __init__(self, file: io.BufferedIOBase, path: str, plain_classes: frozenset[str]):
        super().__init__(file, path, plain_classes | STYLENERF_PLAIN_CLASSES)
        self._allowed.update({"typing.Any": TypingAny(), "collections.defaultdict": self._defaultdict,
                              "builtins.list": list, "builtins.int": int})

    _defaultdict = EpigrafUnpickler._defaultdict


def read_stylenerf_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """The pickle's top-level dict of inert records (see :func:`models.eg3d_pickle.read_network_pickle`)."""
    return read_network_pickle(path, unpickler=StyleNeRFUnpickler)


def load_stylenerf_generator_record(path: str | os.PathLike, data: dict[str, Any], key: str = "G_ema"
                                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(``init_kwargs`` as resolved plain data, the state dict) of the pickle's ``key`` network; each
    omegaconf node among the kwargs resolves against the top of its own parent chain.

    Raises:
        CheckpointError: not a persistent network with readable kwargs.
    """
    record = data.get(key)
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(path, f"no persistent '{key}' network in the pickle")
    kwargs = record.state.get("_init_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(path, f"'{key}' init kwargs are not a dict")
    try:
        plain = {str(k): omegaconf_to_plain(v) for k, v in kwargs.items()}
    except CheckpointError as e:
        raise CheckpointError(path, f"'{key}' init kwargs: {e.problem}") from None
    except (pickle.UnpicklingError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"'{key}' init kwargs are not readable ({type(e).__name__}: "
                                    f"{_printable(str(e))[:80]})") from None
    state_dict: dict[str, torch.Tensor] = {}
    _collect_tensors(record, "", state_dict, path, active=set(), visits=[0])
    return plain, state_dict
