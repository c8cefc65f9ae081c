"""The registry of discriminator kinds and the facts every kind declares about itself.

Each kind is one class registered in :data:`DISCRIMINATORS` (``models.registry``) with a nested
``Config`` holding only its fields: EG3D's dual discriminator in ``models.discriminator`` and the
pipeline methods' kinds in ``models.pipeline_discriminators``. The registry lives in this small
module because both of those register here and the pipeline module imports EG3D's building
blocks; import it from ``models.pipeline_discriminators``, which registers every kind.

Code asks a config's class for facts (``DISCRIMINATORS.cls_of(config).pose_head``) and never
compares kind names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from models.registry import ComponentConfig, Registry

DISCRIMINATORS: Registry = Registry("discriminator")
"""Discriminator classes by kind name."""


class DiscriminatorFacts:
    """Facts about a discriminator kind, as class attributes (a mixin beside ``nn.Module``: it adds
    no modules or parameters). Defaults describe a plain single-image discriminator."""

    dual: ClassVar[bool] = False
    """EG3D's dual call, ``D({'image', 'image_raw'}, c) -> logits``, trained by EG3D's loss; False:
    the pipeline call ``D(image, c, patch, alpha) -> DiscriminatorOutput`` of the pipeline loss."""
    supports_progressive: ClassVar[bool] = False
    """Takes power-of-two inputs from ``min_resolution`` up with ProGAN fade-in, when its config's
    ``progressive`` is on (or always, see :attr:`always_progressive`)."""
    always_progressive: ClassVar[bool] = False
    """Always progressive: its config has ``min_resolution`` but no ``progressive`` switch."""
    label_conditioned: ClassVar[bool] = False
    """Reads a label c of its config's ``c_dim`` (projection conditioning; ``c_dim = 0``: unconditional)."""
    pose_head: ClassVar[bool] = False
    """Predicts the pose and latent code (its config's ``pose_dim``, ``latent_dim``; 0: no head)."""
    reads_patch: ClassVar[bool] = False
    """Reads the (scale, offset) of patch-wise training (its config's ``patch_*`` fields)."""

    @classmethod
    def is_progressive(cls, config: Any) -> bool:
        """Whether the discriminator built from ``config`` accepts lower-resolution inputs."""
        return cls.always_progressive or (cls.supports_progressive and bool(config.progressive))

    @classmethod
    def has_pose_head(cls, config: Any) -> bool:
        """Whether the discriminator built from ``config`` outputs a pose."""
        return cls.pose_head and config.pose_dim > 0

    @staticmethod
    def tiny(config: ComponentConfig) -> ComponentConfig:
        """The CPU-sized config of the ``-tiny`` presets (same kind, narrow layers)."""
        return config
