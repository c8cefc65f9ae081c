"""Marching-cubes meshes of a generator's current identity, and mesh / density-volume export.

Extraction is method-agnostic: it works from a *field function* (world points -> density or SDF)
sampled on a regular grid, so any 3D-aware generator only needs to say which field that is
(``G.mesh_fields``). The same code serves the app (mesh view, mesh export) and batch tools.

Conventions:

* Grid: ``sample_grid`` evaluates the field at ``linspace(lo, hi, res)`` along every axis (the box
  corners are sample points) and stores ``grid[i, j, k] = f(x_i, y_j, z_k)``, i.e. index order
  [x, y, z]. The spacing is ``(hi - lo) / (res - 1)``.
* Solid: ``inside="above"`` means the solid is where ``value > level`` (densities such as EG3D's raw
  sigma, level 10); ``inside="below"`` means ``value < level`` (SDFs, level 0).
* Faces are counter-clockwise seen from outside, so right-hand-rule normals point outward and the
  signed volume of a closed mesh is positive.
* Meshes are always closed at the box: one layer of "outside" is padded around the grid before
  marching, and cap vertices are snapped back onto the box faces.

The marching-cubes backend is PyMCubes (``mcubes``); it returns vertices in index space, with the
first array axis as x, and orients faces outward when the solid has the larger values.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    import trimesh

FieldFn = Callable[[torch.Tensor], torch.Tensor]
"""World points [M, 3] -> field values [M] (density or SDF)."""
ColorFn = Callable[[torch.Tensor], torch.Tensor]
"""World points [M, 3] -> rgb [M, 3] in [0, 1]."""
ProgressFn = Callable[[int, int], None]
"""progress(done, total), called after every evaluated chunk."""

Inside = Literal["above", "below"]
Bounds = tuple[float, float] | Sequence[float] | np.ndarray
"""(lo, hi) for every axis, or a [2, 3] per-axis min/max array."""

MESH_FORMATS = ("ply", "obj", "glb", "mrc")
"""File formats the app offers: meshes (ply, obj, glb) and the density volume (mrc)."""
_TRIMESH_FORMATS = ("ply", "obj", "glb")

EG3D_ISO_LEVEL = 10.0
"""EG3D's default iso level for raw sigma (``gen_samples.py --shapes``)."""


class MeshExportError(OSError):
    """A mesh or volume file could not be written; the message is ``<path>: <problem>``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --- mesh container ---------------------------------------------------------------------------

@dataclass
class Mesh:
    """A triangle mesh in world coordinates.

    Attributes:
        vertices: [V, 3] float32.
        faces: [F, 3] int32, counter-clockwise seen from outside (outward normals).
        vertex_colors: [V, 3] uint8, or None.
        level: the iso level it was extracted at, where known.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    level: float | None = None

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int32).reshape(-1, 3)
        if self.vertex_colors is not None:
            self.vertex_colors = np.ascontiguousarray(self.vertex_colors, dtype=np.uint8).reshape(-1, 3)
            if len(self.vertex_colors) != len(self.vertices):
                raise ValueError(f"{len(self.vertex_colors)} vertex colours for {len(self.vertices)} vertices")

    def vertex_normals(self) -> np.ndarray:
        """[V, 3] float32 unit outward normals: area-weighted sums of the adjacent face normals.

        Vertices on no face (or only on degenerate faces) get zero vectors.
        """
        v = self.vertices.astype(np.float64)
        f = self.faces
        # The un-normalised cross product has length 2 * area, which gives the area weighting.
        face_normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        corners = f.reshape(-1)
        normals = np.stack(
            [np.bincount(corners, weights=np.repeat(face_normals[:, c], 3), minlength=len(v)) for c in range(3)],
            axis=1,
        )
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        return (normals / np.where(length > 0, length, 1.0)).astype(np.float32)

    def bounds(self) -> np.ndarray:
        """[2, 3] per-axis minimum and maximum of the vertices."""
        if len(self.vertices) == 0:
            raise ValueError("an empty mesh has no bounds")
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def to_trimesh(self) -> trimesh.Trimesh:
        """The mesh as a ``trimesh.Trimesh`` (not processed: vertices and faces keep their order)."""
        trimesh = _import("trimesh", "trimesh")
        return trimesh.Trimesh(vertices=self.vertices, faces=self.faces, vertex_colors=self.vertex_colors,
                               process=False)


