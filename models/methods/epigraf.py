"""EpiGRAF (methods.md §3.9, ``../shared/fixtures/epigraf_ref/README.md``), following the official network.

* :func:`preset`: the FFHQ components. Dataset camera angles re-placed at r 1, fov 12, 48+48 samples on
  0.88-1.12 (coarse jittered within midpoint bins, importance from the raw coarse weights), a 512^2 x 3 x 32
  tri-plane from StyleGAN2 synthesis (``conv_clamp`` 256), sampled with ``align_corners`` at points /
  ``cube_scale`` 0.2 on EpiGRAF's planes (x, y), (x, z), (y, z), averaged; the MLP FC 32 -> 64 (leaky ReLU
  x sqrt 2) -> [r, g, b, sigma] with linear colour; softplus density with noise 1 annealed over 5000 kimg;
  intervals to the next sample (the last 1e10), depth the plain weighted sum; corner-aligned pixels, rays
  normalised in the camera frame, coarse points by the 4x4 cam2world; 64 px patches of the 512 px image,
  a 2-layer mapping; no upsampler. Carver: R1 0.1, batch 8 per GPU, pose_dim 3.
* :func:`from_official`: the config of a released snapshot (``models.checkpoint.read_epigraf_pickle_generator``),
  :data:`OFFICIAL_NAMES` its parameter names.

Differences from the official code by design:

* The world: EpiGRAF's is y up with its front view on +x; ours has the front on +z, so the app's orbit
  sees the face. The 'epigraf' tri-plane axes fold the change into the plane matrices (signed
  permutations) and ``ops.camera.epigraf_pose`` gives its cameras in our world, so every value is the
  same (exactly); its positive yaw turns the camera toward our -x.
* Sampling: by default eval renders use the deterministic rule (linspace depths, fixed importance
  quantiles, the fixture's rule); the official forward always draws at random, which the
  ``random_sampling`` release setting (``renderer.random_at_eval``) reproduces.
* The camera conditioning of the mapping (``camera_cond``) reads the stored ``mean_camera_pose`` in eval
  (as the official inference, which passes no angles) and the cameras' angles in training.
* Class-conditional releases truncate toward the mean ws of 256 z of the class as the inference
  script does, but from seed 0 (the script draws them afresh); the class is ``G.set_class``.
* Not reproduced (refused with one line): background models (``bg_model``), a view-conditioned MLP
  (``has_view_cond``), coordinate encoding (``posenc_period_len``), a density shift.
"""

from typing import Any

import torch

from models.decoders import EpiGRAFMLPDecoder
from models.embedders import TriplaneEmbedder
from models.mappings import EpiGRAFMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import DatasetAnglePoses
from models.volume_rendering import LastDeltaIntegrator, SoftplusDensity


@register_method("epigraf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="epigraf", img_resolution=512, neural_rendering_resolution=512,
        mapping=EpiGRAFMapping.Config(z_dim=512, w_dim=512, layers=2),
        pose=DatasetAnglePoses.Config(radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=48, num_fine=48, perturb="midpoint_bins",
                                             importance="plain", box_side=0.4, patch="epigraf", patch_size=64),
        embedder=TriplaneEmbedder.Config(resolution=512, channels=32, axes="epigraf", align_corners=True,
                                         divide_coordinates=True, conv_clamp=256),
        decoder=EpiGRAFMLPDecoder.Config(hidden=64, layers=2, out_features=3),
        density=SoftplusDensity.Config(), integrator=LastDeltaIntegrator.Config(depth_sum=True),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000.0, pixel_grid="corners",
                                  rays="camera_frame"),
    )


OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    ("mapping.", "mapping_network."),
    ("synthesis.tri_plane_decoder.", "embedder.backbone."),
    ("synthesis.tri_plane_mlp.model.", "decoder.net."),
)
"""(official prefix, pipeline prefix) of every EpiGRAF generator parameter and buffer."""


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official EpiGRAF ``G_ema`` state dict under the pipeline's names (unknown names kept, so the
    loader reports them)."""
    return {_rename(name, OFFICIAL_NAMES): tensor for name, tensor in state_dict.items()}


def pipeline_to_official_names(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`official_to_pipeline_names`."""
    return {_rename(name, tuple((b, a) for a, b in OFFICIAL_NAMES)): v for name, v in state_dict.items()}


