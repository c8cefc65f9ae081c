"""EG3D-format image datasets: validation, reading, sampling and writing.

A dataset is a folder or a zip holding images (PNG or JPEG, in any subfolders) and, at its root,
``dataset.json`` = ``{"labels": [["relative/path.png", [25 floats]], ...]}``. The 25 floats are an
EG3D camera label (`ops.camera`): the 4x4 cam2world (OpenCV axes) row-major, then the 3x3
intrinsics normalised by image size, row-major. Other files (e.g. the ``geometry/*.npz`` ground
truth of `training.synthetic` zips) are not images and are ignored; hidden files and
``__MACOSX/`` (archive-tool metadata) are ignored too.

Opening a dataset checks everything that is cheap to check - every label, and every image's header
(size and mode, read without decoding the pixels) - and raises `DatasetError` naming the file at
fault. Nothing is skipped silently: an image without a label, a label without an image, or an
image in a format we cannot train on is an error, not a missing sample.

Pieces, so that the dataset tool (`training.dataset_tool`) applies the same checks:

* `DatasetSource`: read access to the files of a folder or zip (fork-safe, picklable);
* `list_images`, `read_labels`, `read_image_headers`, `check_image_sizes`, `decode_image`;
* `dataset_focal`: the median focal length of the labels;
* `ImageLabelDataset`: the torch dataset built from them;
* `InfiniteSampler`: an endless, resumable, rank-sharded stream of indices;
* `write_dataset_zip`: writes an EG3D zip atomically (used by the tool and the synthetic data).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from models.checkpoint import atomic_output
from ops.camera import LABEL_DIM

DATASET_JSON = "dataset.json"
"""Name of the label file at the dataset root."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
"""Files with these extensions (any case) are training images."""

UNSUPPORTED_IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""Image files we refuse rather than ignore: EG3D's loader would train on them."""

IMAGE_MODES = ("RGB", "L")
"""PIL modes we accept; grayscale (L) is repeated into three channels."""

_READABLE_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})

# Everything PIL, zlib and zipfile raise for a damaged or truncated file.
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, zlib.error, zipfile.BadZipFile,
                  Image.DecompressionBombError)


class DatasetError(ValueError):
    """A dataset cannot be used as it is.

    The message is one line, ``<path>: <problem>`` or ``<path>:<member>: <problem>`` when one file
    inside the dataset is at fault (e.g. ``data.zip:img00000012.png: cannot decode image (...)``).
    """

    def __init__(self, path: str | os.PathLike, problem: str | None = None, member: str | None = None):
        self.path = os.fspath(path)
        self.member = member
        self.problem = problem
        if problem is None:
            # A single preformatted message: how DataLoader re-raises an error from a worker.
            super().__init__(self.path)
            return
        where = f"{self.path}:{member}" if member else self.path
        super().__init__(f"{where}: {' '.join(problem.split())}")

    def __reduce__(self) -> tuple[type, tuple[str, str | None, str | None]]:
        return (type(self), (self.path, self.problem, self.member))


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


