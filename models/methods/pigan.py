"""pi-GAN (methods.md §3.5, CelebA curriculum).

Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12), 12+12 samples on 0.88-1.12 with +-half-spacing
jitter, raw coordinates x 2/0.24, 8x256 FiLM-SIREN, 3x256 FiLM mapping, ReLU density with noise
annealed over 5000 steps (here kimg = steps x batch 56 / 1000 = 280), last delta 1e10, 64 px, no
upsampler. Carver (pigan_ffhq64): batch 8, otherwise the same.
"""

from models.decoders import SirenDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import FiLMMappingNetwork
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("pigan")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="pigan", img_resolution=64, neural_rendering_resolution=64,
        mapping=FiLMMappingNetwork.Config(z_dim=256, layers=3, hidden=256),
        pose=PriorPoses.Config(prior="pi_gan", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=12, num_fine=12, perturb="self_uniform",
                                             box_side=0.24),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / 0.24),
        decoder=SirenDecoder.Config(hidden=256, layers=8),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000 * 56 / 1000),
    )
