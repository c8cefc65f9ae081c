"""The checkpoint fuzzer (``tests/fuzz_loaders.py``) in the suite: 300 seeded mutants and hostile files of
every class, each through every loader entry point in its own capped, timed process. Every class must
end in 0 code runs, 0 hangs, 0 tracebacks, 0 multi-line errors, 0 calls above 1 GiB and 0 crashes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fuzz_loaders import BAD, CLASSES, GOOD

ROOT = Path(__file__).resolve().parents[1]


def test_fuzzer_finds_nothing_bad() -> None:
    # A fresh process: forking this one, whose thread pools earlier tests started, could hang children.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "tests.fuzz_loaders", "--count", "300", "--seed", "2026",
                          "--timeout", "120"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    report = run.stdout + run.stderr
    rows = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines() if line.split()}
    outcomes = (*GOOD, *BAD)
    for cls in CLASSES:
        assert cls in rows, f"no row for {cls}:\n{report}"
        counts = dict(zip(outcomes, map(int, rows[cls]), strict=True))
        assert sum(counts.values()) > 0
        bad = {o: counts[o] for o in BAD if counts[o]}
        assert not bad, f"{cls}: {bad}\n{report}"
    totals = dict(zip(outcomes, map(int, rows["all"]), strict=True))
    assert totals["refused"] > 0 and totals["loaded"] > 0  # both paths were exercised
    assert re.search(r"300 cases, 1200 calls", run.stdout), report
    assert run.returncode == 0, report
