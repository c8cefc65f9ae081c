"""The pose sampler of a generator: where the cameras of its training and evaluation fakes come from.

EG3D draws the labels of random training images; prior methods draw from their
``ops.pose_sampling`` prior; EpiGRAF takes the angles of random training labels and places its
own camera (radius, field of view) at them. Every sampler returns EG3D 25-float labels.
"""

from __future__ import annotations

import torch
from torch import nn

from models.pipeline_config import PoseSamplerConfig
from ops.camera import fov_to_focal
from ops.pose_sampling import angles_to_label, camera_angles, pose_prior, sample_poses


def pose_config(G: nn.Module) -> PoseSamplerConfig:
    """A generator's pose sampler: its config's, or dataset poses (EG3D, whose config has none)."""
    pose = getattr(getattr(G, "config", None), "pose", None)
    return pose if isinstance(pose, PoseSamplerConfig) else PoseSamplerConfig(kind="dataset")


class PoseSampler:
    """Draws [n, 25] camera labels for fakes.

    Args:
        config: the generator's pose sampler.
        labels: [L, 25] training labels (needed by the 'dataset' kinds; may be None for priors).
    """

    def __init__(self, config: PoseSamplerConfig, labels: torch.Tensor | None):
        self.config = config
        self.labels = labels
        if config.kind != "prior" and (labels is None or len(labels) == 0):
            raise ValueError(f"pose sampler {config.kind!r} needs the dataset's camera labels (dataset.json)")
        self.prior = pose_prior(config.prior) if config.kind == "prior" else None

    def __call__(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        if self.prior is not None:
            return sample_poses(self.prior, n, generator=generator).to(device)
        index = torch.randint(len(self.labels), (n,), generator=generator)
        labels = self.labels[index.to(self.labels.device)].to(device)
        if self.config.kind == "dataset":
            return labels
        return angles_to_label(camera_angles(labels), self.config.radius, fov_to_focal(self.config.fov_degrees),
                               self.config.pivot)

    def angles(self, labels: torch.Tensor) -> torch.Tensor:
        """(yaw, elevation) [N, 2] of labels around this sampler's pivot (pose-loss targets)."""
        return camera_angles(labels, self.config.pivot)