def official_network(cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> str:
    """The ``Release.network`` an EpiGRAF generator is identified by: its class-label size."""
    embed = shapes.get("mapping.embed.weight")
    camera = 2 if cfg.get("camera_cond") is True else 0
    classes = embed[1] - camera if embed is not None else 0
    return f"EpiGRAF Generator, c_dim {classes}"


def _number(value: Any, fallback: float) -> float:
    """A resolved config number, else ``fallback`` (the release's)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float(fallback)


def from_official(cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]], release: Any,
                  settings: dict[str, Any] | None = None) -> PipelineConfig:
    """The pipeline config of an official EpiGRAF generator: sizes from the tensor shapes, rendering from
    its resolved ``cfg`` (``cfg.dataset`` where it resolves, else the release), user ``settings`` last.

    Raises:
        ValueError: options this importer does not reproduce (a background model, view-conditioned MLP,
            positional encoding, a density shift, clamp modes other than softplus).
    """
    settings = settings or {}
    tri = cfg.get("tri_plane") if isinstance(cfg.get("tri_plane"), dict) else {}
    if any(k.startswith("synthesis.bg_model.") for k in shapes) or (cfg.get("bg_model") or {}).get("type"):
        raise ValueError("a background model (bg_model) is not supported")
    if tri.get("has_view_cond") is True or any(k.startswith("synthesis.tri_plane_mlp.color_network") for k in shapes):
        raise ValueError("a view-conditioned tri-plane MLP (has_view_cond) is not supported")
    if _number(tri.get("posenc_period_len"), 0) > 0:
        raise ValueError("tri-plane positional encoding (posenc_period_len) is not supported")
    if _number(cfg.get("density_shift"), 0) != 0 or cfg.get("clamp_mode", "softplus") != "softplus":
        raise ValueError("only clamp_mode softplus with density_shift 0 is supported")
    fc = sorted(int(k.split(".")[1][2:]) for k in shapes if k.startswith("mapping.fc") and k.endswith(".weight"))
    z_dim, w_dim = shapes["mapping.fc0.weight"][1], shapes[f"mapping.fc{fc[-1]}.weight"][0]
    camera = cfg.get("camera_cond") is True
    embed = shapes.get("mapping.embed.weight")
    classes = embed[1] - 2 * camera if embed is not None else 0
    if embed is not None:
        z_dim -= embed[0]
    blocks = sorted(int(k.split(".")[2][1:]) for k in shapes
                    if k.startswith("synthesis.tri_plane_decoder.b") and k.endswith(".torgb.bias"))
    resolution = blocks[-1]
    planes = shapes[f"synthesis.tri_plane_decoder.b{resolution}.torgb.bias"][0]
    mlp = sorted(int(k.split(".")[3]) for k in shapes
                 if k.startswith("synthesis.tri_plane_mlp.model.") and k.endswith(".weight"))
    hidden = shapes[f"synthesis.tri_plane_mlp.model.{mlp[0]}.weight"][0]
    channel_max = max(shapes[f"synthesis.tri_plane_decoder.b{r}.conv1.bias"][0] for r in blocks)
    channel_base = shapes[f"synthesis.tri_plane_decoder.b{resolution}.conv1.bias"][0] * resolution
    dataset = cfg.get("dataset") if isinstance(cfg.get("dataset"), dict) else {}
    camera_cfg = dataset.get("camera") if isinstance(dataset.get("camera"), dict) else {}
    cube_scale = _number(dataset.get("cube_scale"), release.box_side / 2)
    white = dataset.get("white_back") if isinstance(dataset.get("white_back"), bool) else release.white_back
    steps = int(_number(cfg.get("num_ray_steps"), release.num_coarse))
    file_settings = {"fov_degrees": _number(camera_cfg.get("fov"), release.fov_degrees),
                     "near": _number(camera_cfg.get("ray_start"), release.near),
                     "far": _number(camera_cfg.get("ray_end"), release.far),
                     "radius": _number(camera_cfg.get("radius"), release.radius),
                     "num_coarse": steps, "num_fine": steps, "white_back": white}
    r = release.replace(**{**file_settings, **settings})
    return PipelineConfig(
        preset="epigraf", c_dim=25, img_resolution=r.img_resolution, neural_rendering_resolution=r.img_resolution,
        mapping=EpiGRAFMapping.Config(z_dim=z_dim, w_dim=w_dim, layers=len(fc), classes=classes,
                                      camera_conditioning=camera, class_mean_samples=256 if classes else 0),
        pose=DatasetAnglePoses.Config(radius=r.radius, fov_degrees=r.fov_degrees),
        points=StratifiedPointSampler.Config(near=r.near, far=r.far, num_coarse=r.num_coarse, num_fine=r.num_fine,
                                             perturb="midpoint_bins", importance="plain", box_side=2 * cube_scale,
                                             patch="epigraf", patch_size=64),
        embedder=TriplaneEmbedder.Config(resolution=resolution, channels=planes // 3, axes="epigraf",
                                         align_corners=True, divide_coordinates=True, channel_base=channel_base,
                                         channel_max=channel_max, conv_clamp=256),
        decoder=EpiGRAFMLPDecoder.Config(hidden=hidden, layers=len(mlp),
                                         out_features=shapes[f"synthesis.tri_plane_mlp.model.{mlp[-1]}.weight"][0] - 1),
        density=SoftplusDensity.Config(), integrator=LastDeltaIntegrator.Config(depth_sum=True),
        renderer=RenderingOptions(density_noise=_number(cfg.get("nerf_noise_std_init"), 0.0),
                                  density_noise_fade_kimg=_number(cfg.get("nerf_noise_kimg_growth"), 0.0),
                                  white_back=r.white_back, pixel_grid="corners", rays="camera_frame",
                                  random_at_eval=r.random_sampling),
    )


def _rename(name: str, prefixes: tuple[tuple[str, str], ...]) -> str:
    for old, new in prefixes:
        if name.startswith(old):
            return new + name[len(old):]
    return name
