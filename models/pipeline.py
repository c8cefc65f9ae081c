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

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.decoders import GramSirenDecoder, ModulatedMLPDecoder, NeRFMLPDecoder, StyleSDFSirenDecoder
from models.eg3d import OSGDecoder
from models.embedders import build_embedder, encoded_size
from models.pipeline_config import PipelineConfig
from models.scene import MeshFields, Scene
from models.siren import FiLMMapping, SirenFiLMDecoder
from models.stylegan2 import MappingNetwork
from models.superresolution import Superresolution
from models.upsamplers import GiraffeNeuralRenderer, StyleGANUpsampler
from ops.camera import fov_to_focal, generate_rays, orbit_label, unpack_label
from ops.compositing import (
    DENSITY_ACTIVATIONS,
    Composite,
    combine_fields,
    composite_constant_delta,
    composite_last_delta,
    composite_midpoint,
    density_from_sdf_laplace,
    density_from_sdf_sigmoid,
)
from ops.manifolds import GRAM_BACKGROUND_DELTA, GRAM_BACKGROUND_Z, ray_manifold_intersections, ray_plane_z_intersection, sort_by_depth
from ops.ray_sampling import auto_ray_bounds, importance_depths, merge_sorted_samples, ray_samples, stratified_depths
from ops.siren import positional_encoding


# --- mapping -------------------------------------------------------------------------------------

