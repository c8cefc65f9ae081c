"""Live monitor for a training run: ``python train.py monitor RUN_DIR``.

Usage:
    python -m training.monitor RUN_DIR [--interval SECONDS] [--width W] [--height H]
                               [--screenshot OUT.png] [--exit-after-frames N]

The trainer writes everything the monitor reads into RUN_DIR:

* ``training_options.json``: the resolved config (its top-level scalars are shown as run info);
* ``log.jsonl``: one JSON object per tick (losses, scores, speed, ...), appended;
* ``metrics.jsonl``: one JSON object per metric evaluation, appended;
* ``samples-<kimg>.png`` sample grids and ``reals.png``;
* ``network-snapshot-<kimg>.safetensors`` snapshots;
* ``latest``: a small JSON pointer to the newest state/snapshot/samples.

Whole files are written atomically (temp + rename), but the JSON-lines files are appended, so
their last line may still be incomplete: it is left for the next poll.

The module has two halves. `RunFollower` (no GUI) polls the folder incrementally and reports a
`RunUpdate`; `RunHistory` accumulates updates into plot series and tables. `MonitorWindow` only
renders that state with dearpygui, so everything but the drawing is testable without a display.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training import run_dir as rundir

# Run directory conventions: one home, training.run_dir (torch-free, so the monitor starts fast).
OPTIONS_NAME = rundir.OPTIONS
LOG_NAME = rundir.LOG
METRICS_NAME = rundir.METRICS_LOG
LATEST_NAME = rundir.LATEST
REALS_NAME = rundir.REALS
SAMPLES_RE = rundir.SAMPLES_PATTERN
SNAPSHOT_RE = rundir.SNAPSHOT_PATTERN

ACTIVE_WINDOW_S = 120.0
"""A run whose log was modified this recently counts as training; older means idle or finished."""

# Plot names; one place decides which log key goes to which plot (`plot_for_log_key`).
PLOT_LOSSES = "Losses"
PLOT_REGULARIZERS = "Regularizers / scores"
PLOT_SPEED = "Speed"
PLOT_METRICS = "Metrics"
PLOTS = (PLOT_LOSSES, PLOT_REGULARIZERS, PLOT_SPEED, PLOT_METRICS)
SPEED_KEYS = ("sec_per_kimg", "img_per_s")
SPEED_LABELS = {"sec_per_kimg": "sec/kimg", "img_per_s": "img/s"}


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite JSON number (not a bool, null, NaN or inf), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def plot_for_log_key(key: str) -> str | None:
    """Which plot a ``log.jsonl`` key belongs to, or None if it is not plotted."""
    if key.startswith("loss/"):
        return PLOT_LOSSES
    if key.startswith("scores/") or key == "r1_penalty":
        return PLOT_REGULARIZERS
    if key in SPEED_KEYS:
        return PLOT_SPEED
    return None


def series_label(plot: str, key: str) -> str:
    """Legend label for ``key`` inside ``plot`` (the plot title already says what the prefix says)."""
    if plot == PLOT_SPEED:
        return SPEED_LABELS.get(key, key)
    if plot == PLOT_LOSSES and key.startswith("loss/"):
        return key[len("loss/"):]
    if plot == PLOT_REGULARIZERS and key.startswith("scores/"):
        return "score " + key[len("scores/"):]
    return key


# --------------------------------------------------------------------------------------------
# Following the run directory (no GUI).

FileStamp = tuple[int, int, int]
"""(inode, size, mtime_ns): changes whenever a file is replaced or rewritten."""


def file_stamp(path: Path) -> FileStamp | None:
    """The file's `FileStamp`, or None if it does not exist (or is not a regular file)."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_json_object(path: Path) -> dict | None:
    """A JSON object file, or None if it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class JsonlTail:
    """Incremental reader of an append-only JSON-lines file.

    Remembers how far it has read; each `read_new` parses only the complete lines appended since.
    An unterminated last line is left for later. If the file was truncated, replaced (new inode)
    or rewritten under us (the bytes before our offset changed), it is read again from the start
    and the caller is told to drop what it had.
    """

    _FINGERPRINT_BYTES = 64  # bytes before the offset that must still match for a plain append

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows_read = 0
        self.bad_lines = 0
        self._offset = 0
        self._inode: int | None = None
        self._fingerprint = b""

    def _restart(self) -> None:
        self.rows_read = 0
        self.bad_lines = 0
        self._offset = 0
        self._inode = None
        self._fingerprint = b""

    def read_new(self) -> tuple[list[dict], bool]:
        """(rows appended since the last call, whether earlier rows are void and must be dropped)."""
        try:
            f = open(self.path, "rb")
        except OSError:
            reset = self._offset > 0  # it existed and is gone: what we showed is gone too
            self._restart()
            return [], reset
        with f:
            st = os.fstat(f.fileno())
            reset = False
            if self._offset > 0 and (st.st_ino != self._inode or st.st_size < self._offset):
                reset = True
            elif self._offset > 0:
                f.seek(self._offset - len(self._fingerprint))
                if f.read(len(self._fingerprint)) != self._fingerprint:
                    reset = True
            if reset:
                self._restart()
            self._inode = st.st_ino
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return [], reset  # nothing new, or only a partial line
        complete = data[: end + 1]
        self._offset += end + 1
        self._fingerprint = (self._fingerprint + complete)[-self._FINGERPRINT_BYTES:]
        rows: list[dict] = []
        for line in complete.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                self.bad_lines += 1  # a corrupt complete line will never get better: skip it
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                self.bad_lines += 1
        self.rows_read += len(rows)
        return rows, reset


class RunStatus(enum.Enum):
    """Coarse state of a run directory."""

    MISSING = "missing"
    WAITING = "waiting"
    TRAINING = "training"
    IDLE = "idle/finished"


@dataclass(frozen=True)
class ImageFile:
    """A PNG in the run directory; a new stamp means new pixels."""

    path: Path
    stamp: FileStamp
    kimg: float | None = None


@dataclass(frozen=True)
class SnapshotInfo:
    """One ``network-snapshot-*.safetensors`` file."""

    name: str
    kimg: float
    size_bytes: int
    mtime: float


@dataclass
class RunUpdate:
    """What one `RunFollower.poll` found: new rows since the last poll plus the current file state."""

    status: RunStatus
    message: str
    log_rows: list[dict] = field(default_factory=list)
    metric_rows: list[dict] = field(default_factory=list)
    log_reset: bool = False
    metrics_reset: bool = False
    samples: ImageFile | None = None
    reals: ImageFile | None = None
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    latest: dict | None = None
    options: dict | None = None
    log_age_s: float | None = None
    skipped_lines: int = 0  # complete but unparsable lines in log.jsonl and metrics.jsonl so far


class RunFollower:
    """Follows a run directory: each `poll` reports what is new since the previous one."""

    def __init__(self, run_dir: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 active_window_s: float = ACTIVE_WINDOW_S) -> None:
        self.run_dir = Path(run_dir)
        self._clock = clock
        self._active_window_s = active_window_s
        self._log = JsonlTail(self.run_dir / LOG_NAME)
        self._metrics = JsonlTail(self.run_dir / METRICS_NAME)
        # Small whole-file JSONs are re-read only when their stamp changes.
        self._json_cache: dict[str, tuple[FileStamp | None, dict | None]] = {}

    def _cached_json(self, name: str) -> dict | None:
        path = self.run_dir / name
        stamp = file_stamp(path)
        cached = self._json_cache.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = read_json_object(path) if stamp is not None else None
        self._json_cache[name] = (stamp, value)
        return value

    def _scan_files(self) -> tuple[ImageFile | None, ImageFile | None, list[SnapshotInfo]]:
        """(newest sample grid, reals.png, snapshots newest first) from one directory listing."""
        newest: tuple[float, str] | None = None
        reals: ImageFile | None = None
        snapshots: list[SnapshotInfo] = []
        try:
            entries = list(os.scandir(self.run_dir))
        except OSError:
            return None, None, []
        for entry in entries:
            name = entry.name
            try:
                if not entry.is_file():
                    continue
                if name == REALS_NAME:
                    st = entry.stat()
                    reals = ImageFile(Path(entry.path), (st.st_ino, st.st_size, st.st_mtime_ns))
                elif m := SAMPLES_RE.match(name):
                    key = (float(m.group(1)), name)
                    if newest is None or key > newest:
                        newest = key
                elif m := SNAPSHOT_RE.match(name):
                    st = entry.stat()
                    snapshots.append(SnapshotInfo(name, float(m.group(1)), st.st_size, st.st_mtime))
            except OSError:
                continue  # deleted between listing and stat
        samples = None
        if newest is not None:
            path = self.run_dir / newest[1]
            stamp = file_stamp(path)
            if stamp is not None:
                samples = ImageFile(path, stamp, newest[0])
        snapshots.sort(key=lambda s: (s.kimg, s.mtime), reverse=True)
        return samples, reals, snapshots

    def poll(self) -> RunUpdate:
        """Read what changed since the last poll. Never raises for a missing or half-written run."""
        if not self.run_dir.is_dir():
            # The tails see their files gone: they restart (a recreated run is read from its
            # start) and say whether what was shown must be dropped.
            _, log_reset = self._log.read_new()
            _, metrics_reset = self._metrics.read_new()
            return RunUpdate(RunStatus.MISSING, f"{self.run_dir}: no such directory",
                             log_reset=log_reset, metrics_reset=metrics_reset)
        log_rows, log_reset = self._log.read_new()
        metric_rows, metrics_reset = self._metrics.read_new()
        samples, reals, snapshots = self._scan_files()
        update = RunUpdate(RunStatus.WAITING, "waiting for the first tick", log_rows=log_rows,
                           metric_rows=metric_rows, log_reset=log_reset, metrics_reset=metrics_reset,
                           samples=samples, reals=reals, snapshots=snapshots,
                           latest=self._cached_json(LATEST_NAME), options=self._cached_json(OPTIONS_NAME),
                           skipped_lines=self._log.bad_lines + self._metrics.bad_lines)
        log_stamp = file_stamp(self._log.path)
        if log_stamp is not None and self._log.rows_read > 0:
            age = max(0.0, self._clock() - log_stamp[2] / 1e9)
            update.log_age_s = age
            if age <= self._active_window_s:
                update.status, update.message = RunStatus.TRAINING, "training"
            else:
                update.status, update.message = RunStatus.IDLE, "idle/finished"
        return update


# --------------------------------------------------------------------------------------------
# Accumulated state for display (no GUI).


@dataclass
class Series:
    """One line of a plot."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


