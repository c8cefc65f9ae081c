"""A training run started by older code resumes exactly.

``tests/fixtures/legacy/eg3d-tiny-state-2steps.pt.xz`` is the training state that ``train.py fit``
wrote after two optimisation steps of the EG3D ``tiny`` preset (shrunk by ``--set`` overrides), and
``eg3d-tiny-state-step3.npz`` the G, G_ema and D weights after resuming it for exactly one more
step, both made by the code at commit 0da3b0e (before the EG3D generator refactor) with
``tests/fixtures/make_legacy_training_state.py``; ``eg3d-tiny-state.json`` records how.

The test resumes the stored state as a user would (``train.py fit --resume STATE``), runs one
step and compares the weights. The refactor renames the generator's parameters (``NAME_MAP``) and
reorders them, so Adam's per-index state must be reordered on resume: each reference tensor is
looked up under its old (official EG3D) name or its new one. Do not regenerate the fixtures to
make this pass: a failure means a run users already have would no longer resume exactly.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from training.loop import load_training_state

REPO_ROOT = Path(__file__).resolve().parents[1]
LEGACY_DIR = REPO_ROOT / "tests" / "fixtures" / "legacy"
STATE = LEGACY_DIR / "eg3d-tiny-state-2steps.pt.xz"
OPTIONS = LEGACY_DIR / "eg3d-tiny-state-2steps.training_options.json"
REFERENCE = LEGACY_DIR / "eg3d-tiny-state-step3.npz"
META = LEGACY_DIR / "eg3d-tiny-state.json"

NAME_MAP = (
    ("backbone.mapping.", "mapping_network."),
    ("backbone.synthesis.", "embedder.backbone."),
    ("decoder.net.", "decoder.net.net."),
    ("superresolution.", "upsampler."),
)
"""Old (official EG3D) parameter-name prefix -> the refactored generator's prefix."""

THREADS = 1
"""Torch CPU threads of the recording (the trainer's process and the dataset): the float results
depend on the thread count (one more step on two threads differs by up to 2.4e-7)."""
TOLERANCE = 0.0
"""Exact: on one thread, resuming is bit-deterministic on the recording code (two resumes, and an
uninterrupted three-step run, were all bit-identical; see the JSON's checks)."""

RESUME_KIMG = "0.012"
"""Three steps of 4 images: the state holds two, so exactly one more step."""


@pytest.fixture(autouse=True, scope="module")
def recording_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


def candidate_names(name: str) -> list[str]:
    """``name`` and its refactored spelling(s)."""
    return [name] + [new + name[len(old):] for old, new in NAME_MAP if name.startswith(old)]


def compare(reference: dict[str, np.ndarray], resumed: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """Problems found matching the reference ``net/name`` arrays with the resumed state dicts."""
    problems, worst = [], 0.0
    used: dict[str, set[str]] = {net: set() for net in resumed}
    for key in sorted(reference):
        net, name = key.split("/", 1)
        own = resumed[net]
        found = next((n for n in candidate_names(name) if n in own), None)
        if found is None:
            problems.append(f"{key}: not in the resumed {net} under {' or '.join(candidate_names(name))}")
            continue
        used[net].add(found)
        expected, actual = reference[key], own[found].detach().float().numpy()
        if expected.shape != actual.shape:
            problems.append(f"{key} ({found}): shape {actual.shape}, expected {expected.shape}")
            continue
        diff = float(np.abs(actual.astype(np.float64) - expected).max()) if expected.size else 0.0
        worst = max(worst, diff)
        if diff > TOLERANCE:
            problems.append(f"{key} ({found}): max |difference| {diff:.3g}")
    for net, own in resumed.items():
        extra = sorted(set(own) - used[net])
        if extra:
            problems.append(f"{net}: {len(extra)} tensor(s) with no reference: {', '.join(extra[:5])}")
    if problems:
        problems.append(f"(largest difference {worst:.3g}; tolerance {TOLERANCE})")
    return problems


def dataset_digest(path: Path) -> str:
    """sha256 over the zip's member names and contents, PNGs as decoded pixels (as the fixture
    script computes it)."""
    from PIL import Image

    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            h.update(name.encode() + b"\0")
            if name.endswith(".png"):
                with zf.open(name) as f:
                    pixels = np.asarray(Image.open(f).convert("RGB"))
                h.update(str(pixels.shape).encode() + pixels.tobytes())
            else:
                h.update(zf.read(name))
    return h.hexdigest()


def test_name_map_spells_the_refactored_names():
    assert candidate_names("backbone.mapping.fc0.weight") == ["backbone.mapping.fc0.weight", "mapping_network.fc0.weight"]
    assert candidate_names("backbone.synthesis.b4.conv1.weight")[1] == "embedder.backbone.b4.conv1.weight"
    assert candidate_names("decoder.net.0.bias")[1] == "decoder.net.net.0.bias"
    assert candidate_names("superresolution.block0.conv0.weight")[1] == "upsampler.block0.conv0.weight"
    assert candidate_names("b4.out.weight") == ["b4.out.weight"]  # D keeps its names


def test_legacy_training_state_resumes_exactly(tmp_path):
    from training.synthetic import write_synthetic_dataset

    meta = json.loads(META.read_text())

    # The training data, regenerated (deterministic content; the zip's timestamps are not).
    recipe = meta["dataset"]
    data = tmp_path / "heads16.zip"
    write_synthetic_dataset(data, recipe["kind"], recipe["count"], recipe["resolution"], seed=recipe["seed"],
                            geometry=recipe["geometry"])
    assert dataset_digest(data) == recipe["content_sha256"], (
        "training.synthetic no longer writes the dataset the legacy run trained on; the resume cannot be compared")

    # The legacy run directory: its training state after two steps and its options.
    run = tmp_path / "runs" / "00000-tiny-heads16-gpus1-batch4-gamma1"
    run.mkdir(parents=True)
    raw = lzma.decompress(STATE.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == meta["state"]["sha256"]
    state_path = run / meta["state"]["trainer_name"]
    state_path.write_bytes(raw)
    shutil.copy2(OPTIONS, run / "training_options.json")
    legacy = load_training_state(state_path)
    assert legacy["cur_nimg"] == 8 and legacy["batch_idx"] == 2
    assert "backbone.mapping.fc0.weight" in legacy["G"]  # written with the old names and order

    # Resume as a user would, for one step, on one thread.
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    cmd = [sys.executable, str(REPO_ROOT / "train.py"), "fit", "--data", str(data), "--outdir", str(tmp_path / "runs"),
           "--resume", str(state_path), "--kimg", RESUME_KIMG, "--tick", "0.004", "--snap", "1000",
           "--metrics", "none", "--workers", "0", "--device", "cpu", "--no-progress"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming {run} from {state_path.name} at 0.008 kimg" in result.stdout, result.stdout
    latest = json.loads((run / "latest").read_text())
    assert latest["kimg"] == pytest.approx(0.012)
    resumed = load_training_state(run / latest["state"])
    assert resumed["cur_nimg"] == 12 and resumed["batch_idx"] == 3

    with np.load(REFERENCE) as ref:
        reference = {k: ref[k] for k in ref.files}
    assert {k.split("/", 1)[0] for k in reference} == {"G", "G_ema", "D"}
    problems = compare(reference, {net: resumed[net] for net in ("G", "G_ema", "D")})
    shown = problems[:8] + [p for p in problems if not p.startswith("D/")][:12]  # G's too, not only D's
    assert not problems, "resumed legacy run differs from the reference:\n" + "\n".join(shown)
