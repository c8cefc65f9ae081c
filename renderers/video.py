"""Writing rendered frames to an mp4 (H.264 through imageio-ffmpeg's bundled ffmpeg).

Recording is safe against aborts and crashes: frames go to a hidden temp file next to the
destination, which replaces the destination only when ffmpeg has finished successfully. An aborted,
failed or crashed recording never leaves a truncated video at the destination and never clobbers
an existing file there.

ffmpeg is driven directly (``imageio_ffmpeg.get_ffmpeg_exe()`` and a pipe) rather than through
``imageio_ffmpeg.write_frames``: that generator ignores ffmpeg's exit status and sends ffmpeg's
messages to the terminal, so a failed encode could not be reported with its cause.
"""

from __future__ import annotations

import numbers
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class VideoError(RuntimeError):
    """A video could not be written or read. The message is one line: ``<path>: <problem>``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()



def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the hidden partial files of ``path`` whose recording process is gone (killed mid-write;
    older files without a PID in their name count as gone). Returns what was removed."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:(\d+)-)?[0-9a-f]+\.partial{re.escape(path.suffix)}$")
    removed = []
    for candidate in path.parent.iterdir() if path.parent.is_dir() else ():
        match = pattern.match(candidate.name)
        if match and not (match.group(1) and _process_alive(int(match.group(1)))):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass  # gone already, or not ours to remove
    return removed

class VideoWriter:
    """Encodes [H, W, 3] uint8 frames into a video file; a context manager.

    ``with VideoWriter(path, fps=30) as w: w.append(frame)`` finishes the file on a clean exit and
    aborts it (removing the partial file) when the block raises.

    Odd frame sizes are padded to even ones by repeating the last row/column (yuv420p, which every
    player supports, needs even sizes); the video is then one pixel larger than the frames.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size: tuple[int, int] | None = None,
        crf: int = 18,
        codec: str = "libx264",
    ):
        """Check the destination and reserve a temp file next to it; ffmpeg starts on the first frame.

        Args:
            path: destination, e.g. ``out/orbit-0000.mp4``; the container follows its suffix.
            fps: frames per second (> 0; fractional rates such as 29.97 are kept, not rounded).
            size: (width, height) of the frames, ffmpeg's order; None: taken from the first frame.
            crf: H.264 constant rate factor, 0 (lossless) .. 51 (worst); 18 looks lossless.
            codec: ffmpeg video encoder.

        Raises:
            VideoError: the destination folder is missing or not writable (before any rendering).
            ValueError: bad fps, size or crf.
        """
        self.path = Path(path)
        self._done = True  # until the temp file is reserved: nothing to clean up
        if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and 0 < fps < 1000):
            raise ValueError(f"fps must be a number in (0, 1000), got {fps!r}")
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise ValueError(f"crf must be an integer in 0..51, got {crf!r}")
        if size is not None and not (len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError(f"size must be (width, height) positive integers, got {size!r}")
        self.fps = float(fps)
        self.crf = crf
        self.codec = codec
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.frames_written = 0
        self._proc: subprocess.Popen | None = None
        self._log: Any = None
        if self.path.is_dir():
            raise VideoError(self.path, "is a folder, not a video file name")
        parent = self.path.parent
        if not parent.is_dir():
            raise VideoError(self.path, f"cannot write: folder {os.fspath(parent)!r} does not exist")
        # Reserve the temp name now (O_EXCL): this is also the writability check, done before any
        # frame is rendered. Same folder as the destination, so the final rename is atomic.
        # The name carries our PID, so a later recording can tell (and remove) the partial file of
        # one that was killed mid-write.
        remove_stale_partials(self.path)
        self._tmp = parent / f".{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{self.path.suffix}"
        try:
            with open(self._tmp, "xb"):
                pass
        except OSError as e:
            raise VideoError(self.path, f"cannot write: {e.strerror or e}") from e
        self._done = False

    # --- writing ------------------------------------------------------------------------------

    def _start(self, width: int, height: int) -> None:
        out_w, out_h = width + width % 2, height + height % 2
        cmd = [
            _ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{out_w}x{out_h}", "-r", _rate(self.fps), "-i", "-", "-an",
            "-vcodec", self.codec, "-pix_fmt", "yuv420p",
        ]  # fmt: skip
        if self.codec == "libx264":
            cmd += ["-crf", str(self.crf)]
        if self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            cmd += ["-movflags", "+faststart"]  # index at the front: playable while streaming
        cmd.append(os.fspath(self._tmp))
        # ffmpeg's messages go to a temp file (a pipe could fill up and block ffmpeg) and are
        # quoted in the error if it fails.
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                # Own process group: Ctrl-C reaches only Python, which then aborts cleanly.
                start_new_session=os.name == "posix",
            )
        except OSError as e:
            self.abort()
            raise VideoError(self.path, f"cannot start ffmpeg: {e.strerror or e}") from e

    def append(self, frame: np.ndarray) -> None:
        """Add one frame: [H, W, 3] uint8 RGB ([H, W] or [H, W, 1] grey are accepted too).

        Raises:
            ValueError: wrong shape or dtype, or a size different from the first frame.
            VideoError: ffmpeg failed (the partial file is removed).
        """
        if self._done:
            raise VideoError(self.path, "the video is already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (0..255), got {frame.dtype}")
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.ndim != 3 or frame.shape[2] not in (1, 3):
            raise ValueError(f"frames must be [H, W, 3] RGB, got shape {tuple(frame.shape)}")
        if frame.shape[2] == 1:
            frame = np.repeat(frame, 3, axis=2)
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
        if (width, height) != self.size:
            raise ValueError(
                f"frame {self.frames_written} is {width}x{height} but the video is {self.size[0]}x{self.size[1]}"
            )
        if height % 2 or width % 2:  # yuv420p needs even sizes: repeat the last row/column
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        if self._proc is None:
            self._start(width, height)
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError) as e:
            problem = self._ffmpeg_problem() or f"ffmpeg stopped accepting frames ({e})"
            self.abort()
            raise VideoError(self.path, problem) from e
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the video and move it into place; returns the destination path.

        Raises:
            VideoError: no frames were written or ffmpeg failed (nothing is left behind, an
                existing file at the destination is untouched).
        """
        if self._done:
            return self.path
        if self._proc is None:
            self.abort()
            raise VideoError(self.path, "no frames were written")
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # a broken pipe shows up as the exit status below
        code = self._proc.wait()
        if code != 0:
            problem = self._ffmpeg_problem() or f"ffmpeg exited with status {code}"
            self.abort()
            raise VideoError(self.path, problem)
        try:
            with open(self._tmp, "rb+") as f:  # on disk before the rename, so a crash can't leave it empty
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise VideoError(self.path, f"cannot write: {e.strerror or e}") from e
        self._finish()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial file; the destination is left as it was. Idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        try:
            os.remove(self._tmp)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # best effort: a leftover hidden .partial file is harmless
        self._finish()

    def _finish(self) -> None:
        self._done = True
        if self._proc is not None and self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def _ffmpeg_problem(self) -> str:
        """ffmpeg's last message lines (waiting briefly for it to exit), or ''."""
        if self._proc is None or self._log is None:
            return ""
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.seek(0)
        lines = [ln.strip() for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return "ffmpeg: " + " | ".join(lines[-3:]) if lines else ""

    @property
    def closed(self) -> bool:
        """True after ``close`` or ``abort``."""
        return self._done

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # A writer dropped without close/abort (e.g. after a crash in the caller) must not leave
        # ffmpeg running or a partial file behind.
        if not getattr(self, "_done", True) and hasattr(self, "_tmp"):
            try:
                self.abort()
            except Exception:
                pass


def _rate(fps: float) -> str:
    """fps as a rational for ffmpeg (no rounding to an integer rate): 29.97 -> 2997/100, 30.0 -> 30."""
    from fractions import Fraction

    r = Fraction(fps).limit_denominator(1001)
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


@dataclass
class VideoResult:
    """What ``write_video`` did."""

    path: Path
    """The destination (exists only if not aborted)."""
    frames: int
    """Frames written (for an aborted video: before the abort)."""
    aborted: bool
    """``should_abort`` stopped the recording; nothing was written at ``path``."""
    seconds: float
    """Wall-clock time spent, including rendering the frames."""


def write_video(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float,
    progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
    should_abort: Callable[[], bool] | None = None,
    **writer_options: Any,
) -> VideoResult:
    """Encode ``frames`` (each [H, W, 3] uint8) to ``path``.

    ``frames`` may be a lazy generator that renders on demand: ``should_abort`` is asked before
    each frame is pulled, so an abort stops rendering too. ``progress(done, total)`` is called
    after each frame; ``total`` defaults to ``len(frames)`` when it has one, else None.
    ``writer_options`` go to ``VideoWriter`` (size, crf, codec).

    Raises:
        VideoError: destination not writable (before the first frame is pulled) or ffmpeg failed.
        Whatever the frame source raises (the partial file is removed first).
    """
    start = time.perf_counter()
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    writer = VideoWriter(path, fps, **writer_options)
    aborted = False
    iterator = iter(frames)
    try:
        with writer:
            while True:
                if should_abort is not None and should_abort():
                    aborted = True
                    writer.abort()
                    break
                try:
                    frame = next(iterator)
                except StopIteration:
                    break
                writer.append(frame)
                if progress is not None:
                    progress(writer.frames_written, total)
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):  # a generator that renders frames: release what it holds
            close()
    return VideoResult(writer.path, writer.frames_written, aborted, time.perf_counter() - start)