class RunHistory:
    """Everything the window shows, accumulated from `RunUpdate`s."""

    def __init__(self) -> None:
        self.plots: dict[str, dict[str, Series]] = {name: {} for name in PLOTS}
        self.latest_metrics: dict[str, dict] = {}
        self.last_log_row: dict | None = None
        self.log_rows = 0
        self.metric_rows = 0

    def _clear(self, plots: tuple[str, ...]) -> None:
        for name in plots:
            self.plots[name] = {}

    def apply(self, update: RunUpdate) -> set[str]:
        """Fold ``update`` in; returns the names of the plots whose data changed."""
        changed: set[str] = set()
        if update.log_reset:
            self._clear((PLOT_LOSSES, PLOT_REGULARIZERS, PLOT_SPEED))
            self.last_log_row, self.log_rows = None, 0
            changed |= {PLOT_LOSSES, PLOT_REGULARIZERS, PLOT_SPEED}
        if update.metrics_reset:
            self._clear((PLOT_METRICS,))
            self.latest_metrics, self.metric_rows = {}, 0
            changed.add(PLOT_METRICS)
        for row in update.log_rows:
            self.log_rows += 1
            self.last_log_row = row
            kimg = finite_number(row.get("kimg"))
            if kimg is None:
                continue  # no x coordinate
            for key, raw in row.items():
                plot = plot_for_log_key(key)
                value = finite_number(raw)
                if plot is None or value is None:
                    continue
                series = self.plots[plot].setdefault(key, Series())
                series.xs.append(kimg)
                series.ys.append(value)
                changed.add(plot)
        for row in update.metric_rows:
            name = row.get("metric")
            if not isinstance(name, str):
                continue
            self.metric_rows += 1
            self.latest_metrics[name] = row
            kimg, value = finite_number(row.get("kimg")), finite_number(row.get("value"))
            if kimg is None or value is None:
                continue
            series = self.plots[PLOT_METRICS].setdefault(name, Series())
            series.xs.append(kimg)
            series.ys.append(value)
            changed.add(PLOT_METRICS)
        return changed

    def metric_table(self) -> list[tuple[str, str, str]]:
        """(name, value, kimg) rows for the latest evaluation of every metric, sub-results included."""
        table: list[tuple[str, str, str]] = []
        for name in sorted(self.latest_metrics):
            row = self.latest_metrics[name]
            kimg = format_number(finite_number(row.get("kimg")))
            results = row.get("results")
            table.append((name, format_number(finite_number(row.get("value"))), kimg))
            if isinstance(results, dict):
                for key, value in results.items():
                    if key != name:
                        table.append(("  " + key, format_number(finite_number(value)), kimg))
        return table


