"""Generator networks and checkpoint I/O."""

from models.checkpoint import load_generator, save_generator
from models.eg3d import EG3DConfig, EG3DRenderingConfig, TriPlaneGenerator, build_eg3d, eg3d_preset
from models.errors import CheckpointError, UnsafePickleError

__all__ = [
    "CheckpointError",
    "EG3DConfig",
    "EG3DRenderingConfig",
    "TriPlaneGenerator",
    "UnsafePickleError",
    "build_eg3d",
    "eg3d_preset",
    "load_generator",
    "save_generator",
]
