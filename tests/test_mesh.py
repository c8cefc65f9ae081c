"""Marching-cubes extraction and mesh / volume export against analytic fields and real generators.

Analytic shapes are off-centre and the boxes are not cubes where it matters, so a swapped axis,
a half-voxel shift or a flipped winding fails a test. Tolerances are derived where they are used.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
import trimesh

from renderers.mesh import (
    MESH_FORMATS,
    Mesh,
    MeshExportError,
    eg3d_border,
    export_mesh,
    extract_mesh,
    marching_cubes,
    sample_grid,
    write_mrc,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EG3D_TRAINED = REPO_ROOT / "tests" / "fixtures" / "legacy" / "eg3d-tiny-trained.safetensors"
"""A trained density EG3D (the exact ``tiny`` preset at 44 kimg, the bundled model before the SDF one)."""

CENTRE = np.array([0.1, -0.05, 0.15])
RADIUS = 0.55
RES = 48
BOX = (-1.0, 1.0)
STEP = (BOX[1] - BOX[0]) / (RES - 1)


def _sphere_sdf(p: torch.Tensor) -> torch.Tensor:
    return (p - torch.as_tensor(CENTRE, dtype=p.dtype)).norm(dim=1) - RADIUS


def _sphere_density(p: torch.Tensor) -> torch.Tensor:
    # 100 * (r0 - |x - c|) crosses 10 at |x - c| = r0 - 0.1 = RADIUS.
    return 100.0 * ((RADIUS + 0.1) - (p - torch.as_tensor(CENTRE, dtype=p.dtype)).norm(dim=1))


def _components(mesh: Mesh) -> int:
    return len(mesh.to_trimesh().split(only_watertight=False))


# --- grid -------------------------------------------------------------------------------------

def test_sample_grid_index_order_corners_and_chunking():
    calls = []
    grid = sample_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], (-1.0, 2.0), 7, chunk=50,
                       progress=lambda done, total: calls.append((done, total)))
    axis = np.linspace(-1.0, 2.0, 7)
    expected = axis[:, None, None] + 10 * axis[None, :, None] + 100 * axis[None, None, :]
    assert grid.shape == (7, 7, 7) and grid.dtype == np.float32
    np.testing.assert_allclose(grid, expected, rtol=0, atol=1e-4)
    assert calls[-1] == (343, 343) and len(calls) == math.ceil(343 / 50)
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_sample_grid_rejects_wrong_value_count():
    with pytest.raises(ValueError, match="returned"):
        sample_grid(lambda p: p, BOX, 4)


# --- analytic spheres -------------------------------------------------------------------------

@pytest.mark.parametrize("field, level, inside", [(_sphere_sdf, 0.0, "below"), (_sphere_density, 10.0, "above")])
def test_sphere_surface_position_orientation_volume(field, level, inside):
    mesh = extract_mesh(field, BOX, RES, level, inside=inside)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32 and mesh.vertex_colors is None

    offsets = mesh.vertices.astype(np.float64) - CENTRE
    radii = np.linalg.norm(offsets, axis=1)
    # Linear interpolation of |x - c| along a voxel edge errs by at most h^2 / (8 R) ~ 0.01 voxel;
    # a half-voxel shift or a swapped axis would show as ~0.5 voxel.
    assert np.abs(radii - RADIUS).max() < 0.05 * STEP

    tm = mesh.to_trimesh()
    assert tm.is_watertight
    # Positive: outward winding. The faceted surface is inscribed, 0.4% small at this resolution.
    assert tm.volume == pytest.approx(4 / 3 * math.pi * RADIUS**3, rel=0.01)

    normals = mesh.vertex_normals()
    assert normals.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert ((normals * offsets).sum(1) / radii > 0.9).all()  # outward, and close to radial

    np.testing.assert_allclose(mesh.bounds(), [CENTRE - RADIUS, CENTRE + RADIUS], atol=0.05 * STEP)


def test_solid_touching_the_box_is_closed_on_the_box_faces():
    # Half-space x > 0.3 in a non-cubic box: the padding layer closes it with caps on 5 box faces.
    bounds = np.array([[-1.0, -2.0, 0.0], [1.0, 2.0, 1.0]])
    mesh = extract_mesh(lambda p: p[:, 0] - 0.3, bounds, 20, 0.0, inside="above")
    tm = mesh.to_trimesh()
    assert tm.is_watertight
    assert tm.volume == pytest.approx(0.7 * 4.0 * 1.0, rel=1e-4)
    np.testing.assert_allclose(mesh.bounds(), [[0.3, -2.0, 0.0], [1.0, 2.0, 1.0]], atol=1e-5)


def test_border_cleanup_removes_wall_floaters():
    def field(p: torch.Tensor) -> torch.Tensor:
        body = 0.4 - p.norm(dim=1)
        floater_px = 0.15 - (p - torch.tensor([1.0, 0.0, 0.0])).norm(dim=1)  # touches the +x wall
        floater_mz = 0.15 - (p - torch.tensor([0.0, 0.3, -1.0])).norm(dim=1)  # touches the -z wall
        return torch.maximum(body, torch.maximum(floater_px, floater_mz))

    grid = sample_grid(field, BOX, RES)
    assert _components(marching_cubes(grid, 0.0, BOX)) == 3

    cleaned = marching_cubes(grid, 0.0, BOX, border=4)
    assert _components(cleaned) == 1 and cleaned.to_trimesh().is_watertight
    assert np.abs(cleaned.vertices).max() < 0.41

    # Per side (x-, x+, y-, y+, z-, z+): clearing only +x keeps the -z floater.
    one_side = marching_cubes(grid, 0.0, BOX, border=(0, 4, 0, 0, 0, 0))
    assert _components(one_side) == 2
    assert one_side.vertices[:, 0].max() < 0.41 and one_side.vertices[:, 2].min() == pytest.approx(-1.0)


def test_no_surface_is_a_clear_error():
    grid = sample_grid(_sphere_density, BOX, 16)  # values about -170..60
    with pytest.raises(ValueError, match=r"no surface at level 100: values range -1\d\d.*\.\.5\d"):
        marching_cubes(grid, 100.0, BOX)
    with pytest.raises(ValueError, match="no surface at level -1000"):
        marching_cubes(grid, -1000.0, BOX)  # everything is inside: no crossing either
    with pytest.raises(ValueError, match="border"):
        marching_cubes(grid, 10.0, BOX, border=8)  # 8 + 8 layers of 16: nothing is left


def test_nan_samples_count_as_outside():
    grid = sample_grid(_sphere_sdf, BOX, 24)
    grid[0, 0, 0] = np.nan
    assert marching_cubes(grid, 0.0, BOX, inside="below").to_trimesh().is_watertight


def test_vertex_colours_follow_the_colour_function():
    def rgb(p: torch.Tensor) -> torch.Tensor:
        return (p - BOX[0]) / (BOX[1] - BOX[0])  # x, y, z mapped to r, g, b in [0, 1]

    mesh = extract_mesh(_sphere_sdf, BOX, 24, 0.0, inside="below", color_fn=rgb, chunk=500)
    assert mesh.vertex_colors is not None and mesh.vertex_colors.dtype == np.uint8
    expected = np.round((mesh.vertices - BOX[0]) / (BOX[1] - BOX[0]) * 255)
    assert np.abs(mesh.vertex_colors.astype(np.float64) - expected).max() <= 1


# --- export -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coloured_sphere() -> Mesh:
    mesh = extract_mesh(_sphere_sdf, BOX, 20, 0.0, inside="below")
    mesh.vertex_colors = np.round((mesh.vertices - BOX[0]) / 2 * 255).astype(np.uint8)
    return mesh


@pytest.mark.parametrize("fmt", ["ply", "obj", "glb"])
def test_export_round_trip(tmp_path, coloured_sphere, fmt):
    mesh = coloured_sphere
    path = tmp_path / f"shape.{fmt}"
    path.write_bytes(b"old")  # replaced atomically
    assert export_mesh(mesh, path) == path
    loaded = trimesh.load(path, process=False, force="mesh")
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    assert loaded.visual.kind == "vertex"
    colours = loaded.visual.vertex_colors[:, :3]
    if fmt == "ply":
        np.testing.assert_array_equal(colours, mesh.vertex_colors)
    else:
        assert np.abs(colours.astype(int) - mesh.vertex_colors).max() <= 1  # stored as floats
    assert loaded.volume == pytest.approx(mesh.to_trimesh().volume, rel=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left


def test_export_format_selection(tmp_path, coloured_sphere):
    path = export_mesh(coloured_sphere, tmp_path / "shape.bin", fmt="ply")
    assert trimesh.load(path, file_type="ply", process=False).vertices.shape == coloured_sphere.vertices.shape
    with pytest.raises(ValueError, match="unknown mesh format"):
        export_mesh(coloured_sphere, tmp_path / "shape.stl")
    with pytest.raises(ValueError, match="write_mrc"):
        export_mesh(coloured_sphere, tmp_path / "shape.mrc")
    assert MESH_FORMATS == ("ply", "obj", "glb", "mrc")


def test_mrc_round_trip_orientation(tmp_path):
    # Non-cubic grid and box; a blob at +x, low y, high z must land there in the file.
    shape = (20, 16, 12)
    bounds = np.array([[-1.0, -0.5, 0.0], [1.0, 0.5, 2.0]])
    grid = np.zeros(shape, dtype=np.float32)
    grid[17, 2, 9] = 5.0
    path = write_mrc(grid, tmp_path / "density.mrc", bounds)
    with mrcfile.open(path) as mrc:
        data = np.asarray(mrc.data)
        voxel = mrc.voxel_size
        origin = mrc.header.origin
        assert data.shape == (12, 16, 20)  # [z, y, x]
        np.testing.assert_array_equal(data, grid.transpose(2, 1, 0))
        assert np.unravel_index(np.argmax(data), data.shape) == (9, 2, 17)
        step = (bounds[1] - bounds[0]) / (np.array(shape) - 1)
        np.testing.assert_allclose([voxel.x, voxel.y, voxel.z], step, rtol=1e-6)
        np.testing.assert_allclose([origin.x, origin.y, origin.z], bounds[0], atol=1e-6)
        assert (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)) == (1, 2, 3)
    # World position of the blob, as ChimeraX computes it: origin + index * step.
    np.testing.assert_allclose(bounds[0] + np.array([17, 2, 9]) * step, [0.78947368, -0.36666667, 1.63636364])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["density.mrc"]


def test_unwritable_paths_name_the_path(tmp_path, coloured_sphere):
    missing = tmp_path / "no_such_folder" / "shape.ply"
    with pytest.raises(MeshExportError, match="no_such_folder") as info:
        export_mesh(coloured_sphere, missing)
    assert isinstance(info.value, OSError) and str(missing) in str(info.value)

    folder = tmp_path / "a_folder.obj"
    folder.mkdir()
    with pytest.raises(OSError, match="a_folder.obj"):
        export_mesh(coloured_sphere, folder)

    with pytest.raises(MeshExportError, match="no_such_folder") as info:
        write_mrc(np.zeros((4, 4, 4), np.float32), tmp_path / "no_such_folder" / "v.mrc", BOX)
    assert str(tmp_path / "no_such_folder" / "v.mrc") in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder.obj"]


# --- EG3D -------------------------------------------------------------------------------------

def test_eg3d_border_widths():
    assert eg3d_border(256) == (30, 30, 30, 38, 30, 30)  # gen_samples.py at its default resolution
    assert eg3d_border(64) == (7, 7, 7, 9, 7, 7)


@torch.no_grad()
def test_eg3d_mesh_fields_match_run_decoder():
    from models.checkpoint import open_generator

    G = open_generator("preset:tiny")
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(1))
    planes = G.planes(G.mapping(z, G.default_camera()), noise_mode="const")
    fields = G.mesh_fields(planes)
    density, colour, bounds = fields.field, fields.color, fields.bounds
    half = G.rendering_kwargs["box_warp"] / 2
    assert bounds == (-half, half)

    grid = sample_grid(density, bounds, 5, chunk=37)
    axis = torch.linspace(-half, half, 5)
    picks = [(0, 0, 0), (4, 4, 4), (1, 3, 2), (4, 0, 1), (2, 2, 2)]
    points = torch.stack([torch.stack([axis[i], axis[j], axis[k]]) for i, j, k in picks])
    directions = torch.tensor([[0.3, -0.2, 0.9]]).expand(len(picks), 3)
    out = G.run_decoder(planes, points[None], directions[None])
    np.testing.assert_allclose([grid[p] for p in picks], out["sigma"][0, :, 0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(colour(points).numpy(), out["rgb"][0, :, :3].clamp(0, 1).numpy(), atol=1e-6)

    # Training's density noise must neither reach the mesh nor be switched off behind G's back.
    G.rendering_kwargs["density_noise"] = 1.0
    np.testing.assert_allclose(density(points).numpy(), out["sigma"][0, :, 0].numpy(), rtol=1e-5, atol=1e-5)
    assert G.rendering_kwargs["density_noise"] == 1.0


@torch.no_grad()
def test_trained_eg3d_mesh_at_eg3d_level():
    from models.checkpoint import load_generator

    G = load_generator(EG3D_TRAINED)
    # This small trained model's sigma peaks at 10-14, so EG3D's level 10 gives small blobs (its
    # surfaces sit nearer sigma 5); this identity has ~150 samples above 10 at res 64.
    # noise_mode="const", as the renderer uses: the default random noise changes the planes per call.
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(2))
    planes = G.planes(G.mapping(z, G.default_camera(), truncation_psi=0.7), noise_mode="const")
    fields = G.mesh_fields(planes)
    density, colour, bounds = fields.field, fields.color, fields.bounds
    start = time.perf_counter()
    mesh = extract_mesh(density, bounds, 64, 10.0, inside="above", border=eg3d_border(64), color_fn=colour)
    elapsed = time.perf_counter() - start
    print(f"\ntrained EG3D, res 64, level 10: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, {elapsed:.2f} s")
    assert len(mesh.faces) > 0 and mesh.vertex_colors is not None
    lo, hi = mesh.bounds()
    assert (lo >= bounds[0]).all() and (hi <= bounds[1]).all()
    assert mesh.to_trimesh().is_watertight and mesh.to_trimesh().volume > 0