def _import(module: str, package: str) -> Any:
    """Import an optional dependency, or fail with the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"mesh extraction/export needs the '{package}' package (pip install {package})") from e


# --- grid sampling ----------------------------------------------------------------------------

def _bounds_array(bounds: Bounds) -> np.ndarray:
    """(lo, hi) for all axes, or per-axis [2, 3] min/max -> [2, 3] float64, checked."""
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape == (2,):
        b = np.repeat(b[:, None], 3, axis=1)
    if b.shape != (2, 3):
        raise ValueError(f"bounds must be (lo, hi) or a [2, 3] min/max array, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or not np.all(b[1] > b[0]):
        raise ValueError(f"bounds must be finite with lo < hi on every axis, got {b.tolist()}")
    return b


def grid_axes(bounds: Bounds, shape: Sequence[int]) -> list[np.ndarray]:
    """The sample coordinates along x, y, z: ``linspace(lo, hi, n)`` per axis (corners included)."""
    b = _bounds_array(bounds)
    return [np.linspace(b[0, a], b[1, a], int(shape[a])) for a in range(3)]


def sample_grid(
    field_fn: FieldFn,
    bounds: Bounds,
    resolution: int,
    chunk: int = 2**18,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Evaluate a field on a regular grid covering the box, corners included.

    Args:
        field_fn: points [M, 3] float32 on ``device`` -> values [M].
        bounds: (lo, hi) for every axis, or a [2, 3] per-axis min/max array.
        resolution: samples per axis (>= 2); the spacing is (hi - lo) / (resolution - 1).
        chunk: points per ``field_fn`` call (bounds the evaluator's memory).
        device: where the points are made (default CPU); values may come back on any device.
        progress: optional ``progress(done_points, total_points)`` after each chunk.

    Returns:
        [res, res, res] float32 with ``grid[i, j, k] = f(x_i, y_j, z_k)``, x_i = linspace(lo, hi, res)[i].
    """
    res = int(resolution)
    if res < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    axes = [torch.as_tensor(a, dtype=torch.float32, device=device) for a in grid_axes(bounds, (res, res, res))]
    total = res**3
    out = np.empty(total, dtype=np.float32)
    with torch.no_grad():
        for start in range(0, total, chunk):
            # Points are built per chunk from flat indices, so a 512^3 grid never holds all its coordinates.
            idx = torch.arange(start, min(start + chunk, total), device=device)
            points = torch.stack([axes[0][idx // (res * res)], axes[1][(idx // res) % res], axes[2][idx % res]], dim=1)
            values = field_fn(points)
            if values.numel() != len(idx):
                raise ValueError(f"field_fn returned {tuple(values.shape)} values for {len(idx)} points")
            out[start:start + len(idx)] = values.reshape(-1).float().cpu().numpy()
            if progress is not None:
                progress(start + len(idx), total)
    return out.reshape(res, res, res)


# --- marching cubes ---------------------------------------------------------------------------

def _border_widths(border: int | Sequence[int]) -> tuple[int, int, int, int, int, int]:
    """int, or (x-, x+, y-, y+, z-, z+) layer counts."""
    if isinstance(border, (int, np.integer)):
        widths = (int(border),) * 6
    else:
        widths = tuple(int(b) for b in border)
        if len(widths) != 6:
            raise ValueError(f"border must be an int or 6 ints (x-, x+, y-, y+, z-, z+), got {border!r}")
    if min(widths) < 0:
        raise ValueError(f"border widths must be >= 0, got {border!r}")
    return widths  # type: ignore[return-value]


def marching_cubes(
    grid: np.ndarray,
    level: float,
    bounds: Bounds,
    inside: Inside = "above",
    border: int | Sequence[int] = 0,
) -> Mesh:
    """Closed iso-surface of a sampled field, in world coordinates.

    Border rule: the outermost ``border`` voxel layers on each side of the grid (an int for all six
    sides, or ``(x-, x+, y-, y+, z-, z+)``) are overwritten with a value that is outside the solid
    by more than any sample is inside it, before marching. Surfaces touching the box are thus cut
    and closed a little inside it (the cut lies within half a voxel of the last kept layer), and
    floaters that touch the box walls, a common artefact of GAN density fields, disappear. This is
    EG3D's shape-extraction cleanup (``gen_samples.py``: ``pad = 30 * res / 256`` layers, 38 at
    +y, sigma set to 0 there, below its level of 10); :func:`eg3d_border` gives those widths.

    Independently of ``border``, one extra layer of outside is always padded around the grid, so
    a solid that reaches the box is closed by flat caps on the box faces and the mesh is watertight
    (apart from degenerate cases such as samples exactly at ``level``). Cap vertices are snapped
    onto the box faces, so the mesh never leaves the box. Non-finite samples: NaN is outside,
    +/-inf are clipped to the finite range.

    Args:
        grid: [nx, ny, nz] samples at ``linspace(lo, hi, n)`` per axis (see :func:`sample_grid`).
        level: iso value.
        bounds: (lo, hi) for every axis, or a [2, 3] per-axis min/max array.
        inside: "above": the solid is ``value > level`` (density); "below": ``value < level`` (SDF).
        border: voxel layers to clear on each side (see the rule above).

    Returns:
        Mesh with outward-facing triangles and no colours.

    Raises:
        ValueError: if the level is not crossed (no surface), e.g. ``no surface at level 10:
            values range -3.2..7.5``, or nothing is left after the border cleanup.
    """
    mcubes = _import("mcubes", "PyMCubes")
    grid = np.asarray(grid)
    if grid.ndim != 3 or min(grid.shape) < 2:
        raise ValueError(f"grid must be 3-D with at least 2 samples per axis, got shape {grid.shape}")
    if inside not in ("above", "below"):
        raise ValueError(f"inside must be 'above' or 'below', got {inside!r}")
    b = _bounds_array(bounds)
    level = float(level)
    widths = _border_widths(border)

    # w > 0 inside for both conventions; PyMCubes orients faces outward for a solid of larger values.
    sign = 1.0 if inside == "above" else -1.0
    w = np.empty(tuple(n + 2 for n in grid.shape), dtype=np.float32)
    inner = w[1:-1, 1:-1, 1:-1]
    np.subtract(grid, level, out=inner, dtype=np.float32, casting="unsafe")
    if sign < 0:
        np.negative(inner, out=inner)
    # A float64 sum of float32 values cannot overflow, so it is finite iff every value is.
    all_finite = bool(np.isfinite(inner.sum(dtype=np.float64)))
    if all_finite:
        lo_v, hi_v = float(inner.min()), float(inner.max())
    else:
        finite = np.isfinite(inner)
        if not finite.any():
            raise ValueError(f"no surface at level {level:g}: no finite values")
        lo_v, hi_v = float(inner[finite].min()), float(inner[finite].max())
        if np.isposinf(inner).any():
            hi_v = max(hi_v, 1.0)  # +inf is inside: keep a surface even if no finite sample is
    value_range = sorted((level + sign * lo_v, level + sign * hi_v))
    # A surface needs some sample inside (w > 0) and some not (w <= 0, or NaN which counts as outside).
    if not (hi_v > 0 and (lo_v <= 0 or np.isnan(inner).any())):
        raise ValueError(f"no surface at level {level:g}: values range {value_range[0]:g}..{value_range[1]:g}")
    outside = -(max(abs(lo_v), abs(hi_v)) + 1.0)
    if not all_finite:
        np.nan_to_num(inner, copy=False, nan=outside, posinf=hi_v, neginf=lo_v)

    # The padding layer, and the border cleanup, both write the same "outside" value.
    w[0, :, :] = w[-1, :, :] = outside
    w[:, 0, :] = w[:, -1, :] = outside
    w[:, :, 0] = w[:, :, -1] = outside
    for axis in range(3):
        lo_w, hi_w = widths[2 * axis], widths[2 * axis + 1]
        index: list[slice] = [slice(None)] * 3
        if lo_w:
            index[axis] = slice(0, lo_w)
            inner[tuple(index)] = outside
        if hi_w:
            index[axis] = slice(max(inner.shape[axis] - hi_w, 0), None)
            inner[tuple(index)] = outside
    if any(widths) and not (inner > 0).any():
        raise ValueError(f"no surface at level {level:g} after clearing a border of {widths} voxel layers")

    vertices, faces = mcubes.marching_cubes(w, 0.0)
    if len(faces) == 0:
        raise ValueError(f"no surface at level {level:g}: values range {value_range[0]:g}..{value_range[1]:g}")
    # Back to grid indices; cap vertices lie on edges into the padding and snap onto the box faces.
    shape = np.asarray(grid.shape, dtype=np.float64)
    vertices = np.clip(vertices - 1.0, 0.0, shape - 1.0)
    step = (b[1] - b[0]) / (shape - 1.0)
    world = b[0] + vertices * step
    return Mesh(vertices=world.astype(np.float32), faces=faces.astype(np.int32))


# --- extraction -------------------------------------------------------------------------------

def vertex_colors(
    color_fn: ColorFn,
    vertices: np.ndarray,
    chunk: int = 2**18,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """[V, 3] uint8 colours of ``color_fn`` (rgb in [0, 1], clamped) at vertices [V, 3]."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    out = np.empty((len(vertices), 3), dtype=np.uint8)
    with torch.no_grad():
        for start in range(0, len(vertices), chunk):
            points = torch.as_tensor(vertices[start:start + chunk], dtype=torch.float32, device=device)
            rgb = color_fn(points).reshape(len(points), 3).float().clamp(0, 1)
            out[start:start + len(points)] = (rgb * 255).round().to(torch.uint8).cpu().numpy()
    return out


def extract_mesh(
    field_fn: FieldFn,
    bounds: Bounds,
    resolution: int,
    level: float,
    inside: Inside = "above",
    border: int | Sequence[int] = 0,
    color_fn: ColorFn | None = None,
    chunk: int = 2**18,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
) -> Mesh:
    """Sample ``field_fn`` on a ``resolution``^3 grid over ``bounds`` and mesh its ``level`` set.

    See :func:`sample_grid` for the grid and :func:`marching_cubes` for ``inside`` and ``border``.
    With ``color_fn`` the vertices are coloured by it (chunked like the grid).

    Raises:
        ValueError: when the field does not cross ``level`` (the message gives the value range).
    """
    grid = sample_grid(field_fn, bounds, resolution, chunk=chunk, device=device, progress=progress)
    mesh = marching_cubes(grid, level, bounds, inside=inside, border=border)
    if color_fn is not None:
        mesh.vertex_colors = vertex_colors(color_fn, mesh.vertices, chunk=chunk, device=device)
    return mesh


def eg3d_border(resolution: int) -> tuple[int, int, int, int, int, int]:
    """EG3D's floater cleanup for a ``resolution``^3 grid, as ``marching_cubes(border=...)``.

    ``gen_samples.py`` clears ``int(30 * res / 256)`` layers on every side and
    ``int(38 * res / 256)`` at the +y end; returned as (x-, x+, y-, y+, z-, z+).
    """
    pad, pad_top = int(30 * resolution / 256), int(38 * resolution / 256)
    return (pad, pad, pad, pad_top, pad, pad)


# --- export -----------------------------------------------------------------------------------

def export_mesh(mesh: Mesh, path: str | os.PathLike, fmt: Literal["ply", "obj", "glb"] | None = None) -> Path:
    """Write ``mesh`` as PLY (binary), OBJ or GLB via trimesh, with vertex colours when present.

    The format comes from ``fmt`` or else the file suffix. The file is replaced atomically (temp
    file in the same folder, fsync, rename), so a failed export leaves any previous file intact.

    Returns:
        The path written.

    Raises:
        ValueError: unknown format (or "mrc", which is a volume: see :func:`write_mrc`).
        MeshExportError: an ``OSError`` whose message names the path, if it cannot be written.
    """
    from models.checkpoint import atomic_output
    from models.errors import CheckpointError

    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")  # type: ignore[assignment]
    if fmt == "mrc":
        raise ValueError(f"{path}: mrc holds a density volume, not a mesh; write it with write_mrc")
    if fmt not in _TRIMESH_FORMATS:
        raise ValueError(f"{path}: unknown mesh format {fmt!r}; expected one of {', '.join(_TRIMESH_FORMATS)}")
    if len(mesh.faces) == 0:
        raise ValueError(f"{path}: cannot export an empty mesh")
    # Encode first, so exporter errors never touch the destination.
    data = mesh.to_trimesh().export(file_type=fmt)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        with atomic_output(path) as f:
            f.write(data)
    except CheckpointError as e:
        raise MeshExportError(path, e.problem) from e
    return path


def write_mrc(grid: np.ndarray, path: str | os.PathLike, bounds: Bounds) -> Path:
    """Write a sampled field as an MRC volume (float32) that ChimeraX shows where the mesh is.

    MRC stores data as [z, y, x] (x fastest, MAPC/MAPR/MAPS = 1/2/3), so ``grid[i, j, k]`` (x, y, z)
    is transposed. The voxel size is the grid spacing ``(hi - lo) / (res - 1)`` per axis and the
    header origin is the world position of sample [0, 0, 0] (the box's min corner); ChimeraX uses
    the origin field (MRC2000) for the volume's position, so the volume and the mesh line up.
    The file is written to a temp name in the same folder and renamed over ``path``.

    Args:
        grid: [nx, ny, nz] samples at ``linspace(lo, hi, n)`` per axis (see :func:`sample_grid`).
        path: destination (``.mrc``).
        bounds: (lo, hi) for every axis, or a [2, 3] per-axis min/max array.

    Returns:
        The path written.

    Raises:
        MeshExportError: an ``OSError`` whose message names the path, if it cannot be written.
    """
    mrcfile = _import("mrcfile", "mrcfile")
    grid = np.asarray(grid)
    if grid.ndim != 3 or min(grid.shape) < 2:
        raise ValueError(f"grid must be 3-D with at least 2 samples per axis, got shape {grid.shape}")
    b = _bounds_array(bounds)
    step = (b[1] - b[0]) / (np.asarray(grid.shape, dtype=np.float64) - 1.0)
    data = np.ascontiguousarray(np.transpose(grid, (2, 1, 0)), dtype=np.float32)
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with mrcfile.new(tmp_name, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = tuple(float(s) for s in step)
            mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(v) for v in b[0])
            mrc.update_header_stats()
        with open(tmp_name, "rb+") as f:
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it visible
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise MeshExportError(path, f"cannot write: {e.strerror or e}") from e
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def save_identity_mesh(
    renderer: Any,
    planes: torch.Tensor,
    path: str | os.PathLike,
    fmt: str,
    resolution: int,
    level: float | None,
    colors: bool,
    progress: ProgressFn | None = None,
    chunk: int = 2**18,
    scene: Any = None,
) -> Mesh:
    """Extract one identity's mesh (``GeneratorRenderer.identity_mesh``: density grid, EG3D border
    cleanup, marching cubes) and write it: ``ply``/``obj``/``glb`` the mesh (``colors``: vertex
    colours from the radiance), ``mrc`` the density volume. Shared by the app's mesh export and the
    batch ``mesh`` command; ``scene``: a compositional model's ``SceneControls`` (None: its defaults).
    Returns the mesh; its ``level`` is the iso level used.

    Raises:
        ValueError: unknown format, or no surface at the level.
        MeshExportError: the file cannot be written.
    """
    fmt = fmt.lower()
    if fmt not in MESH_FORMATS:
        raise ValueError(f"mesh format {fmt!r}: choose one of {', '.join(MESH_FORMATS)}")
    moved = {} if scene is None else {"scene": scene}
    mesh, grid, bounds = renderer.identity_mesh(planes, resolution, level, bool(colors) and fmt != "mrc",
                                                progress=progress, chunk=chunk, **moved)
    if fmt == "mrc":
        write_mrc(grid, path, bounds)
    else:
        export_mesh(mesh, path, fmt)  # type: ignore[arg-type]
    return mesh


def _umask() -> int:
    from models.checkpoint import _current_umask

    return _current_umask()
