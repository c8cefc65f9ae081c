"""Generator and discriminator networks, and checkpoint I/O."""

from models.checkpoint import build_generator, load_generator, save_generator
from models.discriminator import DiscriminatorConfig, DualDiscriminator, build_discriminator, discriminator_preset
from models.eg3d import EG3DConfig, EG3DRenderingConfig, TriPlaneGenerator, build_eg3d, eg3d_preset
from models.errors import CheckpointError, UnsafePickleError
from models.methods import pipeline_preset
from models.pipeline import PipelineGenerator, build_pipeline
from models.pipeline_config import PipelineConfig

__all__ = [
    "CheckpointError",
    "DiscriminatorConfig",
    "DualDiscriminator",
    "EG3DConfig",
    "EG3DRenderingConfig",
    "PipelineConfig",
    "PipelineGenerator",
    "TriPlaneGenerator",
    "UnsafePickleError",
    "build_discriminator",
    "build_generator",
    "build_pipeline",
    "build_eg3d",
    "discriminator_preset",
    "eg3d_preset",
    "load_generator",
    "pipeline_preset",
    "save_generator",
]
