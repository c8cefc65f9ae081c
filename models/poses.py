"""The pose sampler of a generator: where the cameras of its training and evaluation fakes come from.

EG3D draws the labels of random training images; prior methods draw from their
``ops.pose_sampling`` prior; EpiGRAF takes the angles of random training labels and places its
own camera (radius, field of view) at them. Every sampler returns EG3D 25-float labels. Each kind
is a registered class; its config also carries the camera the viewer starts at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.registry import ComponentConfig, Registry
from ops.camera import fov_to_focal
from ops.pose_sampling import POSE_PRIORS, angles_to_label, camera_angles, pose_prior, sample_poses

POSE_SAMPLERS: Registry = Registry("pose sampler")


@dataclass
class PoseConfig(ComponentConfig):
    """Fields every pose sampler has: the average camera (viewer default)."""

    radius: float = 1.0
    """Average camera distance from the pivot (viewer default; 'dataset_angles' radius)."""
    fov_degrees: float = 12.0
    """Full field of view of the generator's camera ('dataset_angles'; viewer hint)."""
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Point the cameras look at."""

    def __post_init__(self):
        self.pivot = tuple(float(v) for v in self.pivot)


class PoseSampler:
    """Draws [n, 25] camera labels for fakes.

    Args:
        config: the generator's pose sampler config.
        labels: [L, 25] training labels (needed where ``reads_labels``; may be None otherwise).
    """

    reads_labels: ClassVar[bool] = True
    """It draws from the dataset's camera labels."""
    returns_labels: ClassVar[bool] = False
    """It returns the dataset's labels unchanged (metrics may then take any dataset camera)."""

    def __init__(self, config: PoseConfig, labels: torch.Tensor | None):
        self.config = config
        self.labels = labels
        if self.reads_labels and (labels is None or len(labels) == 0):
            raise ValueError(f"pose sampler {self.kind!r} needs the dataset's camera labels (dataset.json)")

    def __call__(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        index = torch.randint(len(self.labels), (n,), generator=generator)
        return self.place(self.labels[index.to(self.labels.device)].to(device))

    def place(self, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def angles(self, labels: torch.Tensor) -> torch.Tensor:
        """(yaw, elevation) [N, 2] of labels around this sampler's pivot (pose-loss targets)."""
        return camera_angles(labels, self.config.pivot)


@POSE_SAMPLERS.register("prior")
class PriorPoses(PoseSampler):
    """A named prior of ``ops.pose_sampling.POSE_PRIORS`` (pi-GAN, GRAF, GIRAFFE, ...)."""

    reads_labels = False

    @dataclass
    class Config(PoseConfig):
        prior: str = "pi_gan"
        """Name in ``ops.pose_sampling.POSE_PRIORS``."""

        def __post_init__(self):
            super().__post_init__()
            if self.prior not in POSE_PRIORS:
                raise ValueError(f"pose.prior {self.prior!r} is not one of {', '.join(sorted(POSE_PRIORS))}")

    def __init__(self, config: Config, labels: torch.Tensor | None = None):
        super().__init__(config, labels)
        self.prior = pose_prior(config.prior)

    def __call__(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        return sample_poses(self.prior, n, generator=generator).to(device)


@POSE_SAMPLERS.register("dataset")
class DatasetPoses(PoseSampler):
    """The labels of random training images (EG3D)."""

    returns_labels = True

    @dataclass
    class Config(PoseConfig):
        pass


@POSE_SAMPLERS.register("dataset_angles")
class DatasetAnglePoses(PoseSampler):
    """The yaw/pitch of random training labels, re-placed at ``radius`` with this field of view
    (EpiGRAF's 'custom' distribution)."""

    @dataclass
    class Config(PoseConfig):
        pass

    def place(self, labels: torch.Tensor) -> torch.Tensor:
        return angles_to_label(camera_angles(labels), self.config.radius, fov_to_focal(self.config.fov_degrees),
                               self.config.pivot)


def pose_config(G: nn.Module) -> PoseConfig:
    """A generator's pose sampler config: its own, or dataset poses (EG3D, whose config has none)."""
    pose = getattr(getattr(G, "config", None), "pose", None)
    return pose if isinstance(pose, PoseConfig) else DatasetPoses.Config()


def pose_sampler(config: PoseConfig, labels: torch.Tensor | None) -> PoseSampler:
    """The sampler of a pose config."""
    return POSE_SAMPLERS.build(config, labels)
