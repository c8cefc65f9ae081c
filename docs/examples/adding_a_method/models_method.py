"""Generator side of an example tenth method, 'voxgram': pi-GAN's FiLM-SIREN on VolumeGAN's
feature volume, rendered with GRAM's softplus density. Copy to ``models/methods/voxgram.py``.

Every component exists already, so the method is this one file (plus its training recipe).
"""

from models.decoders import SirenDecoder
from models.embedders import VolumeEmbedder
from models.mappings import FiLMMappingNetwork
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.volume_rendering import LastDeltaIntegrator, SoftplusDensity


@register_method("voxgram")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="voxgram", img_resolution=64, neural_rendering_resolution=64,
        mapping=FiLMMappingNetwork.Config(z_dim=256, layers=3, hidden=256),
        pose=PriorPoses.Config(prior="pi_gan", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=12, num_fine=12, box_side=0.4),
        embedder=VolumeEmbedder.Config(pe_frequencies=4),
        decoder=SirenDecoder.Config(hidden=128, layers=6),
        density=SoftplusDensity.Config(), integrator=LastDeltaIntegrator.Config(),
    )
