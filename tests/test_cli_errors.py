"""Bad command-line input ends with one line `error: ...`, exit status 2, before any work, and
changes no file (issue "hostile and broken input", point 10 and the command-line rough edges)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

VIS = str(REPO_ROOT / "visualizer.py")
TRAIN = str(REPO_ROOT / "train.py")


def run(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


CASES = [
    ([VIS, "images", "--seeds", "99999999999999999999999", "--out", "o"], "seeds go from 0 to 4294967295"),
    ([VIS, "images", "--seeds", "0-1000000000", "--out", "o"], "more than 100000 seeds"),
    ([VIS, "images", "--views", "1000000000", "--out", "o"], "give 1 to 360 views"),
    ([VIS, "images", "--trunc", "nan", "--out", "o"], "truncation psi must be a finite number"),
    ([VIS, "images", "--height", "5000", "--out", "o"], "bad --height 5000: give a whole number of pixels"),
    ([VIS, "video", "--grid", "1000x1000", "--out", "v.mp4"], "at most 64 cells"),
    ([VIS, "video", "--height", "-1", "--out", "v.mp4"], "bad --height -1: give a whole number of pixels"),
    ([VIS, "video", "--mode", "bogus", "--out", "v.mp4"], "invalid choice: 'bogus'"),
    ([VIS, "mesh", "--format", "bogus", "--out", "m"], "invalid choice: 'bogus'"),
    ([VIS, "metrics", "--data", "DATA", "--metrics", "swd", "--num", "4", "--out", "/proc/forbidden/r.jsonl"],
     "cannot create folder /proc/forbidden"),
    ([VIS, "preview", "--out", "/proc/forbidden/p.png"], "cannot create folder /proc/forbidden"),
    ([VIS, "preview", "--out", "EXISTING.png"], "exists (use --force"),
    ([VIS, "--size", "900", "--exit"], "bad --size '900'"),
    ([TRAIN, "fit", "--data", "DATA", "--outdir", "runs", "--cfg", "pigan-tiny", "--device", "cuda"],
     "no CUDA device is available"),
    ([TRAIN, "bench", "--cfg", "pigan-tiny", "--device", "cuda"], "no CUDA device is available"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from training.synthetic import write_synthetic_dataset

    folder = tmp_path_factory.mktemp("cli")
    write_synthetic_dataset(folder / "heads.zip", "heads", 4, 32, seed=0, geometry=False)
    return folder


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a[1:3]) + f" {i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_and_exit_2_with_no_file_changed(argv, message, workdir):
    if "--device" in argv and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    (workdir / "EXISTING.png").write_bytes(b"keep")
    argv = [a.replace("DATA", str(workdir / "heads.zip")) for a in argv]
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*")}
    result = run(*argv, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.stat().st_mtime_ns for p in workdir.rglob("*")} == before
    assert (workdir / "EXISTING.png").read_bytes() == b"keep"


def test_ctrl_c_in_training_says_where_it_stopped_and_how_to_resume(workdir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, TRAIN, "fit", "--data", str(workdir / "heads.zip"), "--outdir",
                             str(workdir / "runs"), "--cfg", "pigan-tiny", "--kimg", "1000", "--tick", "0.004",
                             "--metrics", "none", "--workers", "0", "--no-progress", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # A suite started in the background inherits SIGINT ignored; a user's Ctrl+C does not.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # wait for the first tick: training is under way
        if line.startswith("tick 1 ") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("stopped at ") and "resume with --resume auto" in lines[0], err
