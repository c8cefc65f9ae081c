"""The modular 3D-aware generator: mapping -> embedder -> decoder -> volume renderer -> upsampler.

:class:`PipelineGenerator` composes the components named by a :class:`PipelineConfig` and speaks
the EG3D generator API that the app, the batch tools, the metrics and the trainer use::

    ws = G.mapping(z, c, truncation_psi=0.7)      # [N, num_ws, w_dim]
    out = G.synthesis(ws, c)                      # {'image', 'image_raw', 'image_depth'}
    scene = G.planes(ws)                          # per-identity representation (cached by the app)
    features, depth = G.render_neural(scene, c, r)
    image, image_raw = G.superresolve(features, ws)
    G.run_decoder(scene, xyz, dirs)               # {'rgb', 'sigma'}
    G.mesh_fields(scene)                          # what a mesh is extracted from

Cameras are always EG3D's 25-float labels (OpenCV cam2world + normalised intrinsics); a patch
of the image is just a camera with cropped intrinsics (``ops.patch_sampling``), so patch-wise
training needs nothing from the generator. Shapes: N identities, M rays, K samples per ray.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.decoders import DECODERS
from models.embedders import EMBEDDERS, Fields
from models.mappings import MAPPINGS
from models.pipeline_config import PipelineConfig
from models.point_sampling import POINT_SAMPLERS
from models.scene import LOCKED_VIEW_DIRECTION, MeshFields, RenderOptions, Scene
from models.upsamplers import UPSAMPLERS
from models.volume_rendering import VolumeRenderer
from ops.camera import (
    axis_rays,
    camera_directions,
    camera_frame_points,
    camera_frame_rays,
    fov_to_focal,
    generate_rays,
    image_plane_points,
    orbit_label,
    unpack_label,
)
from ops.compositing import Composite
from ops.ray_sampling import ray_samples
from ops.volume_rendering import render_samples


class PipelineGenerator(nn.Module):
    """A 3D-aware generator assembled from registered pipeline components (module docstring)."""

    def __init__(self, config: PipelineConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.z_dim, self.c_dim = c.mapping.z_dim, c.c_dim
        self.img_resolution, self.img_channels = c.img_resolution, c.img_channels
        self.neural_rendering_resolution = c.neural_rendering_resolution
        self.rendering_kwargs: dict[str, Any] = self._rendering_kwargs(c)
        self.box_side = float(c.points.box_side)
        self.point_sampler = POINT_SAMPLERS.build(c.points)

        mapping_cls, decoder_cls, embedder_cls = c.cls("mapping"), c.cls("decoder"), c.cls("embedder")
        w_dim = mapping_cls.ws_width(c.mapping, decoder_cls.film_width(c.decoder))
        self.embedder = EMBEDDERS.build(c.embedder, w_dim, c.points.box_side)
        self.decoder = DECODERS.build(c.decoder, self.embedder.out_features, w_dim)
        extra = embedder_cls.extra_decoder(c.embedder, c.decoder)
        if extra is not None:  # GIRAFFE's background field
            self.background_decoder = DECODERS.build(extra, self.embedder.out_features, w_dim)
        self.feature_channels = self.decoder.channels
        self.upsampler = UPSAMPLERS.build(c.upsampler, self.feature_channels, c.neural_rendering_resolution,
                                          c.img_resolution, w_dim)
        self.renderer = VolumeRenderer(c.density, c.integrator, white_back=c.renderer.white_back,
                                       sdf_scale=self.embedder.coordinate_scale)

        # ws layout: [embedder | decoder | upsampler]; EG3D's upsampler reads the last backbone w.
        self.ws_slices = _ws_slices(self.embedder.num_ws, self.decoder.num_ws, self.upsampler.num_ws)
        num_ws = max(self.ws_slices[-1].stop, 1)
        if self.embedder.shares_first_ws:
            self.ws_slices = (slice(0, 1), *self.ws_slices[1:])
        if self.upsampler.shares_last_ws:
            self.ws_slices = (*self.ws_slices[:2], slice(num_ws - 1, num_ws))
        self.mapping_network = MAPPINGS.build(c.mapping, c.c_dim, num_ws, decoder_cls.film_width(c.decoder))
        self.w_dim, self.num_ws = w_dim, num_ws
        self.requires_grad_(True)

    def requires_grad_(self, requires_grad: bool = True) -> PipelineGenerator:
        """As nn.Module's, but frozen components (``config.frozen``) stay frozen."""
        super().requires_grad_(requires_grad)
        for name in self.config.frozen:
            getattr(self, name).requires_grad_(False)
        return self

    @staticmethod
    def _rendering_kwargs(c: PipelineConfig) -> dict[str, Any]:
        """The live options the viewer and batch tools read (EG3D's key names)."""
        return {
            **c.extra,
            "c_gen_conditioning_zero": bool(getattr(c.mapping, "zero_camera", False)),
            "c_scale": float(getattr(c.mapping, "camera_scale", 1.0)),
            "depth_resolution": c.points.num_coarse, "depth_resolution_importance": c.points.num_fine,
            "ray_start": c.points.near, "ray_end": c.points.far, "box_warp": c.points.box_side,
            "avg_camera_radius": c.pose.radius, "avg_camera_pivot": list(c.pose.pivot),
            "avg_camera_fov": c.pose.fov_degrees, "density_noise": c.renderer.density_noise,
            "white_back": c.renderer.white_back, "superresolution_noise_mode": "none",
            "lock_view_dependence": c.renderer.lock_view_dependence,
        }

    # --- EG3D API ----------------------------------------------------------------------------

    def current_config(self) -> PipelineConfig:
        """The config with the live sample counts and neural resolution folded back in."""
        config = self.config.copy()
        config.points.num_coarse = int(self.rendering_kwargs["depth_resolution"])
        config.points.num_fine = int(self.rendering_kwargs["depth_resolution_importance"])
        config.neural_rendering_resolution = int(self.neural_rendering_resolution)
        return config

    def mapping(self, z, c, truncation_psi: float = 1, truncation_cutoff: int | None = None, update_emas: bool = False):
        """z [N, z_dim], c [N, 25] -> ws [N, num_ws, w_dim]."""
        w_avg, own = self.mapping_network.w_avg, self.ws_slices[2]
        kept = w_avg[own].clone() if update_emas and self.upsampler.maps_own_ws else None
        ws = self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                  update_emas=update_emas)
        if kept is not None:  # those slots' mean is the upsampler's to track
            w_avg[own] = kept
        return self.upsampler.ws_from_mapping(ws, own, w_avg, truncation_psi, update_emas=update_emas)

    @torch.no_grad()
    def estimate_truncation_mean(self, count: int = 10_000, seed: int = 0, batch: int = 2_500) -> torch.Tensor:
        """The mean ws [num_ws, w_dim] of ``count`` z ~ N(0, I) drawn from a generator seeded with ``seed``
        (the global random state is untouched), without truncation: what pi-GAN's scripts average."""
        device = self.mapping_network.w_avg.device
        rng = torch.Generator().manual_seed(int(seed))
        total = None
        for start in range(0, count, batch):
            z = torch.randn(min(batch, count - start), self.z_dim, generator=rng).to(device)
            c = torch.zeros(z.shape[0], self.c_dim, device=device)
            part = self.mapping(z, c).double().sum(0)
            total = part if total is None else total + part
        return (total / count).float().reshape(self.mapping_network.w_avg.shape)

    @property
    def num_classes(self) -> int:
        """Class labels a class-conditional mapping reads (EpiGRAF's Megascans releases); 0: unconditional."""
        return int(getattr(self.mapping_network, "classes", 0))

    @property
    def class_index(self) -> int:
        """The class a class-conditional model maps to now (0 until :meth:`set_class`)."""
        return int(getattr(self.mapping_network, "class_index", 0))

    def set_class(self, index: int) -> None:
        """Map z to ws of class ``index`` from now on (class-conditional models only).

        Raises:
            ValueError: the model has no classes, or ``index`` is not in [0, num_classes).
        """
        if not 0 <= int(index) < self.num_classes:
            raise ValueError(f"class {index} is outside [0, {self.num_classes})" if self.num_classes
                             else "this model is not class-conditional")
        self.mapping_network.class_index = int(index)

    def set_truncation_mean(self, w_avg: torch.Tensor) -> None:
        """Use ``w_avg`` as the mean that truncation pulls ws towards (the mapping's ``w_avg`` buffer,
        saved with the checkpoint)."""
        buffer = self.mapping_network.w_avg
        buffer.copy_(w_avg.detach().to(buffer).reshape(buffer.shape))

    def planes(self, ws: torch.Tensor, update_emas: bool = False, noise_mode: str = "const", **_) -> Scene:
        """ws -> the per-identity scene (the name is EG3D's; only tri-plane models return planes inside)."""
        features = self.embedder.scene(ws[:, self.ws_slices[0]], noise_mode=noise_mode, update_emas=update_emas)
        return Scene(ws, features)

    def decoder_ws(self, scene: Scene) -> torch.Tensor:
        """The ws slice the decoder reads."""
        return scene.ws[:, self.ws_slices[1]]

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  update_emas: bool = False, noise_mode: str = "const", max_resolution: int | None = None,
                  fade_alpha: float = 1.0, options: RenderOptions | None = None, **_) -> dict[str, torch.Tensor]:
        """Render ws from cameras c [N, 25]: image [N, 3, R, R], image_raw [N, 3, r, r], image_depth [N, 1, r, r].

        ``max_resolution`` / ``fade_alpha``: a StyleGAN upsampler grown only this far, its newest
        block faded in (progressive growing in training); other upsamplers ignore them."""
        r = int(neural_rendering_resolution or self.neural_rendering_resolution)
        scene = self.planes(ws, update_emas=update_emas, noise_mode=noise_mode)
        features, depth = self.render_neural(scene, c, r, options)
        image, image_raw = self.superresolve(features, ws, noise_mode=noise_mode, max_resolution=max_resolution,
                                             fade_alpha=fade_alpha)
        return {"image": image, "image_raw": image_raw, "image_depth": depth}

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, neural_rendering_resolution=None,
                update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution, update_emas=update_emas,
                              **synthesis_kwargs)

    def superresolve(self, features: torch.Tensor, ws: torch.Tensor, noise_mode: str = "const",
                     max_resolution: int | None = None, fade_alpha: float = 1.0, **_) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature image [N, C, r, r] -> (image [N, 3, R', R'], image_raw [N, 3, r, r]).

        Without an upsampler the image is the rendering itself (R' = r: a patch stays a patch)."""
        return self.upsampler.upsample(features, ws[:, self.ws_slices[2]], noise_mode=noise_mode,
                                       max_resolution=max_resolution, fade_alpha=fade_alpha)

    def sample_mixed(self, coordinates, directions, ws, update_emas: bool = False, noise_mode: str = "const",
                     options: RenderOptions | None = None, **_):
        """σ and colour at world points for ws: coordinates [N, M, 3] -> {'rgb', 'sigma'} (+ 'sdf')."""
        scene = self.planes(ws, update_emas=update_emas, noise_mode=noise_mode)
        return self.run_decoder(scene, coordinates, directions, options)

    def sample(self, coordinates, directions, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.sample_mixed(coordinates, directions, ws, update_emas=update_emas, **kwargs)

    def run_decoder(self, scene: Scene, coordinates: torch.Tensor, directions: torch.Tensor,
                    options: RenderOptions | None = None) -> dict[str, torch.Tensor]:
        """Decoder at world points [N, M, 3]: {'rgb' [N, M, C], 'sigma' [N, M, 1]}; 'sigma' is the
        raw density (with training noise), or for SDF models the density of the SDF, plus 'sdf'."""
        out = self._decode(scene, coordinates, directions, **({} if options is None else {"options": options}))
        if self.renderer.sdf:
            return {"rgb": out["rgb"], "sigma": self.renderer.density(out["raw"]), "sdf": out["raw"]}
        noise = (options or RenderOptions()).resolve(self.rendering_kwargs).density_noise
        return {"rgb": out["rgb"], "sigma": self.renderer.noisy(out["raw"], noise)}

    def default_camera(self, batch: int = 1, yaw: float = 0.0, pitch: float = 0.0, focal: float | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """[batch, 25] orbit camera at the model's average radius and pivot (focal: the model's fov)."""
        opts = self.rendering_kwargs
        focal = fov_to_focal(opts["avg_camera_fov"]) if focal is None else focal
        label = orbit_label(yaw, pitch, float(opts["avg_camera_radius"]), opts["avg_camera_pivot"], focal)
        return label.repeat(batch, 1).to(device if device is not None else self.mapping_network.w_avg.device)

    # --- rendering ---------------------------------------------------------------------------

    def _decode(self, scene: Scene, points: torch.Tensor, directions: torch.Tensor,
                options: RenderOptions | None = None) -> dict[str, torch.Tensor]:
        """All fields at points [N, M, 3] -> {'rgb' [N, M, C], 'raw' [N, M, 1]} (composed for GIRAFFE, its
        boxes from ``options.scene``)."""
        fields = Fields(self.decoder, self.decoder_ws(scene), scene.ws[:, 0], getattr(self, "background_decoder", None))
        return self.embedder.decode(fields, scene, points, directions, activate=self.renderer.activate,
                                    options=options)

    def _evaluate(self, scene: Scene, origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor,
                  density_noise: float = 0.0, directions_seen: torch.Tensor | None = None,
                  points: torch.Tensor | None = None):
        """Decoder at depths [N, M, K, 1] along rays: rgb [N, M, K, C], raw [N, M, K, 1].
        ``directions_seen``: the view directions the decoder reads, if not the rays' own
        (``RenderOptions.lock_view_dependence``). ``points``: the [N, M * K, 3] points, if not ``o + d z``."""
        n, m, k, _ = depths.shape
        ray_points, dirs = ray_samples(origins, directions, depths)
        points = ray_points if points is None else points
        if directions_seen is not None:
            dirs = directions_seen.unsqueeze(-2).expand(-1, -1, k, -1).reshape(n, -1, 3)
        out = self._decode(scene, points, dirs)
        raw = out["raw"] if self.renderer.sdf else self.renderer.noisy(out["raw"], density_noise)
        return out["rgb"].reshape(n, m, k, -1), raw.reshape(n, m, k, 1)

    def sample_depths(self, origins: torch.Tensor, directions: torch.Tensor, count: int,
                      jitter: bool | None = None) -> torch.Tensor:
        """[N, M, K, 1] sample depths between the ray bounds (fixed or 'auto'), jittered in
        training (``jitter`` overrides)."""
        opts = self.rendering_kwargs
        return self.point_sampler.depths(origins, directions, count, opts["ray_start"], opts["ray_end"],
                                         opts["box_warp"], self.random_sampling if jitter is None else jitter)

    @property
    def random_sampling(self) -> bool:
        """Coarse depths are jittered and importance samples drawn at random: in training, and in eval
        too where ``renderer.random_at_eval`` (EpiGRAF's official forward)."""
        return self.training or self.config.renderer.random_at_eval

    def render_rays(self, scene: Scene, origins: torch.Tensor, directions: torch.Tensor,
                    options: RenderOptions | None = None,
                    camera_frame: tuple[torch.Tensor, torch.Tensor] | None = None, ray_scale: torch.Tensor | None = None,
                    view_directions: torch.Tensor | None = None, axis_rays: torch.Tensor | None = None,
                    image_points: torch.Tensor | None = None) -> Composite:
        """Composite features [N, M, C] (about [-1, 1] for colour decoders), depth [N, M, 1], weights.

        ``camera_frame``: (cam2world, unit camera-frame directions) of rays from :meth:`camera_rays` in the
        'camera_frame' mode; the coarse points are then formed in the camera frame (VolumeGAN's order).
        ``ray_scale`` [N, M, 1]: the sampled depths are multiplied by it (depths along the optical
        axis: 1 / cos of the ray's angle to it); ``view_directions`` [N, M, 3]: what the decoder
        reads as view directions, if not the rays' own (StyleSDF's camera-frame directions); ``axis_rays``
        [N, M, 3]: the unnormalised rays of the 'axis' mode, the coarse points then being ``o + rays t``
        with t the sampled depths before ``ray_scale`` (GRAF's order). ``image_points`` [N, M, 3]: for an
        embedder that renders rays itself, the rays' points at unit depth along the optical axis; it then
        gets the rays ``image_points - origins`` and the sampled depths unscaled (GIRAFFE's arithmetic)."""
        opts = (options or RenderOptions()).resolve(self.rendering_kwargs)
        depths = axis_depths = self.sample_depths(origins, directions, opts.num_coarse)
        if image_points is not None and self.embedder.renders_rays:
            return self.embedder.render_rays(self, scene, origins, directions, depths, opts.density_noise,
                                             options=opts, image_points=image_points)
        if ray_scale is not None:
            depths = depths * ray_scale.unsqueeze(-2)
        directions_seen = view_directions
        if opts.lock_view_dependence:
            directions_seen = torch.tensor(LOCKED_VIEW_DIRECTION, dtype=directions.dtype, device=directions.device)
            directions_seen = directions_seen.expand_as(directions)
        if self.embedder.renders_rays:
            return self.embedder.render_rays(self, scene, origins, directions, depths, opts.density_noise,
                                             directions_seen, options=opts)

        def evaluate(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            points = None
            if camera_frame is not None and d is depths:
                points = camera_frame_points(*camera_frame, d)
            elif axis_rays is not None and d is depths:
                points = ray_samples(origins, axis_rays, axis_depths)[0]
            return self._evaluate(scene, origins, directions, d, opts.density_noise, directions_seen, points)

        integrator = self.renderer.integrator
        result, depths = render_samples(
            depths, evaluate, self.renderer.composite, opts.num_fine, deterministic=not self.random_sampling,
            importance=lambda d, coarse, count, det: self.point_sampler.importance(d, coarse, integrator, count, det))
        return self.finish_composite(result, depths)

    def finish_composite(self, result: Composite, depths: torch.Tensor) -> Composite:
        """One output convention for every integrator: colour in [-1, 1] for colour decoders, and
        the depth convention of the integrator (``Integrator.output_depth``: by default the
        weight-normalised expected depth, clamped to the samples' range)."""
        if self.renderer.integrator.unit_to_signed:
            return result  # midpoint integration already normalises depth and maps [0, 1] to [-1, 1]
        result = Composite(result.features, self.renderer.integrator.output_depth(result, depths), result.weights)
        if not self.decoder.unit_range:
            return result
        rgb, rest = result.features[..., :3], result.features[..., 3:]
        return Composite(torch.cat([rgb * 2 - 1, rest], -1), result.depth, result.weights)

    def camera_rays(self, c: torch.Tensor, resolution: int):
        """Rays of cameras c [N, 25] at r x r as this model forms them (``renderer.pixel_grid``,
        ``renderer.rays``): origins, unit directions [N, r * r, 3], and for the 'camera_frame' mode
        (cam2world, unit camera-frame directions) for :meth:`render_rays` (else None)."""
        cam2world, intrinsics = unpack_label(c)
        if self.config.renderer.rays == "camera_frame":
            origins, directions, unit = camera_frame_rays(cam2world, intrinsics, resolution)
            return origins, directions, (cam2world, unit)
        if self.config.renderer.rays == "axis":
            origins, rays = axis_rays(cam2world, intrinsics, resolution, grid=self.config.renderer.pixel_grid)
            return origins, rays / rays.norm(dim=-1, keepdim=True), None
        origins, directions = generate_rays(cam2world, intrinsics, resolution, grid=self.config.renderer.pixel_grid)
        return origins, directions, None

    def render_neural(self, scene: Scene, c: torch.Tensor, resolution: int,
                      options: RenderOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume-render cameras c [N, 25] at r x r: feature image [N, C, r, r], depth [N, 1, r, r]."""
        result = self.render_composite(scene, c, resolution, options)
        n = c.shape[0]
        features = result.features.permute(0, 2, 1).reshape(n, -1, resolution, resolution)
        depth = result.depth.permute(0, 2, 1).reshape(n, 1, resolution, resolution)
        return features.contiguous(), depth

    def render_composite(self, scene: Scene, c: torch.Tensor, resolution: int,
                         options: RenderOptions | None = None) -> Composite:
        """The composite of every pixel's ray (raster order, M = r * r): features [N, M, C], depth
        [N, M, 1] and the samples' weights [N, M, K, 1] (StyleSDF's mask is the last weight)."""
        if self.embedder.renders_cameras:  # StyleNeRF: its own rays, samples and background
            return self.embedder.render_cameras(self, scene, c, resolution, options)
        grid = self.config.renderer.pixel_grid
        if self.config.renderer.rays == "axis":  # GRAF's order of operations
            origins, rays = axis_rays(*unpack_label(c), resolution, grid=grid)
            scale = rays.norm(dim=-1, keepdim=True)
            return self.render_rays(scene, origins, rays / scale, options, ray_scale=scale, axis_rays=rays)
        origins, directions, camera_frame = self.camera_rays(c, resolution)
        if camera_frame is not None:  # VolumeGAN's order of operations
            return self.render_rays(scene, origins, directions, options, camera_frame)
        ray_scale, views = self._axis_terms(c, resolution)
        image_points = None
        if self.embedder.renders_rays and self.config.points.depth_along_axis:
            image_points = image_plane_points(*unpack_label(c), resolution, grid=self.config.renderer.pixel_grid)
        return self.render_rays(scene, origins, directions, options, ray_scale=ray_scale, view_directions=views,
                                image_points=image_points)

    def _axis_terms(self, c: torch.Tensor, resolution: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(ray scale [N, M, 1] for depths along the optical axis, camera-frame view directions [N, M, 3]),
        each None where the config does not ask for it."""
        _, intrinsics = unpack_label(c)
        ray_scale = views = None
        if self.config.points.depth_along_axis or self.config.renderer.camera_frame_views:
            camera = camera_directions(intrinsics, resolution, grid=self.config.renderer.pixel_grid)  # OpenCV (x, y, 1)
            if self.config.points.depth_along_axis:
                ray_scale = camera.norm(dim=-1, keepdim=True)
            if self.config.renderer.camera_frame_views:  # OpenGL camera axes, unit length
                views = F.normalize(camera * camera.new_tensor([1.0, -1.0, -1.0]), dim=-1)
        return ray_scale, views

    def axis_rays(self, c: torch.Tensor, resolution: int, options: RenderOptions | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rays of cameras c [N, 25] at r x r as GRAF and GIRAFFE form them: origins and the pixels'
        image-plane points at unit depth along the optical axis [N, M, 3], and the evaluation depths
        [N, M, K, 1] along the axis (points: origin + depth (image point - origin))."""
        opts = (options or RenderOptions()).resolve(self.rendering_kwargs)
        origins, directions, _ = self.camera_rays(c, resolution)
        points = image_plane_points(*unpack_label(c), resolution, grid=self.config.renderer.pixel_grid)
        return origins, points, self.sample_depths(origins, directions, opts.num_coarse, jitter=False)

    # --- geometry ----------------------------------------------------------------------------

    def mesh_fields(self, scene: Scene, options: RenderOptions | None = None) -> MeshFields:
        """The field a mesh of one identity comes from: -SDF at level 0 for SDF models, the
        embedder's own field where it has one (GRAM's manifolds at their most-weighted level), raw
        density otherwise (level picked by the viewer). ``options.scene``: a compositional model's
        boxes (default: its defaults)."""
        half = self.box_side / 2

        def decode(points: torch.Tensor) -> dict[str, torch.Tensor]:
            pts = points.to(scene.ws.device).reshape(1, -1, 3)
            directions = F.normalize(torch.tensor(self.rendering_kwargs["avg_camera_pivot"], device=pts.device)
                                     - self.default_camera(device=pts.device)[0, [3, 7, 11]], dim=0).expand_as(pts)
            return self._decode(scene, pts, directions.contiguous(), **({} if options is None else {"options": options}))

        def color(points: torch.Tensor) -> torch.Tensor:
            rgb = decode(points)["rgb"][0, :, :3]
            # Colour decoders give [0, 1]; feature decoders' first channels are read like image_raw.
            return (rgb if self.decoder.unit_range else rgb * 0.5 + 0.5).clamp(0, 1)

        if self.renderer.sdf:
            return MeshFields(lambda p: -decode(p)["raw"][0, :, 0], color, (-half, half), 0.0)
        own = self.embedder.mesh_fields(self, scene, color)
        if own is not None:
            return own
        return MeshFields(lambda p: decode(p)["raw"][0, :, 0], color, (-half, half), None,
                          eg3d_cleanup=self.embedder.mesh_border_cleanup)


def _ws_slices(*counts: int) -> tuple[slice, ...]:
    out, start = [], 0
    for count in counts:
        out.append(slice(start, start + count))
        start += count
    return tuple(out)
