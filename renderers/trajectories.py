"""Camera trajectories, keyframe camera paths and latent interpolation for videos.

Three pieces, none of which renders anything:

- named trajectories (``TRAJECTORIES``): EG3D's yaw/pitch orbit, a yaw sweep and a full circle,
  sampled as ``CameraPose`` lists around a base pose;
- ``CameraPath``: keyframed camera poses (optionally with latent seeds) edited in the app, saved as
  JSON and sampled per video frame;
- ``interpolate_latents``: a closed (or open) Catmull-Rom curve through latent keys, like the cubic
  interpolation in W of EG3D's ``gen_videos.py``.

All interpolation is a weighted sum of keys. ``hermite_weights`` / ``catmull_rom_weights`` return
those weights, so the same curve can blend anything linear: pose components here, ws in the app.

Spline: cubic Hermite segments whose tangents are Catmull-Rom finite differences *in time*,
``m_i = (p[i+1] - p[i-1]) / (t[i+1] - t[i-1])``. With evenly spaced keys this is the uniform
Catmull-Rom spline; with uneven keyframe times it stays C1 in time (a per-segment uniform
Catmull-Rom would jump in velocity at every key). Centripetal parameterisation is not used: it
measures distances between keys, which has no meaning across yaw, radius and field of view. Open
curves use one-sided differences at their ends (a straight line for two keys).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from renderers.render_args import CameraPose

TRAJECTORIES: tuple[str, ...] = ("orbit", "yaw", "circle")
"""Named trajectories, as used on the command line and in app scripts."""

EG3D_YAW_RANGE = 0.35
"""Yaw amplitude (radians) of EG3D's ``gen_videos.py`` orbit."""
EG3D_PITCH_RANGE = 0.25
"""Pitch amplitude (radians) of EG3D's ``gen_videos.py`` orbit."""

PATH_FORMAT = "3dgan-studio/camera-path"
"""Value of the ``format`` key in camera-path JSON files."""
PATH_VERSION = 1
"""Camera-path file version written by this code."""

Interpolation = Literal["spline", "linear"]
INTERPOLATIONS: tuple[str, ...] = ("spline", "linear")

Weights = list[tuple[int, float]]
"""(key index, weight) pairs; the weights sum to 1 (spline weights can be negative: overshoot)."""


# ---------------------------------------------------------------------------------------------
# Named trajectories


def trajectory_poses(
    name: str,
    n_frames: int,
    base: CameraPose,
    yaw_range: float = EG3D_YAW_RANGE,
    pitch_range: float = EG3D_PITCH_RANGE,
) -> list[CameraPose]:
    """``n_frames`` poses of a named trajectory around ``base``; frame f is at t = f / n_frames.

    All three loop: frame ``n_frames`` would equal frame 0, so the video repeats seamlessly.

    - ``orbit``: EG3D's ellipse, yaw = base.yaw + yaw_range * sin(2 pi t),
      pitch = base.pitch + pitch_range * cos(2 pi t) (starts looking from above);
    - ``yaw``: yaw = base.yaw + yaw_range * sin(2 pi t), pitch fixed;
    - ``circle``: a full turn, yaw = base.yaw + 2 pi t, pitch fixed (``yaw_range`` unused).

    Radius, field of view and pivot are copied from ``base``.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or ``n_frames < 1``.
    """
    if name not in TRAJECTORIES:
        raise ValueError(f"unknown trajectory {name!r}; valid names: {', '.join(TRAJECTORIES)}")
    n_frames = _check_frame_count(n_frames)
    poses = []
    for f in range(n_frames):
        angle = 2 * math.pi * f / n_frames
        if name == "orbit":
            yaw = base.yaw + yaw_range * math.sin(angle)
            pitch = base.pitch + pitch_range * math.cos(angle)
        elif name == "yaw":
            yaw, pitch = base.yaw + yaw_range * math.sin(angle), base.pitch
        else:  # circle
            yaw, pitch = base.yaw + angle, base.pitch
        poses.append(dataclasses.replace(base, yaw=yaw, pitch=pitch))
    return poses


def _check_frame_count(n_frames: Any) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"the number of frames must be an integer >= 1, got {n_frames!r}")
    return n_frames


# ---------------------------------------------------------------------------------------------
# Spline weights