def scalar_options(options: dict | None) -> list[tuple[str, str]]:
    """Top-level scalar fields (and short lists of scalars) of ``training_options.json``, the most
    telling first; nested sections are left out."""
    if not options:
        return []
    first = ("cfg", "data", "batch", "gpus", "kimg", "metrics")
    keys = [k for k in first if k in options] + [k for k in options if k not in first]
    rows = []
    for key in keys:
        value = options[key]
        if isinstance(value, str):
            rows.append((key, value))
        elif value is None or isinstance(value, (bool, int, float)):
            rows.append((key, json.dumps(value)))
        elif isinstance(value, list) and len(value) <= 8 and all(isinstance(v, (int, float, str)) for v in value):
            rows.append((key, ", ".join(str(v) for v in value)))  # short lists such as metrics=[swd]
    return rows


def format_number(value: float | None) -> str:
    """Compact display of a number; "-" for a missing one (the default font is ASCII only)."""
    if value is None:
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def format_bytes(size: int) -> str:
    """Human-readable file size."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``95`` -> ``1m 35s``; ``7384`` -> ``2h 03m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_mtime(mtime: float, now: float | None = None) -> str:
    """A file time as ``HH:MM:SS`` if it is from today, else ``MM-DD HH:MM``."""
    local = time.localtime(mtime)
    if time.localtime(now)[:3] == local[:3]:
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%m-%d %H:%M", local)


def fit_size(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size with ``width:height``'s aspect ratio that fits in the box (at least 1x1)."""
    scale = min(box_width / width, box_height / height)
    return max(1, int(width * scale)), max(1, int(height * scale))


