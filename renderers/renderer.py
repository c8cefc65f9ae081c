"""Generator + camera + latent -> images, depth, normals and meshes, as device tensors.

``GeneratorRenderer.render(args)`` is the one place where a ``RenderArgs`` becomes pixels: the app's
render worker, its video recorder and the batch tools all call it. It caches what does not depend
on the camera: the ws of each seed, and the tri-planes (backbone output) of the current identity,
so orbiting costs only volume rendering and super-resolution. The mesh of an identity is cached
too: in the mesh mode the camera moves in OpenGL and the generator is not run at all.

Normals default to the depth map's: each pixel is unprojected along its ray and the normal is the
cross product of the image-space differences. That is the surface the image actually shows (where
the rendered opacity accumulates), it costs one small kernel, and it is smooth wherever the depth
is. Normals from the density gradient at each pixel's expected surface point are offered as a
diagnostic of the field itself: on a clean surface the two agree, and where they disagree the
density is foggy or layered (the bundled tiny model shows exactly that), which is what a
"is this geometry real?" check should reveal.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.precision import planes_at, superresolve_at
from models.protocol import Generator
from models.scene import RenderOptions, SceneControls, cat_scenes, generator_device
from ops.camera import fov_to_focal, orbit_label, unpack_label
from ops.normals import normals_from_depth, normals_from_field, world_to_camera_normals
from renderers.colormaps import depth_range
from renderers.render_args import SEED_STEP_Y, CameraPose, LatentArgs, RenderArgs, model_fov

STAGES = ("mapping", "backbone", "render", "superres", "normals", "mesh", "convert")
"""Timed stages of one render, in order."""


def seed_weights(seed_x: float, seed_y: float) -> list[tuple[int, float]]:
    """Integer seeds and bilinear weights of a fractional 2-D seed (EG3D's latent widget rule).

    Lattice point (i, j) names seed ``i + 100 * j`` (mod 2**32); weights sum to one and points
    with zero weight are left out, so integer seeds give exactly one seed.
    """
    x0, y0 = math.floor(seed_x), math.floor(seed_y)
    fx, fy = seed_x - x0, seed_y - y0
    out = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        w = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
        if w > 0:
            out.append((((x0 + dx) + SEED_STEP_Y * (y0 + dy)) & 0xFFFFFFFF, w))
    return out


def seed_latent(seed: int, z_dim: int) -> torch.Tensor:
    """[1, z_dim] z of an integer seed (CPU generator, so every device gives the same z)."""
    return torch.randn([1, z_dim], generator=torch.Generator().manual_seed(int(seed)))


def camera_label(pose: CameraPose, rendering_kwargs: dict[str, Any], device: torch.device | str) -> torch.Tensor:
    """[1, 25] EG3D label of an orbit pose; None radius/pivot take the model's averages."""
    radius = float(rendering_kwargs["avg_camera_radius"]) if pose.radius is None else float(pose.radius)
    pivot = list(rendering_kwargs["avg_camera_pivot"]) if pose.pivot is None else list(pose.pivot)
    return orbit_label(pose.yaw, pose.pitch, radius, pivot, fov_to_focal(pose.fov_degrees)).to(device)


DEFAULT_SCENE = SceneControls()
"""No scene controls: a compositional model's objects and background at their defaults."""


@dataclass
class RenderOutput:
    """What one render produced; tensors stay on the render device."""

    args: RenderArgs
    """The request this answers."""
    camera: torch.Tensor
    """[1, 25] view camera label."""
    image_resolution: int = 0
    """The generator's final image size R."""
    image: torch.Tensor | None = None
    """[3, R, R] final image in [-1, 1] (rgb and side modes)."""
    image_raw: torch.Tensor | None = None
    """[3, r, r] neural image in about [-1, 1]."""
    depth: torch.Tensor | None = None
    """[1, r, r] ray distance."""
    depth_range: tuple[float, float] | None = None
    """(min, max) of ``depth``."""
    normals: torch.Tensor | None = None
    """[3, r, r] camera-space unit normals (OpenCV axes), normals mode."""
    mesh: Any = None
    """``renderers.mesh.Mesh`` of the identity, mesh mode."""
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    """Milliseconds per stage (``STAGES``): wall times on the CPU, GPU times from events on CUDA
    (:class:`StageTimings`: reading them waits for the render to finish)."""
    backbone_cached: bool = False
    """The tri-planes came from the cache (only the camera changed)."""


class _LRU(OrderedDict):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get_or_make(self, key, make: Callable[[], Any]):
        if key in self:
            self.move_to_end(key)
            return self[key], True
        value = make()
        self[key] = value
        while len(self) > self.capacity:
            self.popitem(last=False)
        return value, False


class GeneratorRenderer:
    """Renders one generator. Not thread-safe: one thread (the render worker) owns it."""

    def __init__(self, G: Generator, identities: int = 2):
        """``identities``: how many identities' tri-planes stay cached (the app needs two; a batch
        grid video that shows several fixed identities keeps one per grid cell)."""
        self.G = G
        self.device = generator_device(G)
        self._ws_cache = _LRU(max(64, 2 * identities))
        self._planes_cache = _LRU(max(1, identities))
        self._mesh_cache = _LRU(2)
        self._fields: tuple[Any, Any] | None = None

    # --- pieces ---------------------------------------------------------------------------------

    def camera(self, pose: CameraPose) -> torch.Tensor:
        return camera_label(pose, self.G.rendering_kwargs, self.device)

    def default_pose(self, yaw: float = 0.0, pitch: float = 0.0) -> CameraPose:
        """An orbit pose at the model's average radius and pivot, through the model's own lens."""
        return CameraPose(yaw=float(yaw), pitch=float(pitch), fov_degrees=model_fov(self.G.rendering_kwargs))

    def _seed_ws(self, seed: int, c: torch.Tensor, c_key, latent: LatentArgs) -> torch.Tensor:
        classes = int(getattr(self.G, "num_classes", 0))
        wanted = self.G.class_index if classes and latent.class_index is None else (latent.class_index or 0)
        class_index = min(int(wanted), classes - 1) if classes else 0

        def make() -> torch.Tensor:
            if classes:
                self.G.set_class(class_index)
            return self.G.mapping(seed_latent(seed, self.G.z_dim).to(self.device), c, truncation_psi=latent.psi,
                                  truncation_cutoff=latent.trunc_cutoff)

        ws, _ = self._ws_cache.get_or_make((seed, c_key, latent.psi, latent.trunc_cutoff, class_index), make)
        return ws

    def latent_ws(self, latent: LatentArgs, cond: CameraPose) -> torch.Tensor:
        """[1, num_ws, w_dim]: the ws of a fractional seed, blended in W, with style mixing."""
        c = self.camera(cond)
        c_key = tuple(dataclasses.astuple(cond))
        ws = sum(w * self._seed_ws(s, c, c_key, latent) for s, w in seed_weights(latent.seed_x, latent.seed_y))
        if latent.mix_seed is not None and latent.mix_layers:
            layers = [i for i in latent.mix_layers if 0 <= i < ws.shape[1]]
            mixed = self._seed_ws(int(latent.mix_seed), c, c_key, latent)
            ws = ws.clone()
            ws[:, layers] = mixed[:, layers]
        return ws

    def _identity_key(self, args: RenderArgs):
        """What decides an identity's ws and scene (the cache keys add the precision they were made at)."""
        cond = args.view if args.cond_follows_view else args.cond
        return (dataclasses.astuple(args.latent), dataclasses.astuple(cond))

    @staticmethod
    def render_options(args: RenderArgs) -> RenderOptions:
        """The request's samples per ray and scene controls as the generator's per-call options (None:
        the model's own). The viewer never shows training-time density noise."""
        return RenderOptions(num_coarse=args.quality.depth_samples, num_fine=args.quality.importance_samples,
                             density_noise=0.0, scene=None if args.scene == DEFAULT_SCENE else args.scene)

    def mesh_fields(self, planes: Any, scene: SceneControls = DEFAULT_SCENE):
        """``G.mesh_fields`` of an identity (with a compositional model's ``scene``), kept for the last
        one asked about: a mesh asks for its level, its border and its grid in turn, and GRAM's level
        costs a frontal rendering per manifold."""
        if self._fields is None or self._fields[0] is not planes or self._fields[1] != scene:
            made = self.G.mesh_fields(planes) if scene == DEFAULT_SCENE else \
                self.G.mesh_fields(planes, RenderOptions(scene=scene))
            self._fields = (planes, scene, made)
        return self._fields[2]

    def camera_rays(self, camera: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rays the model renders for ``camera`` at ``resolution`` (its own pixel grid)."""
        from ops.camera import generate_rays

        options = getattr(getattr(self.G, "config", None), "renderer", None)
        if getattr(options, "rays", "world") != "world":  # e.g. VolumeGAN's camera-frame rays
            return tuple(self.G.camera_rays(camera, resolution)[:2])
        cam2world, intrinsics = unpack_label(camera)
        grid = getattr(options, "pixel_grid", "centers")
        return generate_rays(cam2world, intrinsics, resolution, grid=grid)

    def density_normals(self, planes: Any, camera: torch.Tensor, depth: torch.Tensor,
                        scene: SceneControls = DEFAULT_SCENE) -> torch.Tensor:
        """[3, r, r] camera-space normals: the outward gradient of the model's geometry field
        (density, -SDF, GRAM's manifold field: ``G.mesh_fields``) at each pixel's expected surface
        point (camera origin + depth along the unit ray)."""
        r = depth.shape[-1]
        origins, directions = self.camera_rays(camera, r)  # [1, r*r, 3]
        points = origins + depth.reshape(1, -1, 1) * directions

        fields = self.mesh_fields(planes, scene)

        def field(p: torch.Tensor) -> torch.Tensor:
            return fields.field(p.reshape(-1, 3)).reshape(1, -1, 1)

        world = normals_from_field(field, points, negate=fields.inside == "above")[0]  # [r*r, 3]
        return world_to_camera_normals(world.T.reshape(1, 3, r, r), unpack_label(camera)[0])[0]

    # --- the render -----------------------------------------------------------------------------

    @torch.no_grad()
    def render(self, args: RenderArgs, ws: torch.Tensor | None = None) -> RenderOutput:
        """Render a request. ``ws`` [1, num_ws, w_dim], when given, replaces the request's latent
        (latent interpolation videos); its tri-planes are then not cached."""
        return self.render_batch([args], ws)[0]

    @torch.no_grad()
    def render_batch(self, requests: Sequence[RenderArgs], ws: torch.Tensor | None = None,
                     normals: bool = False) -> list[RenderOutput]:
        """Render several requests in one pass through the generator (batch = ``len(requests)``).

        The requests may differ in view and identity but must share the mode, quality and normals
        source (they decide the network's work). ``ws`` [N, num_ws, w_dim], when given, replaces
        the requests' latents and is not cached. ``normals`` also computes normals in modes other
        than ``normals`` (the batch tools' image rows). Every output gets the batch's stage times.
        """
        requests = list(requests)
        if not requests:
            return []
        for request in requests:
            request.check()  # out-of-range values are a one-line error, never an internal one
        first = requests[0]
        for a in requests[1:]:
            if (a.mode, a.quality, a.normals_source) != (first.mode, first.quality, first.normals_source):
                raise ValueError("the requests of a render batch must share mode, quality and normals source")
        # Meshes are always extracted at full precision (a surface, not a preview frame).
        precision = "exact" if first.mode == "mesh" else first.quality.precision
        return self._render_batch(requests, ws, normals, precision)

    def _render_batch(self, requests: list[RenderArgs], ws: torch.Tensor | None, normals: bool,
                      precision: str) -> list[RenderOutput]:
        """:meth:`render_batch` at ``precision``: the convolutional stages (backbone, super-resolution),
        where the time is, run in its context and come back as fp32; the field decoder, compositing and
        normals always run in fp32 (sine and density MLPs lose too much in bf16)."""
        G = self.G
        first = requests[0]
        clock = _StageClock(self.device)
        cameras = torch.cat([self.camera(a.view) for a in requests])
        outs = [RenderOutput(args=a, camera=cameras[i:i + 1], image_resolution=int(G.img_resolution))
                for i, a in enumerate(requests)]
        if ws is None:
            identities = [(*self._identity_key(a), precision) for a in requests]
            ws_list = [self.latent_ws(a.latent, a.view if a.cond_follows_view else a.cond) for a in requests]
            clock.lap("mapping")
            planes_list = []
            for a, out, identity, w in zip(requests, outs, identities, ws_list):
                planes_i, out.backbone_cached = self._planes_cache.get_or_make(
                    identity, lambda w=w, a=a: planes_at(G, w, precision, self.device, a.latent.noise_mode))
                planes_list.append(planes_i)
            ws = ws_list[0] if len(ws_list) == 1 else torch.cat(ws_list)
            planes = cat_scenes(planes_list)
        else:
            if ws.shape[0] != len(requests):
                raise ValueError(f"{ws.shape[0]} ws for {len(requests)} requests")
            identities = [None] * len(requests)
            ws = ws.to(self.device)
            planes = planes_at(G, ws, precision, self.device, first.latent.noise_mode)
        clock.lap("backbone")

        if first.mode == "mesh":
            for i, (a, out) in enumerate(zip(requests, outs)):
                out.mesh = self._mesh(identities[i], planes[i:i + 1], a)
            clock.lap("mesh")
            for out in outs:
                out.timings_ms = clock.timings()
            return outs

        r = int(first.quality.neural_resolution or G.neural_rendering_resolution)
        features, depth = G.render_neural(planes, cameras, r, self.render_options(first))
        for i, out in enumerate(outs):
            out.image_raw = features[i, :3]
            out.depth = depth[i]
        clock.lap("render")
        if first.mode in ("rgb", "side"):
            if first.quality.superres:
                image = superresolve_at(G, features, ws, precision, self.device, first.latent.noise_mode)
            else:
                image = F.interpolate(features[:, :3], size=(G.img_resolution,) * 2, mode="bilinear",
                                      align_corners=False, antialias=True)
            for i, out in enumerate(outs):
                out.image = image[i]
            clock.lap("superres")
        if first.mode == "normals" or normals:
            for i, out in enumerate(outs):
                camera, depth_i = cameras[i:i + 1], depth[i:i + 1]
                if first.normals_source == "density":
                    out.normals = self.density_normals(planes[i:i + 1], camera, depth_i, first.scene)
                else:
                    cam2world, intrinsics = unpack_label(camera)
                    world = normals_from_depth(depth_i, cam2world, intrinsics)
                    out.normals = world_to_camera_normals(world, cam2world)[0]
            clock.lap("normals")
        if first.mode in ("depth", "side"):
            for out in outs:
                out.depth_range = depth_range(out.depth)
        for out in outs:
            out.timings_ms = clock.timings()
        return outs

    def _mesh(self, identity, planes: torch.Tensor, args: RenderArgs):
        key = (identity, args.mesh_resolution, args.mesh_level, args.mesh_colors, args.scene)

        def make():
            return self.identity_mesh(planes, args.mesh_resolution, args.mesh_level, args.mesh_colors,
                                      scene=args.scene)[0]

        if identity is None:
            return make()
        mesh, _ = self._mesh_cache.get_or_make(key, make)
        return mesh

    def surface_level(self, planes: Any, scene: SceneControls = DEFAULT_SCENE) -> float:
        """The iso level of this identity's surface. Models that define it (SDF: 0; GRAM: its
        dominant manifold) say so in ``G.mesh_fields``; for density fields it is the median density
        at the expected surface points (camera + depth along the ray) of the nearer half of the
        pixels of the model's frontal view. EG3D's fixed level 10 suits its trained models; a
        young or small model's surface sits at a lower density (the tiny EG3D of the tests near 4.6)."""
        fields = self.mesh_fields(planes, scene)
        if fields.level is not None:
            return float(fields.level)
        camera = self.camera(self.default_pose())
        r = int(self.G.neural_rendering_resolution)
        options = RenderOptions(density_noise=0.0, scene=None if scene == DEFAULT_SCENE else scene)
        _, depth = self.G.render_neural(planes, camera, r, options)
        origins, directions = self.camera_rays(camera, r)
        depth = depth.reshape(-1, 1)
        sigma = fields.field(origins[0] + depth * directions[0]).reshape(-1)
        near = depth.reshape(-1) <= depth.median()
        return float(sigma[near].median())

    def mesh_border(self, planes: Any, resolution: int) -> tuple[int, ...] | int:
        """Border layers cleared before marching cubes: EG3D's cleanup for models that ask for it."""
        from renderers.mesh import eg3d_border

        return eg3d_border(resolution) if self.mesh_fields(planes).eg3d_cleanup else 0

    def identity_mesh(self, planes: torch.Tensor, resolution: int, level: float | None, colors: bool,
                      progress: Callable[[int, int], None] | None = None, chunk: int = 2**18,
                      scene: SceneControls = DEFAULT_SCENE):
        """Marching-cubes mesh of one identity's geometry field (``G.mesh_fields``), with EG3D's
        border cleanup where the model asks for it.

        ``level`` None picks ``surface_level``; the mesh's ``level`` attribute records the one used.
        ``chunk``: points per decoder call while sampling the grid and colouring the vertices.
        ``scene``: a compositional model's objects and background.

        Returns:
            (``renderers.mesh.Mesh``, density grid [res, res, res] as float32 numpy, box bounds).
        """
        from renderers.mesh import marching_cubes, sample_grid, vertex_colors

        automatic = level is None
        if automatic:
            level = self.surface_level(planes, scene)
        fields = self.mesh_fields(planes, scene)
        res = int(resolution)
        grid = sample_grid(fields.field, fields.bounds, res, chunk=chunk, device=self.device, progress=progress)
        if automatic:
            finite = grid[np.isfinite(grid)]
            if finite.size and not finite.min() < level < finite.max():
                # The frontal view's surface lies outside the box (a young or random model): an automatic
                # level should still give a surface, so take the box's median value.
                level = float(np.median(finite))
        mesh = marching_cubes(grid, float(level), fields.bounds, inside=fields.inside,
                              border=self.mesh_border(planes, res))
        mesh.level = float(level)
        if colors:
            mesh.vertex_colors = vertex_colors(fields.color, mesh.vertices, chunk=chunk, device=self.device)
        bounds = fields.bounds
        return mesh, grid, bounds

    def identity_planes(self, args: RenderArgs) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws, planes) of the request's identity, through the caches (for mesh export)."""
        cond = args.view if args.cond_follows_view else args.cond
        ws = self.latent_ws(args.latent, cond)
        planes, _ = self._planes_cache.get_or_make(
            (*self._identity_key(args), "exact"), lambda: self.G.planes(ws, noise_mode=args.latent.noise_mode))
        return ws, planes



class DeviceClock:
    """Wall-clock reads that first wait for the device's queued work, so a timed span is charged
    its own GPU kernels (a plain clock on the CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


class StageTimings(Mapping[str, float]):
    """Per-stage milliseconds of a CUDA render, read from events: nothing waits for the GPU while
    rendering. The first read waits for the last stage's event (``ready`` says whether it would)."""

    def __init__(self, marks: list[tuple[str, Any]]):
        self._marks = marks  # [("", start event), (stage, event at its end), ...]
        self._times: dict[str, float] | None = None

    def ready(self) -> bool:
        """The GPU has finished the render: reading the times will not wait."""
        return self._times is not None or self._marks[-1][1].query()

    def _resolve(self) -> dict[str, float]:
        if self._times is None:
            self._marks[-1][1].synchronize()
            times: dict[str, float] = {}
            for (_, before), (stage, after) in zip(self._marks, self._marks[1:]):
                times[stage] = times.get(stage, 0.0) + before.elapsed_time(after)
            self._times = times
        return self._times

    def __getitem__(self, stage: str) -> float:
        return self._resolve()[stage]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolve())

    def __len__(self) -> int:
        return len(self._resolve())


class _StageClock:
    """Per-stage times of one render: wall times on the CPU; on CUDA, events recorded on the current
    stream at each stage's end (the render worker hands the frame on without synchronising)."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self._timings: dict[str, float] = {}
        self._marks: list[tuple[str, Any]] = []
        if self.cuda:
            self._mark("")
        else:
            self.last = time.perf_counter()

    def _mark(self, stage: str) -> None:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self._marks.append((stage, event))

    def lap(self, stage: str) -> None:
        if self.cuda:
            self._mark(stage)
            return
        now = time.perf_counter()
        self._timings[stage] = self._timings.get(stage, 0.0) + 1000 * (now - self.last)
        self.last = now

    def timings(self) -> Mapping[str, float]:
        """The stages so far: a dict on the CPU, :class:`StageTimings` (read lazily) on CUDA."""
        return StageTimings(list(self._marks)) if self.cuda else dict(self._timings)
