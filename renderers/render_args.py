"""What to render: the typed request that widgets write and the renderer consumes.

Widgets edit one ``RenderArgs`` in place (immediate mode); each frame the app compares it with the
last request it sent and, when it differs, hands a copy to the render worker. ``DisplayArgs`` holds
what only changes how a finished frame is shown (colormap, depth range, shading), so changing it
never re-renders the generator.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from models.precision import PRECISIONS
from models.scene import SceneControls

RenderMode = Literal["rgb", "raw", "depth", "normals", "mesh", "side"]
RENDER_MODES: tuple[str, ...] = ("rgb", "raw", "depth", "normals", "mesh", "side")
"""rgb: final image; raw: the neural image before super-resolution; depth: ray distance; normals:
surface normals; mesh: marching-cubes surface, drawn with OpenGL; side: rgb and depth side by side."""

NormalsSource = Literal["density", "depth"]
NORMALS_SOURCES: tuple[str, ...] = ("depth", "density")

SEED_STEP_Y = 100
"""A 2-D fractional seed (x, y) names integer seed ``x + 100 * y`` at its lattice points, as in
EG3D's latent widget."""


EG3D_FOV_DEGREES = 2 * math.degrees(math.atan(0.5 / 4.2647))
"""Full vertical field of view of EG3D's FFHQ cameras (focal 4.2647, true pinhole relation)."""


def model_fov(rendering_kwargs: dict[str, Any]) -> float:
    """A model's own full field of view in degrees: ``avg_camera_fov`` for pipeline methods, else
    EG3D's FFHQ lens (focal 4.2647) that ``CameraPose`` defaults to."""
    fov = rendering_kwargs.get("avg_camera_fov")
    return float(fov) if fov is not None else EG3D_FOV_DEGREES


@dataclass
class CameraPose:
    """An orbit camera around a pivot. Angles are offsets from the frontal view, in radians."""

    yaw: float = 0.0
    """Horizontal orbit angle; positive turns the camera to the subject's left."""
    pitch: float = 0.0
    """Vertical orbit angle; positive lowers the camera (EG3D's convention)."""
    radius: float | None = None
    """Distance from the world origin; None: the model's average camera radius."""
    fov_degrees: float = EG3D_FOV_DEGREES
    """Full vertical field of view of the pinhole (true pinhole relation). Default: FFHQ's focal 4.2647."""
    pivot: tuple[float, float, float] | None = None
    """World point the camera looks at; None: the model's average pivot."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraPose:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown camera field(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if values.get("pivot") is not None:
            values["pivot"] = tuple(float(v) for v in values["pivot"])
        return cls(**values)


@dataclass
class LatentArgs:
    """Which identity: fractional seeds blended in W, truncation and style mixing."""

    seed_x: float = 0.0
    """Fractional seed along x; non-integer values blend neighbouring seeds bilinearly in W."""
    seed_y: float = 0.0
    """Fractional seed along y (integer seed = x + 100 * y at lattice points)."""
    psi: float = 0.7
    """Truncation psi: 1 = no truncation, 0 = the average face."""
    trunc_cutoff: int | None = None
    """Truncate only the first this many ws; None: all of them."""
    mix_seed: int | None = None
    """Seed whose ws replace the chosen layers; None: no style mixing."""
    mix_layers: tuple[int, ...] = ()
    """Indices of the ws taken from ``mix_seed``."""
    noise_mode: Literal["const", "random", "none"] = "const"
    """StyleGAN2 noise inputs: fixed buffers, fresh noise, or none."""
    class_index: int | None = None
    """Class of class-conditional models (EpiGRAF's Megascans releases; None: the model's current class,
    ``G.set_class``, 0 at load); unconditional models ignore it."""


@dataclass
class QualityArgs:
    """Speed/quality trade-offs; None means the model's own setting."""

    neural_resolution: int | None = None
    """Volume-rendering resolution r (the raw image and depth are r x r)."""
    depth_samples: int | None = None
    """Coarse (stratified) samples per ray."""
    importance_samples: int | None = None
    """Fine (importance) samples per ray."""
    superres: bool = True
    """Run super-resolution; off: the final image is the raw image upsampled."""
    precision: str = "exact"
    """'exact' (fp32) or 'fast' (bf16 convolutions; ``models.precision``)."""