MAX_TEXTURE_SIDE = 2048
"""Grids are downscaled to this before upload; the panel is never that large anyway."""


def load_rgba(path: Path, max_side: int = MAX_TEXTURE_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """(float32 ``[H, W, 4]`` RGBA in 0..1 at most ``max_side`` per side, original (width, height))."""
    from PIL import Image

    with Image.open(path) as image:
        original_size = image.size
        image = image.convert("RGBA")
        if max(image.size) > max_side:
            w, h = fit_size(image.width, image.height, max_side, max_side)
            image = image.resize((w, h), Image.Resampling.BOX)
        pixels = np.asarray(image, dtype=np.float32)
    return np.ascontiguousarray(pixels / 255.0), original_size


# --------------------------------------------------------------------------------------------
# The window (dearpygui); it only renders `RunHistory` and the latest `RunUpdate`.

STATUS_COLORS: dict[RunStatus, tuple[int, int, int]] = {
    RunStatus.MISSING: (255, 90, 90),
    RunStatus.WAITING: (240, 200, 80),
    RunStatus.TRAINING: (110, 220, 110),
    RunStatus.IDLE: (170, 170, 170),
}
MUTED = (150, 150, 150)
PAD = 8  # space between panels, px
HEADER_HEIGHT = 46
FRAME_PERIOD_S = 1 / 30  # render at most this often: a monitor needs no more and shares the CPU


class MonitorWindow:
    """The dearpygui window: header, 2x2 plots, sample grid, run info, metrics and snapshots."""

    def __init__(self, run_dir: Path, width: int, height: int) -> None:
        # Imported here so that the GUI-free half of this module works without dearpygui.
        import dearpygui.dearpygui as dpg

        self.dpg = dpg
        self.run_dir = run_dir
        self.history = RunHistory()
        self._texture: int | str | None = None
        self._texture_size: tuple[int, int] = (0, 0)  # (w, h) of the texture's pixels
        self._shown_image: ImageFile | None = None
        self._unreadable_image: ImageFile | None = None
        self._images: dict[str, ImageFile | None] = {"samples": None, "reals": None}
        self._snapshots: list[SnapshotInfo] | None = None
        self._options: dict | None = None
        self._metric_rows_shown: list[tuple[str, str, str]] | None = None
        self._series: dict[tuple[str, str], int | str] = {}
        self._layout_size = (0, 0)

        dpg.create_context()
        dpg.create_viewport(title=f"3D-GAN Studio monitor - {run_dir}", width=width, height=height,
                            min_width=640, min_height=400)
        self._texture_registry = dpg.add_texture_registry()
        with dpg.theme() as plot_theme:
            with dpg.theme_component(dpg.mvAll):
                # Fitted data should not sit on the frame, where flat lines and end points vanish.
                dpg.add_theme_style(dpg.mvPlotStyleVar_FitPadding, 0.04, 0.08, category=dpg.mvThemeCat_Plots)
        dpg.bind_theme(plot_theme)
        self._build()
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window(self._root, True)

    # -- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        """Create all items; sizes are set later by `relayout_if_resized`."""
        dpg = self.dpg
        with dpg.window(no_scrollbar=True) as self._root:
            with dpg.child_window(height=HEADER_HEIGHT, border=False, no_scrollbar=True) as self._header:
                with dpg.group(horizontal=True):
                    dpg.add_text("3D-GAN Studio monitor")
                    dpg.add_text(str(self.run_dir), color=MUTED)
                with dpg.group(horizontal=True):
                    self._status_text = dpg.add_text("starting", color=STATUS_COLORS[RunStatus.WAITING])
                    self._summary_text = dpg.add_text("", color=MUTED)
            with dpg.group(horizontal=True):
                with dpg.child_window(border=False, no_scrollbar=True) as self._plots_panel:
                    self._plots: dict[str, dict[str, int | str]] = {}
                    for row in ((PLOT_LOSSES, PLOT_REGULARIZERS), (PLOT_SPEED, PLOT_METRICS)):
                        with dpg.group(horizontal=True):
                            for name in row:
                                self._plots[name] = self._add_plot(name)
                with dpg.child_window(border=False, no_scrollbar=True) as self._side_panel:
                    with dpg.child_window(no_scrollbar=True) as self._image_panel:
                        with dpg.group(horizontal=True):
                            # No callback: dearpygui runs callbacks on its own thread; the frame
                            # loop reads the choice instead (`render_frame`).
                            self._image_choice = dpg.add_radio_button(
                                ["newest samples", "reals"], default_value="newest samples", horizontal=True)
                            self._image_caption = dpg.add_text("no sample grid yet", color=MUTED)
                        self._image = dpg.add_image(self._placeholder_texture(), show=False)
                    with dpg.group(horizontal=True):
                        with dpg.child_window() as self._info_panel:
                            dpg.add_text("Run options")
                            self._options_table = self._add_table(("option", "value"), (1.0, 1.3))
                        with dpg.child_window() as self._metrics_panel:
                            dpg.add_text("Metrics (latest)")
                            self._metrics_table = self._add_table(("metric", "value", "kimg"), (1.2, 1.0, 0.6))
                    with dpg.child_window() as self._snapshots_panel:
                        self._snapshots_title = dpg.add_text("Snapshots")
                        self._snapshots_table = self._add_table(("name", "size", "modified"), (3.9, 0.8, 1.1))

    def _add_plot(self, name: str) -> dict[str, int | str]:
        """A plot with legend and kimg x axis; returns its item ids by role (plot, x, y[, y2])."""
        dpg = self.dpg
        with dpg.plot(label=name, width=100, height=100, no_mouse_pos=True) as plot:
            dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthEast)
            x_axis = dpg.add_plot_axis(dpg.mvXAxis, label="kimg")
            y_axis = dpg.add_plot_axis(dpg.mvYAxis, label="sec/kimg" if name == PLOT_SPEED else None)
            axes = {"plot": plot, "x": x_axis, "y": y_axis}
            if name == PLOT_SPEED:
                # img/s and sec/kimg differ in scale; a second y axis keeps both readable.
                axes["y2"] = dpg.add_plot_axis(dpg.mvYAxis2, label="img/s", opposite=True)
        if name == PLOT_METRICS:
            # Metrics are evaluated rarely: markers make a lone first evaluation visible at all.
            with dpg.theme() as markers:
                with dpg.theme_component(dpg.mvLineSeries):
                    dpg.add_theme_style(dpg.mvPlotStyleVar_Marker, dpg.mvPlotMarker_Circle, category=dpg.mvThemeCat_Plots)
                    dpg.add_theme_style(dpg.mvPlotStyleVar_MarkerSize, 4, category=dpg.mvThemeCat_Plots)
            dpg.bind_item_theme(plot, markers)
        return axes

    def _add_table(self, columns: tuple[str, ...], weights: tuple[float, ...]) -> int | str:
        """A scrolling table whose columns share the width in proportion to ``weights``."""
        dpg = self.dpg
        with dpg.table(header_row=True, row_background=True, borders_innerV=True, scrollY=True,
                       policy=dpg.mvTable_SizingStretchProp, height=-1) as table:
            for label, weight in zip(columns, weights):
                dpg.add_table_column(label=label, init_width_or_weight=weight)
        return table

    def _placeholder_texture(self) -> int | str:
        """A 1x1 texture for the image item until the first grid arrives."""
        pixels = np.zeros((1, 1, 4), np.float32)
        self._texture = self.dpg.add_dynamic_texture(1, 1, pixels.ravel(), parent=self._texture_registry)
        self._texture_size = (1, 1)
        return self._texture

    # -- layout --------------------------------------------------------------------------------

    def relayout_if_resized(self) -> None:
        """Size the panels to the viewport (once, and again whenever the viewport is resized)."""
        dpg = self.dpg
        size = (dpg.get_viewport_client_width(), dpg.get_viewport_client_height())
        if size == self._layout_size:
            return
        self._layout_size = size
        width, height = size
        body_w, body_h = width - 2 * PAD, height - 2 * PAD - HEADER_HEIGHT - PAD
        plots_w = int(body_w * 0.54)
        side_w = body_w - plots_w - PAD
        dpg.configure_item(self._plots_panel, width=plots_w, height=body_h)
        plot_w, plot_h = (plots_w - PAD) // 2, (body_h - PAD) // 2
        for axes in self._plots.values():
            dpg.configure_item(axes["plot"], width=plot_w, height=plot_h)
        dpg.configure_item(self._side_panel, width=side_w, height=body_h)
        image_h = min(int(body_h * 0.52), side_w + 34)
        tables_h = int((body_h - image_h - 2 * PAD) * 0.55)
        snapshots_h = body_h - image_h - tables_h - 2 * PAD
        dpg.configure_item(self._image_panel, width=side_w, height=image_h)
        dpg.configure_item(self._info_panel, width=(side_w - PAD) // 2, height=tables_h)
        dpg.configure_item(self._metrics_panel, width=side_w - PAD - (side_w - PAD) // 2, height=tables_h)
        dpg.configure_item(self._snapshots_panel, width=side_w, height=snapshots_h)
        self._fit_image()

    def _fit_image(self) -> None:
        """Scale the shown grid to the image panel, keeping its aspect ratio, centred."""
        if self._shown_image is None:
            return
        panel = self.dpg.get_item_configuration(self._image_panel)
        panel_w, panel_h = panel["width"], panel["height"]
        box_w, box_h = panel_w - 2 * PAD, panel_h - 2 * PAD - 30  # minus the caption line
        w, h = fit_size(*self._texture_size, max(box_w, 1), max(box_h, 1))
        self.dpg.configure_item(self._image, width=w, height=h, indent=max(0, (box_w - w) // 2), show=True)

    # -- updates -------------------------------------------------------------------------------

    def apply(self, update: RunUpdate) -> None:
        """Render one poll's result."""
        dpg = self.dpg
        for plot in self.history.apply(update):
            self._update_plot(plot)
        dpg.configure_item(self._status_text, color=STATUS_COLORS[update.status])
        dpg.set_value(self._status_text, update.message)
        dpg.set_value(self._summary_text, self._summary(update))
        self._images = {"samples": update.samples, "reals": update.reals}
        self._refresh_image()
        if update.options != self._options:
            self._options = update.options
            self._fill_table(self._options_table, scalar_options(update.options))
        metric_rows = self.history.metric_table()
        if metric_rows != self._metric_rows_shown:
            self._metric_rows_shown = metric_rows
            self._fill_table(self._metrics_table, metric_rows)
        if update.snapshots != self._snapshots:
            self._snapshots = update.snapshots
            dpg.set_value(self._snapshots_title, f"Snapshots ({len(update.snapshots)}, newest first)")
            self._fill_table(self._snapshots_table, [
                (s.name, format_bytes(s.size_bytes), format_mtime(s.mtime)) for s in update.snapshots])

    def _summary(self, update: RunUpdate) -> str:
        """The header's second line: progress (from the log), latest snapshot, freshness, counts."""
        row = self.history.last_log_row or {}
        parts = [f"kimg {format_number(finite_number(row.get('kimg')))}"]
        if (snapshot_kimg := finite_number((update.latest or {}).get("kimg"))) is not None:
            parts.append(f"latest snapshot at kimg {format_number(snapshot_kimg)}")
        if (tick := finite_number(row.get("tick"))) is not None:
            parts.append(f"tick {int(tick)}")
        if (elapsed := finite_number(row.get("time_s"))) is not None:
            parts.append(f"elapsed {format_duration(elapsed)}")
        if update.log_age_s is not None:
            parts.append(f"last tick {format_duration(update.log_age_s)} ago")
        parts.append(f"{self.history.log_rows} ticks, {self.history.metric_rows} metric evals")
        if update.skipped_lines:
            parts.append(f"{update.skipped_lines} unreadable lines skipped")
        return "   |   ".join(parts)

    def _update_plot(self, plot: str) -> None:
        """Sync the plot's line series with `RunHistory` (add new keys, drop reset ones)."""
        dpg = self.dpg
        axes = self._plots[plot]
        series = self.history.plots[plot]
        for key in [k for k in self._series if k[0] == plot and k[1] not in series]:
            dpg.delete_item(self._series.pop(key))  # dropped by a log reset
        for key, data in series.items():
            tag = self._series.get((plot, key))
            if tag is None:
                axis = axes["y2"] if plot == PLOT_SPEED and key == "img_per_s" else axes["y"]
                tag = dpg.add_line_series(data.xs, data.ys, parent=axis, label=series_label(plot, key))
                self._series[(plot, key)] = tag
            else:
                dpg.set_value(tag, [data.xs, data.ys])
        # Refit on new data only, so that between polls the user can still zoom and pan.
        for name in ("x", "y", "y2"):
            if name in axes:
                dpg.fit_axis_data(axes[name])

    def _fill_table(self, table: int | str, rows: list[tuple[str, ...]]) -> None:
        """Replace the table's rows."""
        dpg = self.dpg
        dpg.delete_item(table, children_only=True, slot=1)  # slot 1 holds the rows, 0 the columns
        for row in rows:
            with dpg.table_row(parent=table):
                for cell in row:
                    dpg.add_text(cell)

    def _refresh_image(self) -> None:
        """Show the chosen image (newest grid or reals), uploading it only when its file changed."""
        dpg = self.dpg
        which = "reals" if dpg.get_value(self._image_choice) == "reals" else "samples"
        image = self._images[which]
        if image is None:
            dpg.set_value(self._image_caption, "no reals.png yet" if which == "reals" else "no sample grid yet")
            dpg.configure_item(self._image, show=False)
            self._shown_image = None
            return
        if image == self._shown_image or image == self._unreadable_image:
            return
        try:
            pixels, (orig_w, orig_h) = load_rgba(image.path)
        except (OSError, ValueError) as e:
            self._unreadable_image = image  # retried only once the file changes
            dpg.set_value(self._image_caption, f"{image.path.name}: cannot read ({e})")
            return  # keep showing the previous grid
        h, w = pixels.shape[:2]
        if (w, h) == self._texture_size:
            dpg.set_value(self._texture, pixels.ravel())
        else:
            # Dynamic textures have a fixed size: swap in a new one and free the old.
            old = self._texture
            self._texture = dpg.add_dynamic_texture(w, h, pixels.ravel(), parent=self._texture_registry)
            self._texture_size = (w, h)
            dpg.configure_item(self._image, texture_tag=self._texture)
            dpg.delete_item(old)
        self._shown_image = image
        dpg.set_value(self._image_caption, f"{image.path.name}  {orig_w}x{orig_h}")
        self._fit_image()

    # -- frame loop ----------------------------------------------------------------------------

    @property
    def shown_image(self) -> ImageFile | None:
        """The image file currently on screen."""
        return self._shown_image

    def is_open(self) -> bool:
        """False once the user has closed the window."""
        return self.dpg.is_dearpygui_running()

    def render_frame(self) -> None:
        """Lay out (if the viewport changed size), follow the image choice, and draw one frame."""
        self.relayout_if_resized()
        self._refresh_image()
        self.dpg.render_dearpygui_frame()

    def save_screenshot(self, path: Path, timeout_s: float = 10.0) -> None:
        """Write the next rendered frame to ``path`` as PNG; returns once the file is complete.

        ``output_frame_buffer`` only asks for a capture: the PNG is written while a later frame
        is rendered. It goes to a temporary name first and is renamed when it decodes, so ``path``
        never holds a partial image.
        """
        from PIL import Image

        partial = path.with_name(f".{path.stem}.partial.png")
        partial.unlink(missing_ok=True)
        self.dpg.output_frame_buffer(file=str(partial))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.render_frame()
            if partial.exists():
                try:
                    with Image.open(partial) as image:
                        image.load()
                except (OSError, ValueError):
                    pass  # still being written
                else:
                    os.replace(partial, path)
                    return
            time.sleep(FRAME_PERIOD_S)
        raise RuntimeError(f"{path}: the frame buffer was not written within {timeout_s:.0f} s")

    def close(self) -> None:
        """Close the window and free dearpygui's state."""
        self.dpg.destroy_context()


# --------------------------------------------------------------------------------------------
# Command line.

DEFAULT_SCREENSHOT_FRAMES = 30
"""Frames rendered before ``--screenshot`` is taken when ``--exit-after-frames`` is not given."""


def run_monitor(window: MonitorWindow, follower: RunFollower, *, interval_s: float,
                exit_after_frames: int | None = None, screenshot: Path | None = None) -> int:
    """The frame loop: poll every ``interval_s``, render, and stop when asked or when closed."""
    frames = 0
    next_poll = 0.0
    while window.is_open():
        frame_start = time.monotonic()
        if frame_start >= next_poll:
            window.apply(follower.poll())
            next_poll = frame_start + interval_s
        window.render_frame()
        frames += 1
        if frames == 1:
            # Automation (and the tests) wait for this line before changing the run under us.
            print(f"monitor: following {follower.run_dir}", flush=True)
        if exit_after_frames is not None and frames >= exit_after_frames:
            break
        time.sleep(max(0.0, FRAME_PERIOD_S - (time.monotonic() - frame_start)))
    if screenshot is not None and not window.is_open():
        print(f"error: {screenshot}: window closed after {frames} frames, before the screenshot", file=sys.stderr)
        return 1
    if screenshot is not None:
        window.apply(follower.poll())  # the picture shows the run as it is now, not one interval ago
        window.save_screenshot(screenshot)
        history, shown = window.history, window.shown_image
        print(f"monitor: wrote {screenshot} after {frames} frames: {history.log_rows} ticks, "
              f"{history.metric_rows} metric evals, image {shown.path.name if shown else 'none'}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``train.py monitor`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="train.py monitor", description="Follow a training run live: losses, metrics, sample grids, snapshots.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run's output folder")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="poll period (default 1.0)")
    parser.add_argument("--width", type=int, default=1400, help="window width in pixels (default 1400)")
    parser.add_argument("--height", type=int, default=880, help="window height in pixels (default 880)")
    parser.add_argument("--screenshot", metavar="PATH", help="save the window as PNG and exit")
    parser.add_argument("--exit-after-frames", type=int, metavar="N",
                        help=f"exit after rendering N frames (with --screenshot default {DEFAULT_SCREENSHOT_FRAMES})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``train.py monitor``: returns the exit status (2 for a bad RUN_DIR, before any window opens)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.interval > 0:
        parser.error("--interval must be > 0")
    if args.width < 640 or args.height < 400:
        parser.error("--width must be >= 640 and --height >= 400")
    if args.exit_after_frames is not None and args.exit_after_frames < 1:
        parser.error("--exit-after-frames must be >= 1")
    run_dir = Path(args.run_dir)
    if not run_dir.exists():
        print(f"error: {run_dir}: no such directory", file=sys.stderr)
        return 2
    if not run_dir.is_dir():
        print(f"error: {run_dir}: not a directory", file=sys.stderr)
        return 2
    screenshot = Path(args.screenshot) if args.screenshot else None
    if screenshot is not None and not screenshot.parent.is_dir():
        print(f"error: {screenshot}: folder {screenshot.parent} does not exist", file=sys.stderr)
        return 2
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        # GLFW would abort the process without a usable message.
        print("error: no display: set DISPLAY, or run under xvfb-run for automation", file=sys.stderr)
        return 1
    exit_after = args.exit_after_frames
    if screenshot is not None and exit_after is None:
        exit_after = DEFAULT_SCREENSHOT_FRAMES

    window = MonitorWindow(run_dir, args.width, args.height)
    try:
        return run_monitor(window, RunFollower(run_dir), interval_s=args.interval,
                           exit_after_frames=exit_after, screenshot=screenshot)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is the normal way to stop following from a terminal
    finally:
        window.close()


if __name__ == "__main__":
    sys.exit(main())
