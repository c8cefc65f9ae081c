"""Settings that survive a restart: recent files, window size, panel layout and UI scale, the last
camera and quality settings, and a few capture and display choices.

They live in one JSON file, by default ``settings.json`` in the user's configuration folder
(``$XDG_CONFIG_HOME/3dgan-studio``, ``~/.config/3dgan-studio``, or ``%APPDATA%\\3dgan-studio`` on
Windows); ``visualizer.py --settings PATH`` chooses another. The app reads it at start and writes it
when it closes. A missing file means defaults; an unreadable or damaged one is reported once and
replaced at close; a value that is out of range or of the wrong type is skipped on its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

VERSION = 1
APP_FOLDER = "3dgan-studio"


def default_settings_path() -> Path:
    """``settings.json`` in the user's configuration folder."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / APP_FOLDER / "settings.json"


def load_settings(path: Path) -> tuple[dict[str, Any], str | None]:
    """(settings, problem): {} and None for a missing file; {} and a one-line problem for a bad one."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, f"settings {path} not read ({e}); using defaults"
    if not isinstance(data, dict):
        return {}, f"settings {path} not read (not a JSON object); using defaults"
    return data, None


def save_settings(path: Path, data: dict[str, Any]) -> str | None:
    """Write atomically (a temporary file, then a rename); returns a problem or None."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:
        return f"settings not saved to {path}: {e.strerror or e}"
    return None


def saved_window_size(data: dict[str, Any]) -> tuple[int, int] | None:
    size = data.get("window_size")
    if (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and 200 <= v <= 16384 for v in size)):
        return size[0], size[1]
    return None


def collect_settings(viz) -> dict[str, Any]:
    """What is remembered, as plain JSON values."""
    state = viz.state
    ui, args = state.ui, state.args
    return {
        "version": VERSION,
        "recent": list(state.model.recent),
        "window_size": list(viz.window.window_size()),
        "ui": {"user_scale": ui.user_scale, "panel_width": ui.panel_width, "panel_visible": ui.panel_visible,
               "panels_open": dict(ui.panels_open)},
        "view": args.view.to_dict(),
        "mode": args.mode,
        "quality": dataclasses.asdict(args.quality),
        "adaptive": {"enabled": state.adaptive.enabled, "target_fps": state.adaptive.target_fps},
        "display": {"colormap": state.display.colormap, "normals_style": state.display.normals_style},
        "capture": {"out_dir": state.capture.out_dir, "screenshot_what": state.capture.screenshot_what,
                    "height": state.capture.height, "show_path": state.path_view.show},
        "perf": {"fps_cap": state.perf.fps_cap},
    }


def apply_settings(viz, data: dict[str, Any]) -> None:
    """Restore what ``collect_settings`` saved; each value that does not fit is skipped on its own."""
    state = viz.state
    ui = state.ui
    recent = data.get("recent")
    if isinstance(recent, list):
        state.model.recent = [p for p in recent if isinstance(p, str) and p][:10]
    saved_ui = data.get("ui") if isinstance(data.get("ui"), dict) else {}
    _number(saved_ui, "user_scale", 0.4, 3.0, lambda v: setattr(ui, "user_scale", v))
    _number(saved_ui, "panel_width", 100.0, 4000.0, lambda v: setattr(ui, "panel_width", v))
    if isinstance(saved_ui.get("panel_visible"), bool):
        ui.panel_visible = saved_ui["panel_visible"]
    titles = {widget.title for widget in viz.widgets}
    panels = saved_ui.get("panels_open")
    if isinstance(panels, dict):
        opened = {t: v for t, v in panels.items() if t in titles and isinstance(v, bool)}
        ui.panels_open.update(opened)
        viz.panel_requests.update(opened)
    _restore_args(state, data)
    adaptive = data.get("adaptive") if isinstance(data.get("adaptive"), dict) else {}
    if isinstance(adaptive.get("enabled"), bool):
        state.adaptive.enabled = adaptive["enabled"]
    _number(adaptive, "target_fps", 5.0, 240.0, lambda v: setattr(state.adaptive, "target_fps", v))
    display = data.get("display") if isinstance(data.get("display"), dict) else {}
    from renderers.colormaps import COLORMAPS

    if display.get("colormap") in COLORMAPS:
        state.display.colormap = display["colormap"]
    if display.get("normals_style") in ("color", "shaded"):
        state.display.normals_style = display["normals_style"]
    capture = data.get("capture") if isinstance(data.get("capture"), dict) else {}
    if isinstance(capture.get("out_dir"), str) and capture["out_dir"]:
        state.capture.out_dir = capture["out_dir"]
    if capture.get("screenshot_what") in ("image", "window"):
        state.capture.screenshot_what = capture["screenshot_what"]
    if "height" in capture:
        from renderers.images import check_height

        try:  # None (native size) or a size the resize accepts
            state.capture.height = check_height(capture["height"], "capture height")
        except ValueError:
            pass
    if isinstance(capture.get("show_path"), bool):
        state.path_view.show = capture["show_path"]
    perf = data.get("perf") if isinstance(data.get("perf"), dict) else {}
    _number(perf, "fps_cap", 0.0, 240.0, lambda v: setattr(state.perf, "fps_cap", v))


def _restore_args(state, data: dict[str, Any]) -> None:
    """The camera, mode and quality, checked together as a render request (``RenderArgs.check``)."""
    from renderers.render_args import RENDER_MODES, CameraPose, QualityArgs

    for name, apply in (("view", _view), ("quality", _quality), ("mode", _mode)):
        candidate = state.args.copy()
        try:
            apply(candidate, data.get(name), CameraPose, QualityArgs, RENDER_MODES)
            candidate.check()
        except (TypeError, ValueError, KeyError):
            continue
        for f in dataclasses.fields(candidate):  # in place: the panels and the camera hold this object
            setattr(state.args, f.name, getattr(candidate, f.name))


def _view(args, value, CameraPose, _QualityArgs, _modes) -> None:
    if value is None:
        raise KeyError("view")
    args.view = CameraPose.from_dict(value)


def _quality(args, value, _CameraPose, QualityArgs, _modes) -> None:
    if not isinstance(value, dict):
        raise KeyError("quality")
    args.quality = QualityArgs(**value)
    for name in ("neural_resolution", "depth_samples", "importance_samples"):
        v = getattr(args.quality, name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise TypeError(name)
    if not isinstance(args.quality.superres, bool):
        raise TypeError("superres")


def _mode(args, value, _CameraPose, _QualityArgs, modes) -> None:
    if value not in modes:
        raise KeyError("mode")
    args.mode = value


def _number(data: dict[str, Any], key: str, low: float, high: float, setter) -> None:
    value = data.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        setter(float(value))
