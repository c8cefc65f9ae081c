"""Shared test fixtures: repository on sys.path and the read-only reference material in ../shared."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHARED_DIR = Path(os.environ.get("STUDIO_SHARED_DIR", REPO_ROOT.parent / "shared"))
REF128_DIR = SHARED_DIR / "fixtures" / "eg3d_ref128"
FFHQ512_STATE_DICT_TXT = SHARED_DIR / "fixtures" / "eg3d_ffhq512_state_dict.txt"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session", autouse=True)
def private_config_folder(tmp_path_factory):
    """The app's settings file (``app.settings``) goes to a fresh folder, never the user's: app
    sessions started by the tests (also as subprocesses) neither read nor change real settings."""
    folder = tmp_path_factory.mktemp("config")
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = saved


@pytest.fixture(autouse=True)
def fresh_config_folder(private_config_folder, tmp_path_factory, monkeypatch):
    """And a fresh one for each test, so no test starts with settings another test left."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


def require(path: Path) -> Path:
    """The reference file, or a test failure that says where it was looked for."""
    if not path.exists():
        pytest.fail(f"reference material missing: {path} (set STUDIO_SHARED_DIR to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def ref128_init_kwargs() -> dict:
    """Official TriPlaneGenerator constructor kwargs of the reference fixture."""
    return json.loads(require(REF128_DIR / "config.json").read_text())["init_kwargs"]


@pytest.fixture(scope="session")
def ref128_state_dict() -> dict[str, torch.Tensor]:
    """The reference generator's state dict under EG3D's parameter names."""
    weights = np.load(require(REF128_DIR / "weights.npz"))
    return {k: torch.from_numpy(weights[k]) for k in weights.files}


@pytest.fixture(scope="session")
def ref128_cases() -> dict[str, np.ndarray]:
    """Inputs and expected outputs of the three reference cases."""
    cases = np.load(require(REF128_DIR / "cases.npz"))
    return {k: cases[k] for k in cases.files}


@pytest.fixture(scope="session")
def ref128_generator(ref128_init_kwargs, ref128_state_dict):
    """Our generator built from the fixture config with the fixture weights, in eval mode."""
    from models.checkpoint import load_state_checked
    from models.eg3d import EG3DConfig
    from models.methods.eg3d import from_eg3d, official_to_pipeline_names
    from models.pipeline import PipelineGenerator

    G = PipelineGenerator(from_eg3d(EG3DConfig.from_official(ref128_init_kwargs)))
    load_state_checked(G, official_to_pipeline_names(ref128_state_dict), REF128_DIR / "weights.npz")
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def official_pickle(tmp_path_factory, ref128_generator, ref128_init_kwargs) -> Path:
    """The reference generator written with the byte layout of an official EG3D network snapshot."""
    from tests.eg3d_pickle_writer import official_layout_copy, write_eg3d_pickle

    path = tmp_path_factory.mktemp("pkl") / "network-snapshot-000000.pkl"
    tree, persistent, plain = official_layout_copy(ref128_generator)
    write_eg3d_pickle(path, tree, ref128_init_kwargs, persistent, plain)
    return path
