"""GIRAFFE (methods.md §3.7, FFHQ 256).

Camera at r 2.732 with v in [0.4167, 0.5], object yaw folded into the camera yaw, fov 10, 64 samples
on 0.5-6, one object (box scale 0.21) and a background, 8x128 object MLP (skip 4, 256-d codes) and
4x64 background MLP (128-d codes), PE(10) xyz / PE(4) view, ReLU, sum of densities and
density-weighted features -> 256 ch at 16 px, neural renderer 16 -> 256. The object's box translation
is 0 and its rotation is folded into the camera yaw (one object; GIRAFFE's per-object affine
sampling is not modelled). Carver: Adam (0, 0.99).
"""

from models.decoders import NeRFMLPFieldDecoder
from models.embedders import CompositionEmbedder
from models.mappings import IdentityMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.upsamplers import GiraffeUpsampler
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("giraffe")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="giraffe", img_resolution=256, neural_rendering_resolution=16,
        mapping=IdentityMapping.Config(z_dim=256 + 256 + 128 + 128),
        pose=PriorPoses.Config(prior="giraffe", radius=2.732, fov_degrees=10.0),
        points=StratifiedPointSampler.Config(near=0.5, far=6.0, num_coarse=64, num_fine=0, perturb="self_uniform",
                                             box_side=0.5),
        embedder=CompositionEmbedder.Config(coordinate_scale=1.0, pe_frequencies=10, num_objects=1, object_scale=0.21,
                                            background=True, background_hidden=64, background_layers=4,
                                            background_z_dim=128),
        decoder=NeRFMLPFieldDecoder.Config(hidden=128, layers=8, skip=4, out_features=256, z_shape_dim=256,
                                           z_app_dim=256, dir_frequencies=4),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=GiraffeUpsampler.Config(min_channels=32),
    )