def hermite_weights(
    times: Sequence[float],
    t: float,
    loop: bool = False,
    period: float | None = None,
    interpolation: Interpolation = "spline",
) -> Weights:
    """Weights of the keys at ``times`` for the curve's value at time ``t``.

    Args:
        times: strictly increasing key times (at least one).
        t: query time. Open curves clamp to the first/last key outside ``times``; loops wrap.
        loop: closed curve: after the last key it returns to the first at ``times[0] + period``.
        period: loop length (> ``times[-1] - times[0]``); required when ``loop`` and len > 1.
        interpolation: ``spline`` (Catmull-Rom tangents in time, C1) or ``linear``.

    Returns:
        (key index, weight) pairs, at most four, weights summing to 1. At a key time the result
        is exactly ``[(i, 1.0), ...zeros]``, so sums pass through the keys bit-exactly.
    """
    n = len(times)
    if n == 0:
        raise ValueError("no keys to interpolate")
    if n == 1:
        return [(0, 1.0)]
    t0 = times[0]
    if loop:
        if period is None or not period > times[-1] - t0:
            raise ValueError(f"loop period {period!r} must exceed the key span {times[-1] - t0!r}")
        t = t0 + (t - t0) % period
    else:
        if t <= t0:
            return [(0, 1.0)]
        if t >= times[-1]:
            return [(n - 1, 1.0)]

    def time_at(k: int) -> float:
        # Key times extended periodically: key k + n is key k one period later.
        q, r = divmod(k, n)
        return times[r] + q * (period or 0.0)

    i = min(bisect.bisect_right(times, t) - 1, n - 1)
    if not loop:
        i = min(i, n - 2)
    h = time_at(i + 1) - time_at(i)
    s = min(max((t - time_at(i)) / h, 0.0), 1.0)
    if interpolation == "linear":
        return _merge([(i, 1.0 - s), ((i + 1) % n, s)])
    if interpolation != "spline":
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {', '.join(INTERPOLATIONS)}")

    def tangent(k: int) -> Weights:
        # Catmull-Rom tangent at key k as weights of the keys (finite difference in time).
        if loop:
            lo, hi = k - 1, k + 1
        else:
            lo, hi = max(k - 1, 0), min(k + 1, n - 1)  # one-sided at the ends
        dt = time_at(hi) - time_at(lo)
        return [(hi % n, 1.0 / dt), (lo % n, -1.0 / dt)]

    s2, s3 = s * s, s * s * s
    h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, 3 * s2 - 2 * s3, s3 - s2
    terms = [(i % n, h00), ((i + 1) % n, h01)]
    terms += [(k, h * h10 * w) for k, w in tangent(i)]
    terms += [(k, h * h11 * w) for k, w in tangent(i + 1)]
    return _merge(terms)


def _merge(terms: Weights) -> Weights:
    out: dict[int, float] = {}
    for k, w in terms:
        out[k] = out.get(k, 0.0) + w
    return sorted(out.items())


def catmull_rom_weights(n_keys: int, x: float, loop: bool = True) -> Weights:
    """Uniform Catmull-Rom weights at position ``x`` in key units (key k sits at x = k).

    ``loop``: closed curve of period ``n_keys`` (x wraps); otherwise open, clamped to [0, n_keys-1].
    """
    if n_keys < 1:
        raise ValueError(f"need at least one key, got {n_keys}")
    return hermite_weights(range(n_keys), x, loop=loop, period=float(n_keys))


def interpolate_latents(keys: torch.Tensor, n_frames: int, loop: bool = True) -> torch.Tensor:
    """A Catmull-Rom curve through latent keys, sampled at ``n_frames`` frames.

    Args:
        keys: [K, ...] keys, e.g. ws [K, num_ws, w_dim] (interpolate in W, as EG3D does).
        n_frames: frames to produce (>= 1).
        loop: closed periodic curve: key k at frame k * n_frames / K and frame ``n_frames`` would
            equal frame 0. Otherwise open: frame 0 = key 0, frame n_frames-1 = key K-1, evenly.

    Returns:
        [n_frames, ...] in the dtype and device of ``keys``. Frames that fall on a key equal it
        exactly; K == 1 repeats the key.
    """
    n_frames = _check_frame_count(n_frames)
    k = keys.shape[0]
    if k < 1:
        raise ValueError("interpolate_latents needs at least one key")
    weights = torch.zeros(n_frames, k, dtype=torch.float64)
    for f in range(n_frames):
        if loop:
            x = f * k / n_frames
        else:
            x = f * (k - 1) / (n_frames - 1) if n_frames > 1 else 0.0
        for idx, w in catmull_rom_weights(k, x, loop=loop):
            weights[f, idx] = w
    # Blend in float64 so frames on a key reproduce it exactly after casting back.
    flat = keys.reshape(k, -1).to(torch.float64)
    out = weights.to(flat.device) @ flat
    return out.to(keys.dtype).reshape(n_frames, *keys.shape[1:])


