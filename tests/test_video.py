"""mp4 writing: exact frame counts and sizes, padding of odd sizes, atomic abort, numbered names."""

from __future__ import annotations

import os
import sys

import imageio_ffmpeg
import numpy as np
import pytest

from renderers.video import VideoError, VideoWriter, next_numbered_path, read_video_info, write_video

N_FRAMES = 12


def _frames(width: int, height: int, n: int = N_FRAMES) -> list[np.ndarray]:
    """A red square moving right over a grey background."""
    out = []
    for i in range(n):
        frame = np.full((height, width, 3), 96, np.uint8)
        x = 2 + 3 * i
        frame[10:26, x : x + 16] = (220, 40, 40)
        out.append(frame)
    return out


def _read_back(path) -> tuple[list[np.ndarray], tuple[int, int]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return frames, (w, h)


@pytest.mark.parametrize("width, height", [(64, 48), (63, 47)])
def test_write_and_read_back(tmp_path, width, height):
    frames = _frames(width, height)
    calls = []
    result = write_video(frames, tmp_path / "clip.mp4", fps=24, progress=lambda d, t: calls.append((d, t)))
    assert not result.aborted and result.frames == N_FRAMES and result.path == tmp_path / "clip.mp4"
    assert calls[-1] == (N_FRAMES, N_FRAMES) and len(calls) == N_FRAMES
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temp files left

    decoded, size = _read_back(result.path)
    # Odd sizes are padded to even by repeating the last row/column.
    assert size == (width + width % 2, height + height % 2)
    assert len(decoded) == N_FRAMES
    for src, got in zip(frames, decoded):
        got = got[:height, :width].astype(np.float64)
        assert np.abs(got.mean(axis=(0, 1)) - src.mean(axis=(0, 1))).max() < 3.0
        assert np.abs(got - src).mean() < 4.0  # the square is where it should be (frames in order)
    if width % 2:
        np.testing.assert_allclose(decoded[0][:, -1].astype(float), decoded[0][:, -2].astype(float), atol=12)

    info = read_video_info(result.path)
    assert info["frames"] == N_FRAMES and info["size"] == size
    assert info["fps"] == pytest.approx(24) and info["seconds"] == pytest.approx(N_FRAMES / 24, abs=0.05)


def test_abort_leaves_no_file_and_keeps_existing(tmp_path):
    dest = tmp_path / "clip.mp4"
    dest.write_bytes(b"previous video")
    frames = _frames(32, 32, 6)
    seen: list[int] = []
    result = write_video(
        iter(frames), dest, fps=30, should_abort=lambda: len(seen) >= 3, progress=lambda done, total: seen.append(done)
    )
    assert result.aborted and result.frames == 3
    assert dest.read_bytes() == b"previous video"
    assert os.listdir(tmp_path) == ["clip.mp4"]

    # A crash in the frame source: the error propagates, nothing is left behind.
    def broken():
        yield frames[0]
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        write_video(broken(), tmp_path / "new.mp4", fps=30)
    assert os.listdir(tmp_path) == ["clip.mp4"]

    # Explicit abort on the writer, and success replacing the old file only at the end.
    writer = VideoWriter(dest, fps=30)
    writer.append(frames[0])
    writer.abort()
    writer.abort()  # idempotent
    assert dest.read_bytes() == b"previous video" and os.listdir(tmp_path) == ["clip.mp4"]
    with VideoWriter(dest, fps=30) as writer:
        for f in frames:
            writer.append(f)
        assert dest.read_bytes() == b"previous video"  # untouched until close
    assert read_video_info(dest)["frames"] == len(frames)


def test_writer_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "clip.mp4", fps=30)
    with pytest.raises(VideoError, match="is a folder"):
        VideoWriter(tmp_path, fps=30)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "clip.mp4", fps=0)
    with VideoWriter(tmp_path / "a.mp4", fps=30) as writer:
        writer.append(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(ValueError, match="16x16"):
            writer.append(np.zeros((16, 18, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.append(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4", fps=30):
            pass
    with pytest.raises(VideoError, match="bad.mp4: ffmpeg") as info:
        with VideoWriter(tmp_path / "bad.mp4", fps=30, codec="no-such-encoder") as writer:
            writer.append(np.zeros((16, 16, 3), np.uint8))
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / "clip.mp4"
        if os.access(locked, os.W_OK):  # root ignores permissions; use a folder nobody can write
            if not sys.platform.startswith("linux"):
                pytest.skip("running as a user that can write anywhere")
            target = "/proc/clip.mp4"
        rendered = []
        with pytest.raises(VideoError, match="cannot write") as info:
            write_video((rendered.append(1) or f for f in _frames(16, 16, 2)), target, fps=30)
        assert str(target) in str(info.value)
        assert rendered == []  # failed before any frame was rendered
    finally:
        locked.chmod(0o700)


def test_next_numbered_path_never_overwrites(tmp_path):
    first = next_numbered_path(tmp_path, "orbit", ".mp4")
    assert first == tmp_path / "orbit-0000.mp4"
    first.write_bytes(b"x")
    (tmp_path / "orbit-0002.mp4").write_bytes(b"x")
    (tmp_path / "screenshot-0007.png").write_bytes(b"x")
    # One past the highest number, so names sort by time even after deletions.
    assert next_numbered_path(tmp_path, "orbit", ".mp4") == tmp_path / "orbit-0003.mp4"
    assert next_numbered_path(tmp_path, "screenshot", ".png") == tmp_path / "screenshot-0008.png"
    # A recording in progress (hidden partial file) counts as taken.
    writer = VideoWriter(tmp_path / "orbit-0003.mp4", fps=30)
    assert next_numbered_path(tmp_path, "orbit", ".mp4") == tmp_path / "orbit-0004.mp4"
    writer.abort()
    taken = set()
    for _ in range(3):
        p = next_numbered_path(tmp_path, "orbit", ".mp4")
        assert not p.exists() and p not in taken
        p.write_bytes(b"x")
        taken.add(p)
    assert next_numbered_path(tmp_path / "new-folder", "shot", ".png").name == "shot-0000.png"


def test_a_killed_recording_leaves_nothing_behind_after_the_next_one(tmp_path):
    """Bug: a video run killed mid-write left its hidden .NAME.<hash>.partial.mp4, and the next run kept
    it. The partial names carry the writer's PID; a new recording of the same file removes those
    whose process is gone (and old-style ones), never a live recording's."""
    import subprocess
    import sys

    from renderers.video import VideoWriter

    target = tmp_path / "clip.mp4"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".clip.mp4.{dead.pid}-0a1b2c3d.partial.mp4", tmp_path / ".clip.mp4.deadbeef.partial.mp4"]
    live = tmp_path / f".clip.mp4.{os.getpid()}-00000000.partial.mp4"  # a recording still running here
    other = tmp_path / f".other.mp4.{dead.pid}-0a1b2c3d.partial.mp4"  # another file's partial
    for path in (*stale, live, other):
        path.write_bytes(b"partial")
    with VideoWriter(target, fps=10) as writer:
        for _ in range(2):
            writer.append(np.zeros((16, 16, 3), dtype=np.uint8))
    assert target.is_file() and not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
