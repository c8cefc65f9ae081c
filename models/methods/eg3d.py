"""EG3D's components as a pipeline config, for ablations (``--cfg eg3d --embedder volume``).

Plain ``--cfg eg3d`` trains the exact official-layout ``models.eg3d.TriPlaneGenerator``.
"""

import math

from models.decoders import OSGFieldDecoder
from models.embedders import TriplaneEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig
from models.point_sampling import StratifiedPointSampler
from models.poses import DatasetPoses
from models.upsamplers import EG3DSuperresolution
from models.volume_rendering import MidpointIntegrator, ShiftedSoftplusDensity


@register_method("eg3d", exact_generator=True)
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="eg3d", img_resolution=512, neural_rendering_resolution=64,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=2, camera_conditioning=True),
        pose=DatasetPoses.Config(radius=2.7, fov_degrees=2 * math.degrees(math.atan(0.5 / 4.2647)), pivot=(0.0, 0.0, 0.2)),
        points=StratifiedPointSampler.Config(near=2.25, far=3.3, num_coarse=48, num_fine=48, perturb="uniform",
                                             box_side=1.0),
        embedder=TriplaneEmbedder.Config(resolution=256, axes="official"),
        decoder=OSGFieldDecoder.Config(hidden=64, out_features=32),
        density=ShiftedSoftplusDensity.Config(), integrator=MidpointIntegrator.Config(),
        upsampler=EG3DSuperresolution.Config(),
    )
