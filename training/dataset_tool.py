"""Turn a folder of images + ``dataset.json`` into an EG3D training zip (``train.py dataset folder``).

The source goes through the same checks as `training.dataset.ImageLabelDataset`, so a zip this
tool writes opens without surprises. Images keep their relative names with a ``.png`` extension,
are stored uncompressed in the zip (PNG is already compressed) and may be resized to a square
resolution; ``mirror`` adds a horizontally flipped copy of each image with the mirrored camera.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ops.camera import mirror_label
from training.dataset import (
    DatasetError,
    DatasetSource,
    check_image_sizes,
    decode_image,
    list_images,
    read_image_headers,
    read_labels,
    write_dataset_zip,
)

MIRROR_SUFFIX = "_mirror"
"""Appended to an image's stem for its mirrored copy (``a/b.png`` -> ``a/b_mirror.png``)."""


@dataclass(frozen=True)
class FolderDatasetSummary:
    """What `write_folder_dataset` wrote."""

    count: int
    """Images in the zip, mirrored copies included."""
    resolution: int
    """Side length of every image."""
    mirrored: bool
    """Whether each source image also has a mirrored copy."""


def output_name(name: str) -> str:
    """Member name in the output zip: the source's relative name with a ``.png`` extension."""
    return os.path.splitext(name)[0] + ".png"


def mirrored_name(name: str) -> str:
    """Member name of the mirrored copy of output image ``name`` (``<stem>_mirror.png``)."""
    return os.path.splitext(name)[0] + MIRROR_SUFFIX + ".png"


def _output_names(source: DatasetSource, image_names: list[str], mirror: bool) -> list[list[str]]:
    """Per source image, its output names (one, or two with the mirrored copy); rejects collisions."""
    outputs = [[output_name(n)] + ([mirrored_name(output_name(n))] if mirror else []) for n in image_names]
    written_by: dict[str, str] = {}
    for source_name, names in zip(image_names, outputs):
        for name in names:
            if name in written_by:
                raise DatasetError(source.path, f"{written_by[name]} and {source_name} would both be written as "
                                   f"{name}; rename one of them", source_name)
            written_by[name] = source_name
    return outputs


def write_folder_dataset(source_path: str | os.PathLike, out_path: str | os.PathLike, resolution: int | None = None,
                         mirror: bool = False) -> FolderDatasetSummary:
    """Write the EG3D zip ``out_path`` from the images and ``dataset.json`` at ``source_path``.

    Args:
        source_path: a dataset folder (or zip) in EG3D layout.
        out_path: the zip to write; replaced atomically if it exists.
        resolution: resize every (square) image to this size with Lanczos; None keeps the size,
            which must then be the same for all images.
        mirror: also write ``<stem>_mirror.png``, flipped left-right, with `ops.camera.mirror_label`.

    Raises:
        DatasetError: naming the file at fault when the source is not a valid dataset, or if
            ``out_path`` is the source itself.
        CheckpointError: if ``out_path`` cannot be written.
        ValueError: if ``resolution`` < 1.
    """
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    source = DatasetSource(source_path)
    if Path(out_path).resolve() == source.path.resolve():
        raise DatasetError(out_path, "is the source dataset itself; write the output to another file")
    try:
        names = list_images(source)
        labels = read_labels(source, names)
        headers = read_image_headers(source, names)
        # Resizing makes any square size acceptable; otherwise the zip must hold one size.
        common = check_image_sizes(source.path, names, headers, uniform=resolution is None)
        out_resolution = common if resolution is None else resolution
        outputs = _output_names(source, names, mirror)
        with write_dataset_zip(out_path) as writer:
            for name, label, header, out_names in zip(names, labels, headers, outputs):
                pixels = decode_image(source, name)
                if header.width != out_resolution:
                    resized = Image.fromarray(pixels).resize((out_resolution, out_resolution), Image.Resampling.LANCZOS)
                    pixels = np.asarray(resized)
                writer.add_image(out_names[0], pixels, label)
                if mirror:
                    writer.add_image(out_names[1], np.ascontiguousarray(pixels[:, ::-1]),
                                     mirror_label(torch.from_numpy(label)))
    finally:
        source.close()
    return FolderDatasetSummary(count=sum(len(n) for n in outputs), resolution=out_resolution, mirrored=mirror)