class DatasetSource:
    """Read access to the files of a dataset folder or zip.

    A zip is opened lazily in each process: a worker forked from a process that already had it
    open must not share that file offset, so the handle is tied to the pid that opened it, and
    pickling drops it (DataLoader workers started by spawn or forkserver reopen it).

    Raises:
        DatasetError: if ``path`` is missing, is neither a folder nor a zip, or is a zip that is
            damaged, encrypted or compressed with a method we cannot read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if self.path.is_dir():
            self.is_zip = False
            self.files = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        elif self.path.is_file():
            self.is_zip = True
            self.files = sorted(self._zip_names())
        elif self.path.exists():
            raise DatasetError(self.path, "not a folder or a zip file")
        else:
            raise DatasetError(self.path, "no such file or folder")
        self.files = [name for name in self.files if not _hidden(name)]

    def _zip_names(self) -> list[str]:
        try:
            infos = self._zipfile().infolist()
        except (OSError, zipfile.BadZipFile) as e:
            raise DatasetError(self.path, f"not a folder or a readable zip file ({e})") from e
        names: list[str] = []
        seen: set[str] = set()
        for info in infos:
            if info.is_dir():
                continue
            if info.filename in seen:
                raise DatasetError(self.path, "more than one zip member has this name", info.filename)
            if info.flag_bits & 0x1:
                raise DatasetError(self.path, "encrypted zip member; re-create the zip without a password", info.filename)
            if info.compress_type not in _READABLE_ZIP_METHODS:
                raise DatasetError(self.path, f"compressed with zip method {info.compress_type}, which cannot be "
                                   "read; re-create the zip uncompressed (stored)", info.filename)
            names.append(info.filename)
            seen.add(info.filename)
        return names

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def open(self, name: str) -> IO[bytes]:
        """A binary file object for member ``name`` (a relative path with ``/`` separators)."""
        if self.is_zip:
            return self._zipfile().open(name)
        return open(self.path / name, "rb")

    def read(self, name: str) -> bytes:
        """All bytes of member ``name``."""
        with self.open(name) as f:
            return f.read()

    def close(self) -> None:
        """Close the zip if this process opened it (it reopens on the next read)."""
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None
        self._zip_pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_zip_pid"] = None
        return state


def list_images(source: DatasetSource) -> list[str]:
    """Sorted names of the training images in ``source``.

    Raises:
        DatasetError: if there are none, or a file is an image in a format we do not read.
    """
    images = []
    for name in source.files:
        extension = os.path.splitext(name)[1].lower()
        if extension in IMAGE_EXTENSIONS:
            images.append(name)
        elif extension in UNSUPPORTED_IMAGE_EXTENSIONS:
            raise DatasetError(source.path, f"{extension} images are not supported; convert to PNG or JPEG", name)
    if not images:
        raise DatasetError(source.path, "no PNG or JPEG images found")
    return images


def parse_label(values: object) -> np.ndarray:
    """Check one camera label: exactly 25 finite numbers (also finite as float32).

    Returns:
        [25] float64 (the values as written, so that rewriting a dataset keeps them exactly).

    Raises:
        ValueError: saying what is wrong (callers add the file name).
    """
    if not isinstance(values, (list, tuple, np.ndarray, torch.Tensor)):
        raise ValueError(f"label must be a list of {LABEL_DIM} numbers, got {type(values).__name__}")
    values = values.tolist() if isinstance(values, (np.ndarray, torch.Tensor)) else values
    if len(values) != LABEL_DIM:
        raise ValueError(f"label must have {LABEL_DIM} numbers, got {len(values)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"label must hold only numbers, got {values!r}")
    label = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        finite = np.isfinite(label.astype(np.float32))
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(f"label value {bad} ({float(label[bad])}) is not finite as float32")
    return label


def read_labels(source: DatasetSource, image_names: Sequence[str]) -> np.ndarray:
    """Camera labels of ``image_names`` from ``dataset.json``, in that order.

    Returns:
        [N, 25] float64.

    Raises:
        DatasetError: naming ``dataset.json`` or the image when the file is missing or malformed,
            a label is not 25 finite numbers, an image has no label, a label names a file that is
            not one of the images, or two labels name the same image.
    """
    path = source.path
    if DATASET_JSON not in source.files:
        raise DatasetError(path, f"no {DATASET_JSON} with camera labels at the root")
    try:
        meta = json.loads(source.read(DATASET_JSON))
    except (ValueError, OSError, zipfile.BadZipFile) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(path, f"cannot read JSON ({e})", DATASET_JSON) from e
    entries = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(path, 'must be an object with a "labels" list of ["file name", [25 numbers]] entries',
                           DATASET_JSON)
    images = set(image_names)
    by_name: dict[str, np.ndarray] = {}
    for i, entry in enumerate(entries):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], list)):
            raise DatasetError(path, f'labels[{i}] must be ["file name", [25 numbers]], got {entry!r:.80}',
                               DATASET_JSON)
        name = entry[0].replace("\\", "/")  # EG3D normalises Windows separators the same way
        if name in by_name:
            raise DatasetError(path, f"labels[{i}]: a second label for {name}", DATASET_JSON)
        if name not in images:
            what = "is not a PNG or JPEG image" if name in source.files else "does not exist"
            raise DatasetError(path, f"labels[{i}] names {name}, which {what}", DATASET_JSON)
        try:
            by_name[name] = parse_label(entry[1])
        except ValueError as e:
            raise DatasetError(path, f"labels[{i}] ({name}): {e}", DATASET_JSON) from e
    unlabelled = [name for name in image_names if name not in by_name]
    if unlabelled:
        more = f" (and {len(unlabelled) - 1} more images)" if len(unlabelled) > 1 else ""
        raise DatasetError(path, f"no label in {DATASET_JSON}{more}", unlabelled[0])
    return np.stack([by_name[name] for name in image_names])


def dataset_focal(labels: np.ndarray) -> float:
    """Median normalised focal length (fx) of a dataset's cameras [L, 25] (sample grids, view metrics)."""
    return float(np.median(np.asarray(labels)[:, 16]))


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels."""

    width: int
    height: int
    mode: str


def read_image_headers(source: DatasetSource, image_names: Sequence[str]) -> list[ImageHeader]:
    """Sizes and modes of ``image_names`` from their headers (fast: no pixel decoding).

    Raises:
        DatasetError: naming the image if it cannot be identified or its mode is not RGB or L.
    """
    headers = []
    for name in image_names:
        try:
            with source.open(name) as f, Image.open(f) as img:
                header = ImageHeader(img.width, img.height, img.mode)
        except _DECODE_ERRORS as e:
            raise DatasetError(source.path, f"cannot read image ({e})", name) from e
        if header.mode not in IMAGE_MODES:
            raise DatasetError(source.path, _mode_problem(header.mode), name)
        headers.append(header)
    return headers


def _mode_problem(mode: str) -> str:
    hint = "flatten the alpha channel onto a background and save as RGB" if "A" in mode else "convert it to RGB"
    return f"image mode {mode} is not supported (need RGB or grayscale L); {hint}"


def check_image_sizes(path: str | os.PathLike, image_names: Sequence[str], headers: Sequence[ImageHeader],
                      resolution: int | None = None, uniform: bool = True) -> int:
    """Check that images are square, of one size (when ``uniform``) and ``resolution`` if given.

    Returns:
        The common side length (that of the first image when not ``uniform``).

    Raises:
        DatasetError: naming the first image that breaks a rule.
    """
    first = headers[0]
    for name, header in zip(image_names, headers):
        size = f"{header.width}x{header.height}"
        if header.width != header.height:
            raise DatasetError(path, f"image is {size}; images must be square", name)
        if resolution is not None and header.width != resolution:
            raise DatasetError(path, f"image is {size}, expected {resolution}x{resolution}", name)
        if uniform and header.width != first.width:
            raise DatasetError(path, f"image is {size} but {image_names[0]} is {first.width}x{first.height}; "
                               "all images must have one size", name)
    return first.width


def decode_image(source: DatasetSource, name: str) -> np.ndarray:
    """Decode image ``name`` to [H, W, 3] uint8 (grayscale repeated into RGB).

    Raises:
        DatasetError: naming the image if it is damaged, truncated or not RGB/L.
    """
    try:
        with Image.open(io.BytesIO(source.read(name))) as img:
            mode = img.mode
            pixels = np.array(img.convert("RGB")) if mode in IMAGE_MODES else None
    except _DECODE_ERRORS as e:
        raise DatasetError(source.path, f"cannot decode image ({e})", name) from e
    if pixels is None:
        raise DatasetError(source.path, _mode_problem(mode), name)
    return pixels


class ImageLabelDataset(torch.utils.data.Dataset):
    """Images and camera labels of an EG3D-format folder or zip.

    Everything cheap is validated on construction (see the module docstring); pixels are decoded
    in ``__getitem__``. Works with ``DataLoader(num_workers > 0)`` (see `DatasetSource`).

    Args:
        path: dataset folder or zip.
        resolution: required image size; None accepts the dataset's own (still one square size).
        max_images: use only the first ``max_images`` images in sorted name order (all are validated).
        use_labels: read ``dataset.json``; when False it need not exist and labels are [0] tensors.

    Attributes:
        path, name (file or folder stem), resolution R, num_channels (3), label_dim (25 or 0),
        image_names (sorted relative paths), has_labels.

    Raises:
        DatasetError: naming the dataset and, where one file is at fault, that file.
    """

    num_channels = 3

    def __init__(self, path: str | os.PathLike, resolution: int | None = None, max_images: int | None = None,
                 use_labels: bool = True):
        if max_images is not None and max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self._source = DatasetSource(path)
        self.path = self._source.path
        self.name = self.path.stem
        names = list_images(self._source)
        labels = read_labels(self._source, names) if use_labels else np.zeros((len(names), 0))
        headers = read_image_headers(self._source, names)
        self.resolution = check_image_sizes(self.path, names, headers, resolution)
        count = len(names) if max_images is None else min(max_images, len(names))
        self.image_names: list[str] = names[:count]
        self._labels = np.ascontiguousarray(labels[:count], dtype=np.float32)
        self.has_labels = use_labels
        self.label_dim = LABEL_DIM if use_labels else 0

    def __len__(self) -> int:
        return len(self.image_names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image uint8 [3, R, R], label float32 [label_dim]) of sample ``index``."""
        name = self.image_names[index]
        pixels = decode_image(self._source, name)
        if pixels.shape != (self.resolution, self.resolution, 3):
            raise DatasetError(self.path, f"image is now {pixels.shape[1]}x{pixels.shape[0]}, was "
                               f"{self.resolution}x{self.resolution} when the dataset was opened", name)
        image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        return image, torch.from_numpy(self._labels[index].copy())

    def get_label(self, index: int) -> np.ndarray:
        """[label_dim] float32 label of sample ``index``."""
        return self._labels[index].copy()

    @property
    def labels(self) -> np.ndarray:
        """[N, label_dim] float32 labels of all samples (e.g. to sample training poses from)."""
        return self._labels

    def close(self) -> None:
        """Release the open zip (it is reopened on the next read)."""
        self._source.close()