def read_video_info(path: str | os.PathLike) -> dict[str, Any]:
    """Facts about a video file: ``frames`` (decoded count), ``seconds``, ``fps``, ``size`` (w, h), ``codec``.

    Raises:
        VideoError: missing or unreadable file.
    """
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such video file")
    try:
        reader = imageio_ffmpeg.read_frames(os.fspath(path))
        try:
            meta = next(reader)
        finally:
            reader.close()
        n_frames, seconds = imageio_ffmpeg.count_frames_and_secs(os.fspath(path))
    except (RuntimeError, OSError, StopIteration) as e:
        raise VideoError(path, f"cannot read video: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}") from e
    return {
        "frames": int(n_frames),
        "seconds": float(seconds),
        "fps": float(meta.get("fps", 0.0)),
        "size": tuple(int(v) for v in meta.get("size", (0, 0))),
        "codec": meta.get("codec", ""),
    }


def next_numbered_path(directory: str | os.PathLike, prefix: str, suffix: str, digits: int = 4) -> Path:
    """``directory/<prefix>-NNNN<suffix>`` numbered one past the highest existing number.

    Never overwrites, and numbers keep increasing even after files are deleted, so sorting by
    name sorts by time. In-progress recordings (``VideoWriter``'s hidden ``.partial`` files) count
    as taken. E.g. ``next_numbered_path("out", "orbit", ".mp4")`` -> ``out/orbit-0003.mp4`` when
    ``orbit-0002.mp4`` is the newest. Shared with screenshots (``prefix="screenshot"``, ``.png``).

    The name is only chosen, not created: two processes racing for a name may get the same one.
    """
    directory = Path(directory)
    pattern = re.compile(rf"^\.?{re.escape(prefix)}-(\d+){re.escape(suffix)}(\..+\.partial{re.escape(suffix)})?$")
    highest = -1
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    for name in names:
        m = pattern.match(name)
        if m and (not name.startswith(".") or m.group(2)):
            highest = max(highest, int(m.group(1)))
    number = highest + 1
    while True:  # guard against odd names the pattern can't see (e.g. a folder of that name)
        candidate = directory / f"{prefix}-{number:0{digits}d}{suffix}"
        if not candidate.exists():
            return candidate
        number += 1
