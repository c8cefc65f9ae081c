"""VolumeGAN (methods.md §3.2).

Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12), 12+12 samples on 0.8-1.2, a 32^3 x 32 feature
volume over the FFHQ bounds concatenated with PE(10) of xyz, 4 modulated 1x1 layers of 256 with a
512-ch feature head, ReLU density, 512-ch feature map at 32 px, StyleGAN2 skip synthesis 32 -> 256,
8-layer mapping. Carver uses the same values.
"""

from models.decoders import ModulatedMLPFieldDecoder
from models.embedders import VolumeEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.upsamplers import StyleGANUpsamplerComponent
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("volumegan")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="volumegan", img_resolution=256, neural_rendering_resolution=32,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=8),
        pose=PriorPoses.Config(prior="volumegan", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.8, far=1.2, num_coarse=12, num_fine=12, perturb="self_uniform",
                                             box_side=0.4),
        embedder=VolumeEmbedder.Config(coordinate_scale=1.0, pe_frequencies=10),
        decoder=ModulatedMLPFieldDecoder.Config(hidden=256, layers=4, out_features=512),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=StyleGANUpsamplerComponent.Config(),
    )