# ---------------------------------------------------------------------------------------------
# Keyframe camera paths


class CameraPathError(ValueError):
    """A camera-path file or object is invalid; the message names the file and the field."""


@dataclass
class Keyframe:
    """One key of a camera path: where the camera is, when, and optionally which identity."""

    pose: CameraPose
    """The camera at this key."""
    time: float
    """Seconds from the start of the video."""
    seed: tuple[float, float] | None = None
    """Latent identity at this key as (seed_x, seed_y) of ``LatentArgs``; None: the app's current
    one. The app blends keyframe ws with ``CameraPath.blend_weights_at`` so identity and camera
    move together (seeds themselves are not interpolated: seed 4 is not between 3 and 5)."""


@dataclass
class CameraPath:
    """Keyframed camera poses sampled per video frame.

    Duration: an open path lasts from 0 s until its last keyframe (before the first keyframe the
    first pose holds). A loop adds a closing segment back to the first keyframe, as long as the
    mean of the other segments, so evenly timed keyframes stay evenly timed around the loop; its
    duration is that period. With one keyframe the duration is its time (a still).

    Radius and pivot may be None (the model's average). A component that is None at every keyframe
    stays None. When only some keyframes have None, those use ``radius_default``/``pivot_default``
    if given (the model's average, known to the caller), else the value of the nearest keyframe
    (by index) that has one: never an error, never a jump to an unknown value.

    Yaw is interpolated as a plain number (no wrapping at +-pi), so paths can turn more than once.
    """

    keyframes: list[Keyframe] = field(default_factory=list)
    """Keys with strictly increasing times."""
    fps: float = 30.0
    """Frames per second of the video made from the path."""
    loop: bool = False
    """Close the path: after the last keyframe return to the first (a seamless video loop)."""
    interpolation: Interpolation = "spline"
    """``spline``: Catmull-Rom tangents in time (C1); ``linear``: straight segments."""

    # --- timing -------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Length of the video in seconds (0 for an empty path)."""
        if not self.keyframes:
            return 0.0
        if self.loop and len(self.keyframes) > 1:
            return self._period()
        return self.keyframes[-1].time

    def _period(self) -> float:
        times = [k.time for k in self.keyframes]
        span = times[-1] - times[0]
        return span * len(times) / (len(times) - 1)

    @property
    def n_frames(self) -> int:
        """round(duration * fps), at least 1."""
        return max(1, round(self.duration * self.fps))

    def frame_times(self, n_frames: int | None = None) -> list[float]:
        """Times of ``n_frames`` evenly spaced frames (default ``self.n_frames``).

        Open path: from 0 to the last keyframe inclusive, so the video ends on the last keyframe.
        Loop: one period from the first keyframe, end exclusive (frame n would equal frame 0).
        """
        n = self.n_frames if n_frames is None else _check_frame_count(n_frames)
        self.validate()
        if self.loop and len(self.keyframes) > 1:
            start, period = self.keyframes[0].time, self._period()
            return [start + f * period / n for f in range(n)]
        end = self.duration
        return [f * end / (n - 1) if n > 1 else 0.0 for f in range(n)]

    # --- sampling -----------------------------------------------------------------------------

    def blend_weights_at(self, t_seconds: float) -> Weights:
        """(keyframe index, weight) of the curve at ``t_seconds``: the same weights as ``pose_at``.

        The app blends the keyframes' ws with them to move identity along with the camera.
        """
        self.validate()
        times = [k.time for k in self.keyframes]
        loop = self.loop and len(times) > 1
        return hermite_weights(
            times, t_seconds, loop=loop, period=self._period() if loop else None, interpolation=self.interpolation
        )

    def pose_at(
        self,
        t_seconds: float,
        radius_default: float | None = None,
        pivot_default: tuple[float, float, float] | None = None,
    ) -> CameraPose:
        """The camera at ``t_seconds``: clamped outside the keyframes (open) or wrapped (loop).

        ``radius_default``/``pivot_default`` fill keyframes whose radius/pivot is None when other
        keyframes have one (see the class docstring).
        """
        return self._blend(self.blend_weights_at(t_seconds), radius_default, pivot_default)

    def sample(
        self,
        n_frames: int | None = None,
        radius_default: float | None = None,
        pivot_default: tuple[float, float, float] | None = None,
    ) -> list[CameraPose]:
        """Poses at ``frame_times(n_frames)``: resample the path to any number of frames."""
        return [self.pose_at(t, radius_default, pivot_default) for t in self.frame_times(n_frames)]

    def frame_poses(
        self, radius_default: float | None = None, pivot_default: tuple[float, float, float] | None = None
    ) -> list[CameraPose]:
        """One pose per video frame: ``n_frames`` = round(duration * fps) frames, at least 1."""
        return self.sample(None, radius_default, pivot_default)

    def _blend(
        self, weights: Weights, radius_default: float | None, pivot_default: tuple[float, float, float] | None
    ) -> CameraPose:
        keys = [k.pose for k in self.keyframes]

        def mix(values: Sequence[float]) -> float:
            return sum(w * values[i] for i, w in weights)

        radii = _fill_missing([p.radius for p in keys], radius_default)
        pivots = _fill_missing([p.pivot for p in keys], pivot_default)
        return CameraPose(
            yaw=mix([p.yaw for p in keys]),
            pitch=mix([p.pitch for p in keys]),
            radius=None if radii is None else mix(radii),
            fov_degrees=mix([p.fov_degrees for p in keys]),
            pivot=None if pivots is None else tuple(mix([p[c] for p in pivots]) for c in range(3)),
        )

    # --- editing (the app's keyframe list) ----------------------------------------------------

    def add(
        self, pose: CameraPose, seed: tuple[float, float] | None = None, after: int | None = None, step: float = 1.0
    ) -> int:
        """Insert a keyframe after index ``after`` (default: at the end); returns its index.

        At the end it comes one mean keyframe spacing after the last (``step`` seconds for the
        first two keyframes); in between, halfway between its neighbours, so times stay sorted.
        """
        kfs = self.keyframes
        index = len(kfs) if after is None else after + 1
        if not 0 <= index <= len(kfs):
            raise IndexError(f"cannot insert after keyframe {after}; the path has {len(kfs)}")
        if not kfs:
            time = 0.0
        elif index == len(kfs):
            spacing = (kfs[-1].time - kfs[0].time) / (len(kfs) - 1) if len(kfs) > 1 else step
            time = kfs[-1].time + spacing
        elif index == 0:
            time = kfs[0].time / 2
            if time == kfs[0].time:  # first keyframe at 0: shift everything to make room
                for k in kfs:
                    k.time += step
                time = 0.0
        else:
            time = (kfs[index - 1].time + kfs[index].time) / 2
        kfs.insert(index, Keyframe(pose=dataclasses.replace(pose), time=time, seed=seed))
        return index

    def remove(self, index: int) -> Keyframe:
        """Delete keyframe ``index`` (the other keyframes keep their times); returns it."""
        return self.keyframes.pop(index)

    def move(self, index: int, offset: int) -> int:
        """Reorder: swap keyframe ``index``'s pose and seed with the one ``offset`` places away.

        Times stay in their slots, so the order of times is unchanged. Returns the new index
        (clamped to the list; moving past an end does nothing).
        """
        kfs = self.keyframes
        if not 0 <= index < len(kfs):
            raise IndexError(f"keyframe {index} does not exist; the path has {len(kfs)}")
        target = min(max(index + offset, 0), len(kfs) - 1)
        step = 1 if target > index else -1
        for i in range(index, target, step):  # bubble, so moves by more than one keep the order
            a, b = kfs[i], kfs[i + step]
            a.pose, b.pose = b.pose, a.pose
            a.seed, b.seed = b.seed, a.seed
        return target

    def retime(self, duration: float) -> None:
        """Space the keyframes evenly so that ``self.duration == duration`` (the app's duration field).

        Open: times 0 .. duration; loop: i * duration / K (the closing segment is one spacing).
        A single keyframe gets time ``duration`` (a still of that length).
        """
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        n = len(self.keyframes)
        if n == 1:
            self.keyframes[0].time = float(duration)
            return
        for i, k in enumerate(self.keyframes):
            k.time = i * duration / n if self.loop else i * duration / (n - 1)

    # --- validation and files -----------------------------------------------------------------

    def validate(self, source: str = "camera path") -> None:
        """Check everything ``load`` checks; ``source`` prefixes the messages (e.g. a file name).

        Raises:
            CameraPathError: one line, ``<source>: <field>: <problem>``.
        """
        self._from_json_checked(self.to_json(check=False), source)

    def to_json(self, check: bool = True) -> dict[str, Any]:
        """The path as a JSON-ready dict (see ``load`` for the format)."""
        if check:
            self.validate()
        return {
            "format": PATH_FORMAT,
            "version": PATH_VERSION,
            "fps": _plain(self.fps),
            "loop": self.loop,
            "interpolation": self.interpolation,
            "keyframes": [
                {
                    "time": _plain(k.time),
                    "pose": {
                        "yaw": _plain(k.pose.yaw),
                        "pitch": _plain(k.pose.pitch),
                        "radius": _plain(k.pose.radius),
                        "fov_degrees": _plain(k.pose.fov_degrees),
                        "pivot": _plain(k.pose.pivot),
                    },
                    "seed": _plain(k.seed),
                }
                for k in self.keyframes
            ],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "camera path") -> CameraPath:
        """Parse and check a dict from ``to_json``; errors name ``source`` and the field."""
        return cls._from_json_checked(data, source)

    def save(self, path: str | os.PathLike) -> None:
        """Write the path as JSON, atomically (a crash never leaves a half-written file)."""
        from models.checkpoint import atomic_write_bytes

        data = self.to_json()
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> CameraPath:
        """Read a camera-path JSON file.

        Format (``version`` 1)::

            {"format": "3dgan-studio/camera-path", "version": 1,
             "fps": 30.0, "loop": false, "interpolation": "spline",
             "keyframes": [
               {"time": 0.0, "seed": null,
                "pose": {"yaw": 0.0, "pitch": 0.0, "radius": null, "fov_degrees": 18.837, "pivot": null}},
               {"time": 2.0, "seed": [3.0, 0.0],
                "pose": {"yaw": 0.5, "pitch": 0.1, "radius": 2.7, "fov_degrees": 18.837, "pivot": [0, 0, 0.2]}}]}

        ``fps``, ``loop``, ``interpolation`` and a keyframe's ``seed`` are optional (defaults as in
        the dataclasses); a pose needs ``yaw`` and ``pitch``, the other pose fields default like
        ``CameraPose``. A seed may also be a single number (seed_x, with seed_y 0).

        Raises:
            CameraPathError: (a ValueError) one line naming the file and the field: unreadable file,
                bad JSON, wrong format or version, missing or unknown fields, wrong types,
                non-finite numbers, times not strictly increasing.
        """
        source = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise CameraPathError(f"{source}: cannot read: {problem}") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CameraPathError(f"{source}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
        return cls._from_json_checked(data, source)

    @classmethod
    def _from_json_checked(cls, data: Any, source: str) -> CameraPath:
        def fail(where: str, problem: str) -> CameraPathError:
            return CameraPathError(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")

        def number(value: Any, where: str, positive: bool = False, minimum: float | None = None) -> float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise fail(where, f"must be a number, got {json.dumps(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise fail(where, f"must be finite, got {value}")
            if positive and value <= 0:
                raise fail(where, f"must be > 0, got {value}")
            if minimum is not None and value < minimum:
                raise fail(where, f"must be >= {minimum}, got {value}")
            return value

        def check_keys(obj: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
            if not isinstance(obj, dict):
                raise fail(where, f"must be an object, got {type(obj).__name__}")
            missing = sorted(required - set(obj))
            if missing:
                raise fail(where, f"missing field(s): {', '.join(missing)}")
            unknown = sorted(set(obj) - required - optional)
            if unknown:
                raise fail(where, f"unknown field(s): {', '.join(unknown)}")
            return obj

        top = check_keys(data, "", {"format", "version", "keyframes"}, {"fps", "loop", "interpolation"})
        if top["format"] != PATH_FORMAT:
            raise fail("format", f"expected {PATH_FORMAT!r}, got {json.dumps(top['format'])}")
        version = top["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise fail("version", f"must be an integer, got {json.dumps(version)}")
        if version != PATH_VERSION:
            newer = " (written by a newer version of the program)" if version > PATH_VERSION else ""
            raise fail("version", f"unsupported version {version}{newer}; this program reads {PATH_VERSION}")
        fps = number(top.get("fps", 30.0), "fps", positive=True)
        loop = top.get("loop", False)
        if not isinstance(loop, bool):
            raise fail("loop", f"must be true or false, got {json.dumps(loop)}")
        interpolation = top.get("interpolation", "spline")
        if interpolation not in INTERPOLATIONS:
            raise fail("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, got {json.dumps(interpolation)}")
        raw_keys = top["keyframes"]
        if not isinstance(raw_keys, list) or not raw_keys:
            raise fail("keyframes", "must be a non-empty list")

        keyframes: list[Keyframe] = []
        for i, raw in enumerate(raw_keys):
            where = f"keyframes[{i}]"
            kf = check_keys(raw, where, {"time", "pose"}, {"seed"})
            time = number(kf["time"], f"{where}.time", minimum=0.0)
            if keyframes and time <= keyframes[-1].time:
                raise fail(
                    f"{where}.time",
                    f"times must increase: {time} is not after keyframes[{i - 1}].time {keyframes[-1].time}",
                )
            p = check_keys(kf["pose"], f"{where}.pose", {"yaw", "pitch"}, {"radius", "fov_degrees", "pivot"})
            pose = CameraPose(
                yaw=number(p["yaw"], f"{where}.pose.yaw"), pitch=number(p["pitch"], f"{where}.pose.pitch")
            )
            if p.get("radius") is not None:
                pose.radius = number(p["radius"], f"{where}.pose.radius", positive=True)
            if "fov_degrees" in p:
                pose.fov_degrees = number(p["fov_degrees"], f"{where}.pose.fov_degrees", positive=True)
                if pose.fov_degrees >= 180:
                    raise fail(f"{where}.pose.fov_degrees", f"must be < 180, got {pose.fov_degrees}")
            pivot = p.get("pivot")
            if pivot is not None:
                if not isinstance(pivot, (list, tuple)) or len(pivot) != 3:
                    raise fail(f"{where}.pose.pivot", f"must be null or [x, y, z], got {json.dumps(pivot)}")
                pose.pivot = tuple(number(v, f"{where}.pose.pivot[{c}]") for c, v in enumerate(pivot))
            seed = kf.get("seed")
            if seed is not None:
                if isinstance(seed, (list, tuple)):
                    if len(seed) != 2:
                        raise fail(f"{where}.seed", f"must be null, a number or [x, y], got {json.dumps(seed)}")
                    seed = tuple(number(v, f"{where}.seed[{c}]") for c, v in enumerate(seed))
                else:
                    seed = (number(seed, f"{where}.seed"), 0.0)
            keyframes.append(Keyframe(pose=pose, time=time, seed=seed))
        return cls(keyframes=keyframes, fps=fps, loop=loop, interpolation=interpolation)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/torch scalars become floats, tuples become lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _fill_missing(values: list[Any], default: Any) -> list[Any] | None:
    """None if every value is None; else the values with Nones replaced (see ``CameraPath``)."""
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        return None
    if len(known) == len(values):
        return values
    if default is not None:
        return [default if v is None else v for v in values]
    # Nearest keyframe (by index) with a value; ties go to the earlier one.
    return [v if v is not None else values[min(known, key=lambda j: (abs(j - i), j))] for i, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------
# Command-line specs


def load_trajectory(spec: str, n_frames: int | None, base: CameraPose) -> list[CameraPose]:
    """Poses for a ``--trajectory`` value: a name from ``TRAJECTORIES`` or a camera-path JSON file.

    Named trajectories need ``n_frames``. A camera path is resampled to exactly ``n_frames``
    frames over its duration (so ``--frames`` means the same for every spec), or, with
    ``n_frames=None``, gives its own round(duration * fps) frames. ``base.radius``/``base.pivot``
    fill keyframes whose radius/pivot is None when others have one.

    Raises:
        ValueError: unknown name that is not a file (listing the names), missing frame count,
            or a bad camera-path file (``CameraPathError``, naming the file and field).
    """
    if spec in TRAJECTORIES:
        if n_frames is None:
            raise ValueError(f"trajectory {spec!r} needs a number of frames")
        return trajectory_poses(spec, n_frames, base)
    if not Path(spec).is_file():
        raise ValueError(
            f"unknown trajectory {spec!r}: not one of {', '.join(TRAJECTORIES)} and no such camera-path file"
        )
    path = CameraPath.load(spec)
    return path.sample(n_frames, radius_default=base.radius, pivot_default=base.pivot)
