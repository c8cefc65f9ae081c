"""Data parallelism: a real 2-process gloo job under torchrun synchronises gradients and weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_average_gradients_and_stay_identical(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(REPO_ROOT / "tests" / "ddp_worker.py"),
           str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    steps = sorted(k for k in r0 if k.startswith("local"))
    assert len(steps) >= 4  # Gmain, Greg, Dmain, Dreg on the first step, Gmain and Dmain on the second
    for key in steps:
        n = key.removeprefix("local")
        # Each rank saw different data, so the local gradients differ...
        assert not torch.allclose(r0[key], r1[key])
        # ...and after the all-reduce both hold exactly their mean.
        assert torch.equal(r0[f"synced{n}"], r1[f"synced{n}"])
        assert torch.allclose(r0[f"synced{n}"], (r0[key] + r1[key]) / 2, atol=1e-7, rtol=1e-5)
    for net in ("G", "D", "G_ema"):
        assert torch.equal(r0[net], r1[net]), f"{net} weights diverged across ranks"


def test_gpus_must_match_the_launcher(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "fit", "--data", str(tmp_path),
                             "--outdir", str(tmp_path / "runs"), "--gpus", "2", "--batch", "8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "torchrun --nproc_per_node=2" in result.stderr
