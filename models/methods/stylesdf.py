"""StyleSDF (methods.md §3.4).

Gaussian poses (azimuth 0.3, elevation 0.15; Carver 0.155), r 1, 12 degree fov, 24 samples on
1 +- 0.12 with one random offset per ray, coordinates x 2/(far - near), 8x256 FiLM-SIREN SDF decoder
with a 256-ch feature, sigma = sigmoid(-d/a)/a with learnable a (init 0.1), 64 px volume rendering;
stage 2 adds the StyleGAN2 decoder to 1024 px with the renderer frozen. Simplification: one 3-layer
256-d mapping feeds both stages (StyleSDF's 2D decoder has its own 5-layer 512-d mapping). Carver:
elevation std 0.155 (``pose.prior='stylesdf_carver'``) and R1 0.2 for the 1024 px pipeline.
"""

from models.decoders import SDFSirenFieldDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.upsamplers import StyleGANUpsamplerComponent
from models.volume_rendering import LastDeltaIntegrator, SDFSigmoidDensity


@register_method("stylesdf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="stylesdf", img_resolution=1024, neural_rendering_resolution=64,
        mapping=StyleGAN2Mapping.Config(z_dim=256, w_dim=256, layers=3),
        pose=PriorPoses.Config(prior="stylesdf", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=24, num_fine=0, perturb="offset",
                                             box_side=0.24),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / 0.24),
        decoder=SDFSirenFieldDecoder.Config(hidden=256, layers=8, feature_dim=256),
        density=SDFSigmoidDensity.Config(alpha_init=0.1), integrator=LastDeltaIntegrator.Config(),
        upsampler=StyleGANUpsamplerComponent.Config(channel_base=32768 * 2, channel_max=512),
    )
