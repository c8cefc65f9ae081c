"""Generator and discriminator networks, and checkpoint I/O."""

from models.build import build_eg3d, build_generator, build_pipeline
from models.checkpoint import load_generator, save_generator
from models.discriminator import DiscriminatorConfig, DualDiscriminator, build_discriminator, discriminator_preset
from models.eg3d import EG3DConfig, EG3DRenderingConfig, eg3d_preset
from models.errors import CheckpointError, UnsafePickleError
from models.methods import pipeline_preset
from models.pipeline import PipelineGenerator
from models.pipeline_config import PipelineConfig

__all__ = [
    "CheckpointError",
    "DiscriminatorConfig",
    "DualDiscriminator",
    "EG3DConfig",
    "EG3DRenderingConfig",
    "PipelineConfig",
    "PipelineGenerator",
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
