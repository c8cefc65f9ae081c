"""Progress of the command-line tools in logs (issue 16, improvement 10), and `train.py fit --help`
showing every default."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

BUNDLED = REPO_ROOT / "assets" / "default_generator.safetensors"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_progress_lines_and_a_terminal_gets_a_bar(monkeypatch):
    from renderers.progress import LogProgress, progress_bar

    monkeypatch.setenv("STUDIO_PROGRESS_SECONDS", "0")
    log = io.StringIO()
    with progress_bar(3, "video", "frame", file=log) as bar:
        assert isinstance(bar, LogProgress)
        for _ in range(3):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("video: 1/3 frame (33%)") and "left" in lines[0]
    assert lines[-1].startswith("video: 3/3 frame (100%)") and "done in" in lines[-1]
    bar = progress_bar(3, "video", "frame", file=Tty())
    assert not isinstance(bar, LogProgress)
    bar.close()
    assert isinstance(progress_bar(3, "x", enabled=False, file=io.StringIO()), type(bar))


def test_progress_lines_come_at_the_interval_not_every_update(monkeypatch):
    from renderers.progress import LogProgress

    log = io.StringIO()
    bar = LogProgress(1000, "images", "seed", file=log, interval=3600)
    for _ in range(999):
        bar.update(1)
    assert log.getvalue() == ""  # nothing within the interval ...
    bar.close()
    assert log.getvalue().count("\n") == 1 and "999/1000" in log.getvalue()  # ... and one line at the end


def test_batch_video_prints_progress_lines_into_a_log(tmp_path):
    env = {**os.environ, "STUDIO_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "v.mp4"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), "video", str(BUNDLED), "--frames", "4",
                             "--seeds", "0", "--device", "cpu", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("video: ")]
    assert lines and "4/4 frame (100%)" in lines[-1], result.stderr
    assert "\r" not in result.stderr, "a progress bar was drawn into a log"


def test_fit_help_shows_every_default():
    sys.path.insert(0, str(REPO_ROOT))
    import train

    parser = train.build_parser()
    fit = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "fit")[1]
    missing = [a.option_strings[0] for a in fit._actions
               if a.option_strings and a.dest not in ("help", "data", "outdir") and "default" not in (a.help or "")]
    assert not missing, f"fit options without their default: {missing}"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "fit", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for expected in ("(default: the preset's; tiny: 8)", "tiny: 100)", "default: tiny", "default: a new run"):
        assert expected in text, expected
