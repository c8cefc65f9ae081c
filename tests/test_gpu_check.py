"""``make gpu-check`` in its quick CPU mode, so that the GPU acceptance run never rots: every section
runs, writes its rows to the JSON report, and nothing fails (the app section may be skipped, with its
reason, where no OpenGL context can be made)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_quick_mode_on_cpu(tmp_path):
    out = tmp_path / "gpu-check.json"
    run = subprocess.run([sys.executable, "-m", "tests.gpu_check", "--quick", "--device", "cpu", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1500, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["device"] == "cpu" and report["quick"]
    sections = report["sections"]
    assert set(sections) == {"fixtures", "presets", "viewer", "app", "training"}
    fixtures = {row["name"]: row for row in sections["fixtures"]["rows"]}
    assert {"pigan_ref", "stylenerf_ref", "epigraf_ref", "graf_ref", "giraffe_ref"} <= set(fixtures)
    for row in fixtures.values():  # on the CPU the device render is the reference itself
        assert row["status"] == "ok" and row["exact_image"] == 0.0, row
        assert row["fast_image"] < 0.1, row
    presets = {row["name"]: row for row in sections["presets"]["rows"]}
    assert all(row["renders"] for row in presets.values()) and presets["tiny"]["trains"]
    assert len(sections["viewer"]["rows"]) == 4 and all(row["full_ms"] > 0 for row in sections["viewer"]["rows"])
    assert sections["training"]["rows"][0]["img_per_s"] > 0
    for row in sections["app"]["rows"]:
        assert row["status"] in ("ok", "skipped") and (row["status"] == "ok" or row["reason"])
    handoff = [row for row in sections["app"]["rows"] if row["name"] == "worker handoff"]
    assert len(handoff) == 1
    if handoff[0]["status"] == "ok":  # both ways displayed frames through the threaded loop
        assert handoff[0]["event_fps"] > 0 and handoff[0]["sync_fps"] > 0
    assert "ok: report in" in run.stdout