class FiLMMappingNetwork(nn.Module):
    """pi-GAN's mapper as a ws producer: ws [N, L, 2 width] = (raw frequencies | phases) per FiLM
    layer, with a tracked average for truncation (pi-GAN truncates the same way)."""

    def __init__(self, z_dim: int, hidden: int, layers: int, num_ws: int, width: int):
        super().__init__()
        self.z_dim, self.num_ws, self.w_dim = z_dim, num_ws, 2 * width
        self.film = FiLMMapping(z_dim, hidden=hidden, hidden_layers=layers, out_layers=num_ws, width=width)
        self.register_buffer("w_avg", torch.zeros([num_ws, 2 * width]))

    def forward(self, z, c=None, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        frequencies, phases = self.film(z)
        ws = torch.cat([frequencies, phases], dim=-1)
        if update_emas:
            self.w_avg.copy_(ws.detach().mean(0).lerp(self.w_avg, 0.995))
        return _truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


class IdentityMapping(nn.Module):
    """GRAF/GIRAFFE use z directly: ws = z [N, 1, z_dim]; truncation pulls z towards 0, its mean."""

    num_ws = 1

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = self.w_dim = z_dim
        self.register_buffer("w_avg", torch.zeros([z_dim]))

    def forward(self, z, c=None, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        return _truncate(z[:, None].float(), self.w_avg, truncation_psi, truncation_cutoff)


def _truncate(ws: torch.Tensor, avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    if psi == 1:
        return ws
    ws = ws.clone()
    layers = slice(None) if cutoff is None else slice(0, cutoff)
    ws[:, layers] = avg.expand_as(ws)[:, layers].lerp(ws[:, layers], psi)
    return ws


# --- decoders --------------------------------------------------------------------------------------

class _DecoderAdapter(nn.Module):
    """One call shape for every decoder: (features [N, M, C], directions [N, M, 3], ws slice)
    -> {'rgb' [N, M, out], 'raw' [N, M, 1] (raw density or SDF), optional 'feature'}.

    ``unit_range``: the colour is in [0, 1] and becomes [-1, 1] after compositing.
    """

    def __init__(self, config: PipelineConfig, in_features: int, w_dim: int, fields: int = 1):
        super().__init__()
        d, e = config.decoder, config.embedder
        self.kind = d.kind
        self.sdf = d.kind == "sdf_siren"
        self.unit_range = d.kind in ("osg", "siren", "gram_siren", "sdf_siren") or (d.kind == "nerf_mlp" and d.out_features == 3)
        self.dir_frequencies = int(e.dir_pe_frequencies)
        if d.kind == "osg":
            self.net = OSGDecoder(in_features, hidden_dim=d.hidden, output_dim=d.out_features, activation=d.activation)
            self.num_ws = 0
        elif d.kind == "siren":
            self.net = SirenFiLMDecoder(width=d.hidden, depth=d.layers, in_features=in_features, box_side=2.0)
            self.num_ws = self.net.num_film_layers
        elif d.kind == "gram_siren":
            self._need_xyz(in_features)
            self.net = GramSirenDecoder(width=d.hidden, depth=d.layers, box_side=2.0)
            self.num_ws = self.net.num_film_layers
        elif d.kind == "sdf_siren":
            self._need_xyz(in_features)
            self.net = StyleSDFSirenDecoder(w_dim=w_dim, width=d.hidden, depth=d.layers, feature_dim=d.sdf_feature_dim,
                                            coordinate_scale=1.0)
            self.num_ws = self.net.num_ws
        elif d.kind == "modulated_mlp":
            self.net = ModulatedMLPDecoder(in_features, w_dim, hidden=d.hidden, num_layers=d.layers, out_features=d.out_features)
            self.num_ws = self.net.num_ws
        elif d.kind == "nerf_mlp":
            self.net = NeRFMLPDecoder(in_features, encoded_size(self.dir_frequencies), d.z_shape_dim, d.z_app_dim,
                                      hidden=d.hidden, num_layers=d.layers, skip=max(min(d.skip, d.layers - 2), 0),
                                      out_features=d.out_features)
            self.num_ws = 0
        else:
            raise ValueError(f"unknown decoder {d.kind!r}")

    def _need_xyz(self, in_features: int) -> None:
        if in_features != 3:
            raise ValueError(f"decoder {self.kind!r} reads 3-d coordinates; this embedder gives {in_features} features "
                             "(use the 'coordinate' or 'manifold' embedder, or the 'siren' decoder)")

    def forward(self, features: torch.Tensor, directions: torch.Tensor, ws: torch.Tensor,
                codes: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        if self.kind == "osg":
            out = self.net(features.unsqueeze(1), directions)
            return {"rgb": out["rgb"], "raw": out["sigma"]}
        if self.kind in ("siren", "gram_siren"):
            frequencies, phases = ws.chunk(2, dim=-1)
            out = self.net(features, directions, frequencies, phases)
            return {"rgb": out["rgb"], "raw": out["sigma"]}
        if self.kind == "sdf_siren":
            out = self.net(features, directions, ws)
            return {"rgb": torch.cat([out["rgb"], out["feature"]], dim=-1), "raw": out["sdf"]}
        if self.kind == "modulated_mlp":
            out = self.net(features, ws)
            return {"rgb": out["rgb"], "raw": out["sigma"]}
        z_shape, z_app = codes
        out = self.net(features, positional_encoding(directions, self.dir_frequencies), z_shape, z_app)
        rgb = torch.sigmoid(out["rgb"]) if self.unit_range else out["rgb"]
        return {"rgb": rgb, "raw": out["sigma"]}


# --- the generator ---------------------------------------------------------------------------------

class PipelineGenerator(nn.Module):
    """A 3D-aware generator assembled from pipeline components (see the module docstring)."""

    def __init__(self, config: PipelineConfig):
        super().__init__()
        config.validate()
        self.config = config
        c = config
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = c.mapping.z_dim, c.c_dim, c.img_resolution, c.img_channels
        self.neural_rendering_resolution = c.neural_rendering_resolution
        self.rendering_kwargs: dict[str, Any] = self._rendering_kwargs(c)

        w_dim = c.mapping.w_dim if c.mapping.kind == "stylegan2" else (2 * c.decoder.hidden if c.mapping.kind == "film" else c.mapping.z_dim)
        self.embedder = build_embedder(c.embedder, w_dim, c.points.box_side)
        self.decoder = _DecoderAdapter(c, self.embedder.out_features, w_dim)
        if c.embedder.kind == "composition" and c.embedder.background:
            bg = dataclasses.replace(c, decoder=dataclasses.replace(c.decoder, hidden=c.decoder.background_hidden,
                                                                    layers=c.decoder.background_layers,
                                                                    z_shape_dim=c.decoder.background_z_dim,
                                                                    z_app_dim=c.decoder.background_z_dim,
                                                                    skip=c.decoder.background_layers))
            self.background_decoder = _DecoderAdapter(bg, self.embedder.out_features, w_dim)
        channels = c.decoder.out_features + (c.decoder.sdf_feature_dim if c.decoder.kind == "sdf_siren" else 0)
        self.feature_channels = channels
        self.upsampler, upsampler_ws = self._build_upsampler(c, channels, w_dim)
        self.renderer = VolumeRenderer(c)

        # ws layout: [embedder | decoder | upsampler].
        self.ws_slices = _ws_slices(self.embedder.num_ws, self.decoder.num_ws, upsampler_ws)
        num_ws = max(self.ws_slices[-1].stop, 1)
        if c.mapping.kind == "stylegan2":
            self.mapping_network = MappingNetwork(c.mapping.z_dim, c.c_dim if c.mapping.camera_conditioning else 0, w_dim,
                                                  num_ws, num_layers=c.mapping.layers, lr_multiplier=c.mapping.lr_multiplier)
        elif c.mapping.kind == "film":
            self.mapping_network = FiLMMappingNetwork(c.mapping.z_dim, c.mapping.hidden, c.mapping.layers, num_ws, c.decoder.hidden)
        else:
            self.mapping_network = IdentityMapping(c.mapping.z_dim)
        self.w_dim, self.num_ws = w_dim, num_ws
        self.requires_grad_(True)

    def requires_grad_(self, requires_grad: bool = True) -> "PipelineGenerator":
        """As nn.Module's, but frozen components (``config.frozen``) stay frozen."""
        super().requires_grad_(requires_grad)
        for name in self.config.frozen:
            getattr(self, name).requires_grad_(False)
        return self

    @staticmethod
    def _rendering_kwargs(c: PipelineConfig) -> dict[str, Any]:
        """The live options the viewer and batch tools read (EG3D's key names)."""
        return {
            "depth_resolution": c.points.num_coarse, "depth_resolution_importance": c.points.num_fine,
            "ray_start": c.points.near, "ray_end": c.points.far, "box_warp": c.points.box_side,
            "avg_camera_radius": c.pose.radius, "avg_camera_pivot": list(c.pose.pivot),
            "avg_camera_fov": c.pose.fov_degrees, "density_noise": c.renderer.density_noise,
            "white_back": c.renderer.white_back, "superresolution_noise_mode": "none",
        }

    def _build_upsampler(self, c: PipelineConfig, channels: int, w_dim: int) -> tuple[nn.Module | None, int]:
        u = c.upsampler
        if u.kind == "none":
            return None, 0
        if u.kind == "eg3d_sr":
            return Superresolution(u.sr_module, channels=channels, img_resolution=c.img_resolution, w_dim=w_dim,
                                   fused_modconv_default="inference_only"), 1
        if u.kind == "stylegan":
            module = StyleGANUpsampler(channels, c.neural_rendering_resolution, c.img_resolution, w_dim,
                                       channel_base=u.channel_base, channel_max=u.channel_max, upsample_mode=u.upsample_mode)
            return module, module.num_ws
        return GiraffeNeuralRenderer(channels, c.neural_rendering_resolution, c.img_resolution, min_channels=u.min_channels), 0

    # --- EG3D API ----------------------------------------------------------------------------

    def current_config(self) -> PipelineConfig:
        """The config with the live sample counts and neural resolution folded back in."""
        config = PipelineConfig.from_dict(self.config.to_dict())
        config.points.num_coarse = int(self.rendering_kwargs["depth_resolution"])
        config.points.num_fine = int(self.rendering_kwargs["depth_resolution_importance"])
        config.neural_rendering_resolution = int(self.neural_rendering_resolution)
        return config

    def mapping(self, z, c, truncation_psi: float = 1, truncation_cutoff: int | None = None, update_emas: bool = False):
        """z [N, z_dim], c [N, 25] -> ws [N, num_ws, w_dim]."""
        return self.mapping_network(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                    update_emas=update_emas)

    def planes(self, ws: torch.Tensor, update_emas: bool = False, noise_mode: str = "const", **_) -> Scene:
        """ws -> the per-identity scene (the name is EG3D's; only tri-plane models return planes inside)."""
        features = self.embedder.scene(ws[:, self.ws_slices[0]], noise_mode=noise_mode, update_emas=update_emas)
        return Scene(ws, features)

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  update_emas: bool = False, noise_mode: str = "const", max_resolution: int | None = None,
                  fade_alpha: float = 1.0, **_) -> dict[str, torch.Tensor]:
        """Render ws from cameras c [N, 25]: image [N, 3, R, R], image_raw [N, 3, r, r], image_depth [N, 1, r, r].

        ``max_resolution`` / ``fade_alpha``: a StyleGAN upsampler grown only this far, its newest
        block faded in (progressive growing in training); other upsamplers ignore them."""
        r = int(neural_rendering_resolution or self.neural_rendering_resolution)
        scene = self.planes(ws, update_emas=update_emas, noise_mode=noise_mode)
        features, depth = self.render_neural(scene, c, r)
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
        image_raw = features[:, :3]
        if self.upsampler is None:
            return image_raw, image_raw
        if isinstance(self.upsampler, Superresolution):
            return self.upsampler(image_raw, features, ws[:, self.ws_slices[2]], noise_mode="none")[0], image_raw
        if isinstance(self.upsampler, StyleGANUpsampler):
            return self.upsampler(features, ws[:, self.ws_slices[2]], noise_mode=noise_mode,
                                  max_resolution=max_resolution, alpha=fade_alpha), image_raw
        return self.upsampler(features), image_raw

    def sample_mixed(self, coordinates, directions, ws, update_emas: bool = False, noise_mode: str = "const", **_):
        """σ and colour at world points for ws: coordinates [N, M, 3] -> {'rgb', 'sigma'} (+ 'sdf')."""
        return self.run_decoder(self.planes(ws, update_emas=update_emas, noise_mode=noise_mode), coordinates, directions)

    def sample(self, coordinates, directions, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.sample_mixed(coordinates, directions, ws, update_emas=update_emas, **kwargs)

    def run_decoder(self, scene: Scene, coordinates: torch.Tensor, directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decoder at world points [N, M, 3]: {'rgb' [N, M, C], 'sigma' [N, M, 1]}; 'sigma' is the
        raw density (with training noise), or for SDF models the density of the SDF, plus 'sdf'."""
        out = self._decode(scene, coordinates, directions)
        if self.renderer.sdf:
            return {"rgb": out["rgb"], "sigma": self.renderer.density(out["raw"]), "sdf": out["raw"]}
        return {"rgb": out["rgb"], "sigma": self.renderer.noisy(out["raw"], self.rendering_kwargs["density_noise"])}

    def default_camera(self, batch: int = 1, yaw: float = 0.0, pitch: float = 0.0, focal: float | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """[batch, 25] orbit camera at the model's average radius and pivot (focal: the model's fov)."""
        opts = self.rendering_kwargs
        focal = fov_to_focal(opts["avg_camera_fov"]) if focal is None else focal
        label = orbit_label(yaw, pitch, float(opts["avg_camera_radius"]), opts["avg_camera_pivot"], focal)
        return label.repeat(batch, 1).to(device if device is not None else self.mapping_network.w_avg.device)

    # --- rendering ---------------------------------------------------------------------------

    def _decode(self, scene: Scene, points: torch.Tensor, directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """All fields at points [N, M, 3] -> {'rgb' [N, M, C], 'raw' [N, M, 1]} (composed for GIRAFFE)."""
        ws = scene.ws[:, self.ws_slices[1]]
        z = scene.ws[:, 0]
        per = self.config.codes_per_field()
        shape_dim = self.config.decoder.z_shape_dim
        if self.config.embedder.kind != "composition":
            codes = (z[:, :shape_dim], z[:, shape_dim:per]) if self.decoder.kind == "nerf_mlp" else None
            return self.decoder(self.embedder(scene.features, points), directions, ws, codes)
        features, densities, raws = [], [], []
        for i in range(self.embedder.num_objects):
            codes = z[:, i * per:i * per + shape_dim], z[:, i * per + shape_dim:(i + 1) * per]
            out = self.decoder(self.embedder(None, points), directions, ws, codes)
            features.append(out["rgb"])
            raws.append(out["raw"])
        if self.embedder.has_background:
            start, bz = self.embedder.num_objects * per, self.config.decoder.background_z_dim
            codes = z[:, start:start + bz], z[:, start + bz:start + 2 * bz]
            out = self.background_decoder(self.embedder.background(points), directions, ws, codes)
            features.append(out["rgb"])
            raws.append(out["raw"])
        # GIRAFFE composes activated densities; the renderer re-applies ReLU, which is then a no-op.
        densities = [self.renderer.activate(r) for r in raws]
        feature, density = combine_fields(torch.stack(features), torch.stack(densities))
        return {"rgb": feature, "raw": density}

    def _evaluate(self, scene: Scene, origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor):
        """Decoder at depths [N, M, K, 1] along rays: rgb [N, M, K, C], raw [N, M, K, 1]."""
        n, m, k, _ = depths.shape
        points, dirs = ray_samples(origins, directions, depths)
        out = self._decode(scene, points, dirs)
        raw = out["raw"] if self.renderer.sdf else self.renderer.noisy(out["raw"], self.rendering_kwargs["density_noise"])
        return out["rgb"].reshape(n, m, k, -1), raw.reshape(n, m, k, 1)

    def _depths(self, origins: torch.Tensor, directions: torch.Tensor, count: int, jitter: bool | None = None) -> torch.Tensor:
        """[N, M, K, 1] sample depths between the ray bounds (fixed or 'auto'), jittered in
        training (``jitter`` overrides)."""
        opts = self.rendering_kwargs
        n, m, _ = origins.shape
        if opts["ray_start"] == "auto" or opts["ray_end"] == "auto":
            start, end = auto_ray_bounds(origins, directions, float(opts["box_warp"]))
        else:
            start, end = float(opts["ray_start"]), float(opts["ray_end"])
        jitter = self.training if jitter is None else jitter
        perturb = self.config.points.perturb if jitter else "none"
        depths = stratified_depths(n, m, start, end, count, jitter=False, device=origins.device)
        if perturb == "none" or count < 2:
            return depths
        spacing = depths[:, :, 1:2] - depths[:, :, 0:1]
        if perturb == "uniform":  # EG3D: forward by U(0, 1) spacings
            return depths + torch.rand_like(depths) * spacing
        if perturb == "self_uniform":  # pi-GAN: +-half a spacing
            return depths + (torch.rand_like(depths) - 0.5) * spacing
        return depths + torch.rand_like(depths[:, :, :1]) * spacing  # StyleSDF: one offset per ray

    def render_rays(self, scene: Scene, origins: torch.Tensor, directions: torch.Tensor) -> Composite:
        """Composite features [N, M, C] (about [-1, 1] for colour decoders), depth [N, M, 1], weights."""
        opts = self.rendering_kwargs
        depths = self._depths(origins, directions, int(opts["depth_resolution"]))
        if self.config.embedder.kind == "manifold":
            return self._render_manifolds(scene, origins, directions, depths)
        rgb, raw = self._evaluate(scene, origins, directions, depths)
        num_fine = int(opts["depth_resolution_importance"])
        if num_fine > 0:
            coarse = self.renderer.composite(rgb, raw, depths)
            weights = coarse.weights if self.renderer.integrator == "midpoint" else coarse.weights[:, :, 1:]
            fine = importance_depths(depths, weights, num_fine, deterministic=not self.training)
            rgb_fine, raw_fine = self._evaluate(scene, origins, directions, fine)
            depths, rgb, raw = merge_sorted_samples(depths, rgb, raw, fine, rgb_fine, raw_fine)
        result = self.renderer.composite(rgb, raw, depths)
        return self._finish(result, depths)

    def _finish(self, result: Composite, depths: torch.Tensor) -> Composite:
        """One output convention for every integrator: colour in [-1, 1] for colour decoders, and
        depth = the weight-normalised expected depth, clamped to the samples' range, with empty rays
        at the far end (EG3D's ``MipRayMarcher2`` convention; the NeRF-style sum alone would put
        empty pixels at depth 0, in front of the camera)."""
        if self.renderer.integrator != "midpoint":
            total = result.weights.sum(-2)
            lo, hi = depths.amin(dim=-2), depths.amax(dim=-2)
            depth = torch.where(total > 1e-6, result.depth / total.clamp_min(1e-6), hi)
            result = Composite(result.features, torch.minimum(torch.maximum(depth, lo), hi), result.weights)
        if self.renderer.integrator == "midpoint" or not self.decoder.unit_range:
            return result  # midpoint integration already maps [0, 1] to [-1, 1]
        rgb, rest = result.features[..., :3], result.features[..., 3:]
        return Composite(torch.cat([rgb * 2 - 1, rest], -1), result.depth, result.weights)

    def _render_manifolds(self, scene: Scene, origins, directions, depths) -> Composite:
        """GRAM: intersect the rays with the level sets of s(x), shade the surface points, composite
        with a constant interval (the background plane is opaque)."""
        n, m, k, _ = depths.shape
        samples = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)  # [N, M, K, 3]
        values = self.embedder.field(samples)
        hits = ray_manifold_intersections(samples, values, self.embedder.levels, origins)
        points, valid, depth = hits.points, hits.valid, hits.depth
        delta = torch.full_like(depth, self.renderer.constant_delta)
        if self.embedder.background_plane:
            plane = ray_plane_z_intersection(origins, directions, GRAM_BACKGROUND_Z * self._world_scale())
            plane_depth = torch.linalg.vector_norm(plane[:, :, 0] - origins, dim=-1)[..., None]
            points = torch.cat([points, plane], 2)
            valid = torch.cat([valid, plane_depth > 0], 2)
            depth = torch.cat([depth, plane_depth], 2)
            delta = torch.cat([delta, torch.full_like(plane_depth, GRAM_BACKGROUND_DELTA)], 2)
            sorted_hits, order = sort_by_depth(points, valid, depth)
            points, valid, depth = sorted_hits
            delta = torch.gather(delta, -1, order)
        num = points.shape[2]
        dirs = directions.unsqueeze(-2).expand(-1, -1, num, -1).reshape(n, -1, 3)
        out = self.decoder(self.embedder(None, points.reshape(n, -1, 3)), dirs, scene.ws[:, self.ws_slices[1]])
        raw = self.renderer.noisy(out["raw"], self.rendering_kwargs["density_noise"])
        density = self.renderer.activate(raw).reshape(n, m, num, 1)
        result = composite_constant_delta(out["rgb"].reshape(n, m, num, -1), density, depth[..., None],
                                          delta=delta[..., None], valid=valid[..., None],
                                          white_background=self.renderer.white_back)
        return self._finish(result, depth[..., None])

    def _world_scale(self) -> float:
        # GRAM's plane sits at z = -0.12 for its 0.24-wide face box; scale with the box.
        return self.config.points.box_side / 0.24

    def render_neural(self, scene: Scene, c: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume-render cameras c [N, 25] at r x r: feature image [N, C, r, r], depth [N, 1, r, r]."""
        cam2world, intrinsics = unpack_label(c)
        origins, directions = generate_rays(cam2world, intrinsics, resolution)
        n = origins.shape[0]
        result = self.render_rays(scene, origins, directions)
        features = result.features.permute(0, 2, 1).reshape(n, -1, resolution, resolution)
        depth = result.depth.permute(0, 2, 1).reshape(n, 1, resolution, resolution)
        return features.contiguous(), depth

    # --- geometry ----------------------------------------------------------------------------

    def mesh_fields(self, scene: Scene) -> MeshFields:
        """The field a mesh of one identity comes from: -SDF at level 0 for SDF models, GRAM's
        manifold field at its most-weighted level, raw density otherwise (level picked by the viewer)."""
        half = self.config.points.box_side / 2

        def decode(points: torch.Tensor) -> dict[str, torch.Tensor]:
            pts = points.to(scene.ws.device).reshape(1, -1, 3)
            directions = F.normalize(torch.tensor(self.rendering_kwargs["avg_camera_pivot"], device=pts.device)
                                     - self.default_camera(device=pts.device)[0, [3, 7, 11]], dim=0).expand_as(pts)
            return self._decode(scene, pts, directions.contiguous())

        def color(points: torch.Tensor) -> torch.Tensor:
            rgb = decode(points)["rgb"][0, :, :3]
            # Colour decoders give [0, 1]; feature decoders' first channels are read like image_raw.
            return (rgb if self.decoder.unit_range else rgb * 0.5 + 0.5).clamp(0, 1)

        if self.renderer.sdf:
            return MeshFields(lambda p: -decode(p)["raw"][0, :, 0], color, (-half, half), 0.0)
        if self.config.embedder.kind == "manifold":
            field = lambda p: self.embedder.field(p.to(scene.ws.device))  # noqa: E731
            return MeshFields(field, color, (-half, half), self.dominant_level(scene), inside="below")
        return MeshFields(lambda p: decode(p)["raw"][0, :, 0], color, (-half, half), None)

    @torch.no_grad()
    def dominant_level(self, scene: Scene) -> float:
        """GRAM: the level whose manifold carries the most compositing weight in the frontal view."""
        camera = self.default_camera(device=scene.ws.device)
        cam2world, intrinsics = unpack_label(camera)
        origins, directions = generate_rays(cam2world, intrinsics, 32)
        depths = self._depths(origins, directions, int(self.rendering_kwargs["depth_resolution"]), jitter=False)
        samples = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)
        values = self.embedder.field(samples)
        levels = self.embedder.levels
        weights = torch.zeros(len(levels), device=levels.device)
        for i, level in enumerate(levels):
            hits = ray_manifold_intersections(samples, values, level.reshape(1), origins)
            out = self.decoder(self.embedder(None, hits.points.reshape(1, -1, 3)), directions, scene.ws[:1, self.ws_slices[1]])
            alpha = 1 - torch.exp(-self.renderer.activate(out["raw"]) * self.renderer.constant_delta)
            weights[i] = (alpha[..., 0] * hits.valid.reshape(1, -1)).sum()
        return float(levels[int(weights.argmax())])


class VolumeRenderer(nn.Module):
    """Density activation (with StyleSDF's learnable alpha) and the integrator."""

    def __init__(self, config: PipelineConfig):
        super().__init__()
        r = config.renderer
        self.kind, self.integrator = r.density, r.integrator
        self.sdf = r.density.startswith("sdf_")
        self.constant_delta = float(r.constant_delta)
        self.white_back = bool(r.white_back)
        if self.sdf:
            self.sdf_alpha = nn.Parameter(torch.tensor(float(r.sdf_alpha_init)))
            self.sdf_scale = float(config.embedder.coordinate_scale)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Density from a raw decoder output (not for SDF models)."""
        return DENSITY_ACTIVATIONS[self.kind](raw)

    def density(self, sdf: torch.Tensor) -> torch.Tensor:
        """Density per world unit from an SDF in the decoder's normalised units (alpha kept positive).

        The SDF, alpha and StyleSDF's sphere prior live in the units the decoder sees (world x
        ``sdf_scale``), so the density per normalised unit is scaled to per world unit, the unit
        of the ray intervals. With that, sigmoid(-d/alpha)/alpha puts the expected depth of an exact
        SDF exactly on its zero level (the optical depth is softplus(u/a), a = alpha/scale)."""
        alpha = self.sdf_alpha.abs().clamp_min(1e-4)
        density = density_from_sdf_sigmoid(sdf, alpha) if self.kind == "sdf_sigmoid" else density_from_sdf_laplace(sdf, alpha)
        return density * self.sdf_scale

    def noisy(self, raw: torch.Tensor, std: float) -> torch.Tensor:
        return raw + torch.randn_like(raw) * std if self.training and std > 0 else raw

    def composite(self, rgb: torch.Tensor, raw: torch.Tensor, depths: torch.Tensor) -> Composite:
        """rgb [N, M, K, C], raw [N, M, K, 1] (density or SDF), depths [N, M, K, 1]."""
        if self.integrator == "midpoint":
            activation = self.density if self.sdf else self.activate
            return composite_midpoint(rgb, raw, depths, activation=activation, white_background=self.white_back)
        density = self.density(raw) if self.sdf else self.activate(raw)
        if self.integrator == "last_delta":
            return composite_last_delta(rgb, density, depths, white_background=self.white_back)
        return composite_constant_delta(rgb, density, depths, delta=self.constant_delta, white_background=self.white_back)


def _ws_slices(*counts: int) -> tuple[slice, ...]:
    out, start = [], 0
    for count in counts:
        out.append(slice(start, start + count))
        start += count
    return tuple(out)


def build_pipeline(config: PipelineConfig | str) -> PipelineGenerator:
    """A freshly initialised generator from a config or a preset name ('pigan', 'gram-tiny', ...)."""
    from models.pipeline_config import pipeline_preset

    return PipelineGenerator(pipeline_preset(config) if isinstance(config, str) else config)
