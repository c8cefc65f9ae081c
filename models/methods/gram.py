"""GRAM (methods.md §3.3, FFHQ).

pi-GAN's pose prior, 64 unperturbed samples on 0.88-1.12 into a 3x128 manifold predictor, 23 levels
23 -> 8 plus the background plane at z = -0.12, GramRF 8x256 FiLM-SIREN with summed per-layer heads,
softplus density, constant delta 0.04, 256 px. Carver: ``levels_end`` defaults to 3, not the
official 8 (``--set generator.embedder.levels_end=3``).
"""

from models.decoders import GramSirenFieldDecoder
from models.embedders import ManifoldEmbedder
from models.mappings import FiLMMappingNetwork
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.volume_rendering import ConstantDeltaIntegrator, SoftplusDensity


@register_method("gram")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="gram", img_resolution=256, neural_rendering_resolution=256,
        mapping=FiLMMappingNetwork.Config(z_dim=256, layers=3, hidden=256),
        pose=PriorPoses.Config(prior="gram", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=64, num_fine=0, perturb="none",
                                             box_side=0.24),
        embedder=ManifoldEmbedder.Config(coordinate_scale=2 / 0.24, num_manifolds=24, levels_start=23.0,
                                         levels_end=8.0, hidden=128, layers=3),
        decoder=GramSirenFieldDecoder.Config(hidden=256, layers=8),
        density=SoftplusDensity.Config(), integrator=ConstantDeltaIntegrator.Config(delta=0.04),
    )
