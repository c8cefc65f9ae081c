"""GRAF (methods.md §3.6, CelebA).

Uniform poses (u in [0, 0.25], v in [0.329, 0.456], r U(9.5, 10.5), fov 10), 64 stratified samples on
7.5-12.5, PE(10) xyz / PE(4) view, 8x256 ReLU NeRF MLP with a skip at 4, 128-d shape and appearance
codes used directly, ReLU density with noise 1 annealed to 0 over 5000 iterations (batch 8: 40 kimg),
32 px patches, 64 px images. Carver: the shared Gaussian prior at r 1, fov 12
(``pose.prior='graf_carver'``, near/far 0.88-1.12), Adam (0, 0.99), R1 20, 128 px output.
"""

from models.decoders import NeRFMLPFieldDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import IdentityMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("graf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="graf", img_resolution=64, neural_rendering_resolution=64,
        mapping=IdentityMapping.Config(z_dim=256),
        pose=PriorPoses.Config(prior="graf", radius=10.0, fov_degrees=10.0),
        points=StratifiedPointSampler.Config(near=7.5, far=12.5, num_coarse=64, num_fine=0, perturb="self_uniform",
                                             box_side=5.0, patch="graf", patch_size=32),
        embedder=CoordinateEmbedder.Config(coordinate_scale=1.0, pe_frequencies=10),
        decoder=NeRFMLPFieldDecoder.Config(hidden=256, layers=8, skip=4, out_features=3, z_shape_dim=128, z_app_dim=128,
                                           dir_frequencies=4),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000 * 8 / 1000),
    )
