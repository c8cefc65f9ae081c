"""StyleNeRF (methods.md §3.8).

Gaussian poses (u 0.3, v 0.155, r 1, fov 12), 14+14 samples on 0.88-1.12, PE(10) coordinates, 8
modulated FC layers of 128 (LReLU) with a 256-ch feature head, ReLU density, 256-ch map at 32 px,
StyleGAN2 blocks with 'nn_cat' upsampling to 256, 8-layer mapping. Left out: the 4-sample NeRF++
background (the NeRF-path regulariser is in the loss). Carver: batch 8 per GPU, R1 0.5, path length 2.
"""

from models.decoders import ModulatedMLPFieldDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.upsamplers import StyleGANUpsamplerComponent
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("stylenerf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="stylenerf", img_resolution=256, neural_rendering_resolution=32,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=8),
        pose=PriorPoses.Config(prior="stylenerf", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=14, num_fine=14, perturb="self_uniform",
                                             box_side=0.24),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / 0.24, pe_frequencies=10),
        decoder=ModulatedMLPFieldDecoder.Config(hidden=128, layers=8, out_features=256),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=StyleGANUpsamplerComponent.Config(upsample_mode="nn_cat"),
    )
