"""Session scripts: a JSON list of actions played through the app's own input and action paths.

Used for reproducible figures and for the GUI tests. Each action is one JSON object:

* ``{"set": {"seed": 3, "psi": 0.7, "yaw": 0.4, "mode": "depth", ...}}``: edit the state as the
  panels do (keys: ``SET_KEYS``; ``class_index`` picks the class of a class-conditional model).
* ``{"drag": [dx, dy], "button": "left"}``: a mouse drag from the viewport centre, delivered as
  window callbacks (press, moves, release), exactly like a real one. ``"right"`` pans.
* ``{"panels": {"Capture": true, "Latent": false}}``: expand or collapse panels by title.
* ``{"scroll": notches}``, ``{"key": "R", "ctrl": false, "shift": false}``: wheel and keyboard (glfw key
  names: "TAB", "F1", "EQUAL" ...), also through the callbacks.
* ``{"frames": n}``: run n UI frames. ``{"wait": true}``: until the screen shows the newest request.
* ``{"screenshot": "out.png", "what": "image|window", "height": 512}``: waits for the screen to
  settle first; image shots are at the native size unless ``height`` is given.
* ``{"video": "out.mp4", "frames": n, "trajectory": "orbit", "mode": "rgb", "fps": 30, "seeds": "0-3",
  "height": 512}``: frames at the native size unless ``height`` is given (width follows the aspect).
* ``{"export_mesh": "m.ply", "res": 128, "level": 10, "colors": false}``
* ``{"load": "path", "release": "pigan-cats"}`` (release: optional),
  ``{"keyframe": "add", "seed": false, "duration": 4.0}`` (the current view as the
  path's next keyframe; ``duration`` respaces the path evenly), ``{"save_camera_path": "p.json"}``,
  ``{"load_camera_path": "p.json"}``.

The first key of an object names the action; the other keys are its options. Video, mesh and load
actions wait until their job finishes. A failed action is recorded and the script goes on with the
next one; with ``--exit`` the app then exits with status 1, having printed every failed action and
its problem (one line each). Waits fail at once when no model is loaded.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import glfw

from app import camera_control

LATENT_KEYS = {"seed_x", "seed_y", "psi", "trunc_cutoff", "mix_seed", "noise_mode", "class_index"}
VIEW_KEYS = {"yaw", "pitch", "radius", "fov", "pivot"}
QUALITY_KEYS = {"neural_resolution", "depth_samples", "importance_samples", "superres"}
ARGS_KEYS = {"mode", "normals_source", "mesh_resolution", "mesh_level", "mesh_colors", "cond_follows_view"}
DISPLAY_KEYS = {"colormap", "depth_range", "depth_near", "depth_far", "depth_invert", "normals_style", "wireframe"}
OTHER_KEYS = {"seed", "mix_layers", "cond_yaw", "cond_pitch", "camera_preset", "adaptive", "target_fps",
              "animate", "fps_cap", "follow", "screenshot_what", "out_dir"}
SET_KEYS = sorted({*LATENT_KEYS, *VIEW_KEYS, *QUALITY_KEYS, *ARGS_KEYS, *DISPLAY_KEYS, *OTHER_KEYS})
ACTIONS = ("set", "panels", "drag", "scroll", "key", "frames", "wait", "screenshot", "video", "export_mesh", "load",
           "keyframe", "save_camera_path", "load_camera_path")
BUTTONS = {"left": glfw.MOUSE_BUTTON_LEFT, "right": glfw.MOUSE_BUTTON_RIGHT, "middle": glfw.MOUSE_BUTTON_MIDDLE}


class ScriptError(ValueError):
    """A script could not be read or one of its actions failed."""


def load_script(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a script file; ScriptError names the file and the bad action."""
    path = Path(path)
    try:
        actions = json.loads(path.read_text())
    except OSError as e:
        raise ScriptError(f"{path}: cannot read: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ScriptError(f"{path}: not JSON: {e}") from e
    if not isinstance(actions, list):
        raise ScriptError(f"{path}: a script is a JSON list of actions")
    for i, action in enumerate(actions):
        if not isinstance(action, dict) or action_kind(action) is None:
            raise ScriptError(f"{path}: action {i}: expected an object whose first key is one of {', '.join(ACTIONS)}")
        if action_kind(action) == "set":
            unknown = set(action["set"]) - set(SET_KEYS)
            if unknown:
                raise ScriptError(f"{path}: action {i}: unknown setting(s) {', '.join(sorted(unknown))}; "
                                  f"known: {', '.join(SET_KEYS)}")
    return actions


def action_kind(action: dict[str, Any]) -> str | None:
    """The action an object names: its first key (later keys are options, e.g. a video's "frames")."""
    first = next(iter(action), None)
    return first if first in ACTIONS else None


def apply_settings(viz, settings: dict[str, Any]) -> None:
    """Apply a ``set`` action to the app state (the same fields the panels edit)."""
    state = viz.state
    args = state.args.copy()  # checked before it replaces the request the app renders
    for key, value in settings.items():
        if key == "seed":
            args.latent.seed_x, args.latent.seed_y = float(value), 0.0
        elif key in LATENT_KEYS:
            setattr(args.latent, key, float(value) if key in ("seed_x", "seed_y", "psi") else value)
        elif key == "mix_layers":
            args.latent.mix_layers = tuple(int(v) for v in value)
        elif key in VIEW_KEYS:
            field_name = {"fov": "fov_degrees"}.get(key, key)
            setattr(args.view, field_name, tuple(value) if key == "pivot" and value is not None else value)
        elif key in ("cond_yaw", "cond_pitch"):
            setattr(args.cond, key.removeprefix("cond_"), float(value))
        elif key == "camera_preset":
            camera_control.apply_preset(args.view, value, state.model.camera_fov)
        elif key in QUALITY_KEYS:
            setattr(args.quality, key, value)
        elif key in ARGS_KEYS:
            setattr(args, key, value)
        elif key in DISPLAY_KEYS:
            setattr(state.display, {"wireframe": "mesh_wireframe"}.get(key, key), value)
        elif key == "adaptive":
            state.adaptive.enabled = bool(value)
        elif key == "target_fps":
            state.adaptive.target_fps = float(value)
        elif key == "animate":
            state.animate = bool(value)
        elif key == "fps_cap":
            state.perf.fps_cap = float(value)
        elif key == "follow":
            state.model.follow = bool(value)
        elif key in ("screenshot_what", "out_dir"):
            setattr(state.capture, key, value)
    _check_args(args)
    for f in dataclasses.fields(args):  # in place: the panels and the camera hold this object
        setattr(state.args, f.name, getattr(args, f.name))


def _check_args(args) -> None:
    from renderers.render_args import NORMALS_SOURCES, RENDER_MODES

    try:
        args.check()
    except ValueError as e:
        raise ScriptError(str(e)) from None
    if args.mode not in RENDER_MODES:
        raise ScriptError(f"mode {args.mode!r}: choose one of {', '.join(RENDER_MODES)}")
    if args.normals_source not in NORMALS_SOURCES:
        raise ScriptError(f"normals_source {args.normals_source!r}: choose one of {', '.join(NORMALS_SOURCES)}")


class ScriptPlayer:
    """Steps through actions, one or more per UI frame, waiting where an action needs it."""

    def __init__(self, viz, actions: list[dict[str, Any]], exit_when_done: bool = False, timeout: float = 600.0):
        self.viz = viz
        self.actions = list(actions)
        self.index = 0
        self.exit_when_done = exit_when_done
        self.timeout = timeout
        self.errors: list[str] = []
        """Every failed action, named (the script goes on after a failure)."""
        self._frames_left = 0
        self._waiting_for: Any = None
        self._wait_started = 0.0
        self.done = False

    @property
    def error(self) -> str | None:
        """All failed actions on one line each, or None."""
        return "\n".join(self.errors) if self.errors else None

    def _fail(self, problem: str) -> None:
        """Record the current action as failed; the script goes on with the next one."""
        message = f"script action {self.index} {json.dumps(self.actions[self.index])[:200]}: {problem}"
        self.errors.append(message)
        self.viz.state.notify(message, "error")

    def _finish(self, status: int) -> None:
        self.done = True
        if self.exit_when_done:
            self.viz.exit_code = status

    def step(self) -> None:
        """Called once per UI frame."""
        while not self.done:
            if self._frames_left > 0:
                self._frames_left -= 1
                return
            if self._waiting_for is not None:
                if not self._wait_done():
                    if time.monotonic() - self._wait_started > self.timeout:
                        self._fail(f"timed out after {self.timeout:.0f} s")
                    else:
                        return
                self._waiting_for = None
                self.index += 1
                continue
            if self.index >= len(self.actions):
                failed = len(self.errors)
                self.viz.state.notify(f"script finished, {failed} action(s) failed" if failed else "script finished",
                                      "error" if failed else "info")
                self._finish(1 if failed else 0)
                return
            try:
                self._start(self.actions[self.index])
            except Exception as e:  # noqa: BLE001 - reported with the action that caused it
                self._fail(str(e))
                self._waiting_for = None
            if self._waiting_for is None:  # a frames countdown runs before the next action
                self.index += 1

    def _wait(self, what: Any) -> None:
        self._waiting_for = what
        self._wait_started = time.monotonic()

    def _wait_done(self) -> bool:
        what = self._waiting_for
        viz = self.viz
        no_model = viz.worker.renderer is None and viz.state.model.loading is None
        if no_model and (what == "settled" or (isinstance(what, tuple) and what[0] == "screenshot")):
            self._fail(f"no model is loaded ({viz.state.model.error or 'nothing to render'})")
            return True  # nothing will ever be drawn: fail now, not after the timeout
        if what == "settled":
            return viz.settled()
        if isinstance(what, tuple) and what[0] == "screenshot":
            if not viz.settled():
                return False
            _, target, kind, height = what  # settled: take it now (window shots complete at the frame's end)
            self._waiting_for = ("saved", None)
            viz.screenshot(target, kind, height=height,
                           on_done=lambda _path, error: setattr(self, "_waiting_for", ("saved", error or "")))
            return False
        if isinstance(what, tuple) and what[0] == "saved":
            error = what[1]
            if error is None:  # not written yet
                return False
            if error:
                self._fail(f"screenshot not saved: {error}")
            return True
        if hasattr(what, "finished"):  # a job
            if not what.finished or what in viz.jobs:
                return False
            if what.error:
                self._fail(what.error)
            return True
        return True

    def _start(self, action: dict[str, Any]) -> None:
        from renderers.images import check_height

        viz = self.viz
        kind = action_kind(action)
        if kind is None:
            raise ScriptError(f"the first key must be one of {', '.join(ACTIONS)}")
        if kind == "set":
            apply_settings(viz, action["set"])
        elif kind == "panels":
            titles = {w.title for w in viz.widgets}
            unknown = set(action["panels"]) - titles
            if unknown:
                raise ScriptError(f"unknown panel(s) {', '.join(sorted(unknown))}; panels: {', '.join(sorted(titles))}")
            viz.panel_requests.update({title: bool(v) for title, v in action["panels"].items()})
        elif kind == "drag":
            dx, dy = (float(v) for v in action["drag"])
            self._inject_drag(dx, dy, BUTTONS[action.get("button", "left")], int(action.get("steps", 8)))
        elif kind == "scroll":
            x, y, w, h = viz.viewport_rect()
            viz.window.cursor_callback(viz.window.handle, x + w / 2, y + h / 2)
            viz.window.scroll_callback(viz.window.handle, 0.0, float(action["scroll"]))
        elif kind == "key":
            name = str(action["key"]).upper()
            key = getattr(glfw, f"KEY_{name}", None)
            if key is None:
                raise ScriptError(f"unknown key {action['key']!r}")
            mods = (glfw.MOD_CONTROL if action.get("ctrl") else 0) | (glfw.MOD_SHIFT if action.get("shift") else 0)
            viz.window.key_callback(viz.window.handle, key, 0, glfw.PRESS, mods)
            viz.window.key_callback(viz.window.handle, key, 0, glfw.RELEASE, mods)
        elif kind == "frames":
            self._frames_left = int(action["frames"])
        elif kind == "wait":
            self._wait("settled")
        elif kind == "screenshot":  # scripts are reproducible: native unless told, whatever the panel says
            height = check_height(action.get("height")) or 0
            self._wait(("screenshot", str(action["screenshot"]), action.get("what", "image"), height))
        elif kind == "video":
            options = {k: action[k] for k in ("frames", "fps", "trajectory", "mode", "seeds") if k in action}
            options["height"] = check_height(action.get("height")) or 0
            self._wait(viz.start_video(action["video"], **options))
        elif kind == "export_mesh":
            options = {"res": action.get("res"), "level": action.get("level"), "colors": action.get("colors"),
                       "fmt": action.get("format")}
            self._wait(viz.export_mesh(action["export_mesh"], **options))
        elif kind == "load":
            job = viz.load(str(action["load"]), release=action.get("release"))
            if job is None:
                raise ScriptError(viz.state.model.error or "could not load")
            self._wait(job)
        elif kind == "keyframe":
            if action["keyframe"] != "add":
                raise ScriptError("keyframe: only 'add' (the current view) is scriptable")
            latent = viz.state.args.latent
            viz.state.camera_path.add(copy.deepcopy(viz.state.args.view),
                                      seed=(latent.seed_x, latent.seed_y) if action.get("seed", False) else None)
            if "duration" in action:  # then space all keyframes evenly over this many seconds
                viz.state.camera_path.retime(float(action["duration"]))
        elif kind == "save_camera_path":
            viz.state.camera_path.save(action["save_camera_path"])
        elif kind == "load_camera_path":
            viz.load_camera_path(action["load_camera_path"], raise_errors=True)

    def _inject_drag(self, dx: float, dy: float, button: int, steps: int) -> None:
        """Press at the viewport centre, move in ``steps`` equal moves, release: via the callbacks."""
        viz, handle = self.viz, self.viz.window.handle
        x, y, w, h = viz.viewport_rect()
        cx, cy = x + w / 2, y + h / 2
        viz.window.cursor_callback(handle, cx, cy)
        viz.window.mouse_button_callback(handle, button, glfw.PRESS, 0)
        for i in range(1, max(steps, 1) + 1):
            viz.window.cursor_callback(handle, cx + dx * i / steps, cy + dy * i / steps)
        viz.window.mouse_button_callback(handle, button, glfw.RELEASE, 0)
