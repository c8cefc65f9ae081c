"""EpiGRAF (methods.md §3.9).

Dataset camera angles re-placed at r 1, fov 12, 48+48 samples on 0.88-1.12, a 512^2 x 3 x 32
tri-plane (corrected axes, align_corners, coordinates / 0.2) from StyleGAN2 synthesis, FC 32 -> 64
(LReLU) -> 3 + 1, softplus density with noise 1 annealed over 5000 kimg, 64 px patches of the 512 px
image, 2-layer mapping, no upsampler. Carver: R1 0.1, batch 8 per GPU, pose_dim 3.
"""

from models.decoders import OSGFieldDecoder
from models.embedders import TriplaneEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import DatasetAnglePoses
from models.volume_rendering import MidpointIntegrator, SoftplusDensity


@register_method("epigraf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="epigraf", img_resolution=512, neural_rendering_resolution=512,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=2),
        pose=DatasetAnglePoses.Config(radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=48, num_fine=48, perturb="uniform",
                                             box_side=0.4, patch="epigraf", patch_size=64),
        embedder=TriplaneEmbedder.Config(resolution=512, channels=32, axes="corrected", align_corners=True),
        decoder=OSGFieldDecoder.Config(hidden=64, out_features=3, activation="lrelu"),
        density=SoftplusDensity.Config(), integrator=MidpointIntegrator.Config(),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000.0),
    )