class InfiniteSampler(torch.utils.data.Sampler[int]):
    """An endless, resumable stream of dataset indices for one of ``num_replicas`` ranks.

    The global stream is a concatenation of permutations of ``range(size)``; permutation ``e`` is
    ``numpy.random.RandomState(seed + e).permutation(size)``. Rank ``r`` takes the global
    positions ``start + r, start + r + num_replicas, ...``, so within a permutation the ranks see
    disjoint indices. ``start`` is the number of samples all ranks consumed before, so a run that
    resumes with ``start = position_after(k, batch_per_rank)`` continues the exact same stream.
    """

    def __init__(self, size: int, rank: int = 0, num_replicas: int = 1, seed: int = 0, start: int = 0):
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.size = size
        self.rank = rank
        self.num_replicas = num_replicas
        self.seed = seed
        self.start = start

    def permutation(self, epoch: int) -> np.ndarray:
        """[size] int64: permutation ``epoch`` of the global stream."""
        return np.random.RandomState((self.seed + epoch) % 2**32).permutation(self.size)

    def position_after(self, batches: int, batch_per_rank: int) -> int:
        """Global position after this run consumed ``batches`` batches of ``batch_per_rank`` per rank.

        ``start + batches * batch_per_rank * num_replicas``: pass it as ``start`` to resume.
        """
        return self.start + batches * batch_per_rank * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        position = self.start + self.rank
        epoch, order = -1, np.empty(0, dtype=np.int64)
        while True:
            current, offset = divmod(position, self.size)
            if current != epoch:
                epoch, order = current, self.permutation(current)
            yield int(order[offset])
            position += self.num_replicas


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of an [H, W, 3] (or [H, W]) uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