@dataclass
class RenderArgs:
    """One render request: identity, view and conditioning cameras, output mode and quality."""

    latent: LatentArgs = field(default_factory=LatentArgs)
    """Which identity."""
    view: CameraPose = field(default_factory=CameraPose)
    """The camera the image is rendered from."""
    cond: CameraPose = field(default_factory=CameraPose)
    """The camera the mapping network is conditioned on (EG3D's c for G.mapping)."""
    cond_follows_view: bool = False
    """Condition on the view camera instead of ``cond`` (identity then changes with the view)."""
    mode: RenderMode = "rgb"
    """What to produce; see ``RENDER_MODES``."""
    normals_source: NormalsSource = "depth"
    """Normals from the depth map, or from the density gradient at the expected surface point."""
    quality: QualityArgs = field(default_factory=QualityArgs)
    """Neural resolution, samples per ray, super-resolution."""
    mesh_resolution: int = 128
    """Voxels per side of the density grid for the mesh mode."""
    mesh_level: float | None = None
    """Iso level of the raw density for the mesh mode (EG3D's shapes use 10); None: automatic, the
    median density where the frontal view's rendered depth puts the surface (see ``surface_level``)."""
    mesh_colors: bool = False
    """Colour mesh vertices with the generator's radiance."""
    scene: SceneControls = field(default_factory=SceneControls)
    """Object boxes and background rotation of a compositional model (GIRAFFE); empty: its defaults."""

    def copy(self) -> RenderArgs:
        return copy.deepcopy(self)

    def check(self) -> None:
        """ValueError naming the first value a render cannot use (non-finite, or out of range)."""
        latent, quality = self.latent, self.quality
        checks = [
            ("seed_x", latent.seed_x, 0.0, MAX_SEED), ("seed_y", latent.seed_y, 0.0, MAX_SEED / 100),
            ("psi", latent.psi, -2.0, 2.0), ("mesh_resolution", self.mesh_resolution, 8, 1024),
        ]
        for name, camera in (("view", self.view), ("cond", self.cond)):
            checks += [(f"{name}.yaw", camera.yaw, -1e4, 1e4), (f"{name}.pitch", camera.pitch, -1e4, 1e4),
                       (f"{name}.fov_degrees", camera.fov_degrees, 0.1, 179.0)]
            if camera.radius is not None:
                checks.append((f"{name}.radius", camera.radius, 1e-3, 1e4))
            for i, v in enumerate(camera.pivot or ()):
                checks.append((f"{name}.pivot[{i}]", v, -1e4, 1e4))
        for name, value, lo, hi in (("neural_resolution", quality.neural_resolution, 4, 2048),
                                    ("depth_samples", quality.depth_samples, 1, 1024),
                                    ("importance_samples", quality.importance_samples, 0, 1024),
                                    ("trunc_cutoff", latent.trunc_cutoff, 0, 1024),
                                    ("mix_seed", latent.mix_seed, 0, MAX_SEED),
                                    ("class_index", latent.class_index, 0, 1_000_000)):
            if value is not None:
                checks.append((name, value, lo, hi))
        if self.mesh_level is not None:
            checks.append(("mesh_level", self.mesh_level, -1e6, 1e6))
        for i, pose in enumerate(self.scene.objects or ()):
            checks += [(f"scene.objects[{i}].translation[{k}]", v, -1e3, 1e3) for k, v in enumerate(pose.translation)]
            checks += [(f"scene.objects[{i}].scale[{k}]", v, 1e-4, 1e3) for k, v in enumerate(pose.scale)]
            checks.append((f"scene.objects[{i}].rotation", pose.rotation, -1e4, 1e4))
        if self.scene.background_rotation is not None:
            checks.append(("scene.background_rotation", self.scene.background_rotation, -1e4, 1e4))
        if quality.precision not in PRECISIONS:
            raise ValueError(f"precision {quality.precision!r} is not one of {', '.join(PRECISIONS)}")
        for name, value, lo, hi in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name} {value!r} is outside [{lo:g}, {hi:g}]")


MAX_SEED = 2**32 - 1
"""Largest seed (32-bit, as numpy's and torch's generators take them)."""


Colormap = Literal["turbo", "viridis", "inferno", "grey"]


@dataclass
class DisplayArgs:
    """How a finished frame is shown; changes here never re-render the generator."""

    colormap: Colormap = "turbo"
    """Colormap for depth."""
    depth_range: Literal["auto", "fixed"] = "auto"
    """auto: the frame's own min..max; fixed: ``depth_near``..``depth_far``."""
    depth_near: float = 2.25
    """Depth shown at the near end of the colormap in fixed mode."""
    depth_far: float = 3.3
    """Depth shown at the far end of the colormap in fixed mode."""
    depth_invert: bool = False
    """Swap the colormap ends (default: near is the colormap's high end)."""
    normals_style: Literal["color", "shaded"] = "color"
    """color: camera-space normal as RGB (n * 0.5 + 0.5); shaded: a lit grey surface."""
    mesh_wireframe: bool = False
    """Draw mesh edges over the shaded surface."""