@dataclass
class DatasetZipWriter:
    """Adds members to an EG3D zip being written by `write_dataset_zip`."""

    archive: zipfile.ZipFile
    png_compress_level: int = 6
    labels: list[list[Any]] = field(default_factory=list)
    """``dataset.json`` label entries, in the order the images were added."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra top-level ``dataset.json`` keys, written after ``labels``."""
    _written: set[str] = field(default_factory=set, repr=False)

    def add_image(self, name: str, image: np.ndarray, label: object) -> None:
        """Store [H, W, 3] uint8 ``image`` as PNG member ``name`` with its 25-float camera ``label``.

        Raises:
            ValueError: if the name is not a new ``.png`` or the label is not 25 finite numbers.
        """
        if not name.lower().endswith(".png"):
            raise ValueError(f"image member must be a .png, got {name!r}")
        values = parse_label(label)
        self.add_file(name, encode_png(image, self.png_compress_level))
        self.labels.append([name, [float(v) for v in values]])

    def add_file(self, name: str, data: bytes) -> None:
        """Store an extra member that is not a training image (e.g. ground truth).

        Raises:
            ValueError: if a member of that name was already written (zipfile would only warn).
        """
        if name == DATASET_JSON or name in self._written:
            raise ValueError(f"zip member {name!r} written twice")
        self.archive.writestr(name, data)
        self._written.add(name)


@contextlib.contextmanager
def write_dataset_zip(path: str | os.PathLike, png_compress_level: int = 6) -> Iterator[DatasetZipWriter]:
    """Write an uncompressed (stored) EG3D zip atomically; ``dataset.json`` is added on a clean exit.

    On an error inside the block, ``path`` is left as it was (`models.checkpoint.atomic_output`).

    Raises:
        CheckpointError: naming ``path`` if it cannot be written.
    """
    with atomic_output(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        writer = DatasetZipWriter(zf, png_compress_level)
        yield writer
        zf.writestr(DATASET_JSON, json.dumps({"labels": writer.labels, **writer.metadata}))

