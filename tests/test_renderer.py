"""GeneratorRenderer (renderers/renderer.py) and its display conversions (renderers/display_frame.py).

Most tests run the bundled 64 px generator (32 px neural resolution) on the CPU. The normals are
also checked on an analytic sphere through a stand-in generator, where the right answer is known
in closed form. Nothing here depends on timing.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import load_generator
from models.scene import MeshFields
from ops.camera import fov_to_focal, generate_rays, orbit_label, unpack_label
from renderers.colormaps import colorize_depth, colormap_lut
from renderers.display_frame import frame_to_rgb, image_to_rgba8, to_display_frame
from renderers.images import resize_nearest
from renderers.mesh import Mesh
from renderers.render_args import (
    RENDER_MODES,
    SEED_STEP_Y,
    CameraPose,
    DisplayArgs,
    LatentArgs,
    QualityArgs,
    RenderArgs,
)
from renderers.renderer import GeneratorRenderer, camera_label, seed_latent, seed_weights

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "default_generator.safetensors"
EG3D_TRAINED = Path(__file__).resolve().parent / "fixtures" / "legacy" / "eg3d-tiny-trained.safetensors"
"""A trained density EG3D (the exact ``tiny`` preset at 44 kimg; the bundled model is an SDF)."""
MESH_RES = 32  # small marching-cubes grid: the mesh tests only need a surface, not detail


@pytest.fixture(autouse=True)
def no_grad():
    """Every test runs without autograd, as the render worker does (tests that need a gradient
    enable it locally)."""
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def G():
    """The bundled generator: 64 px images, 64 px neural resolution, eval mode."""
    return load_generator(BUNDLED, device="cpu").eval()


@pytest.fixture
def renderer(G):
    """A fresh renderer (empty caches) on the shared generator."""
    return GeneratorRenderer(G)


@pytest.fixture(scope="module")
def G_density():
    """A trained density (not SDF) EG3D, for what only density fields have (levels in density units)."""
    return load_generator(EG3D_TRAINED, device="cpu").eval()


def make_args(mode: str = "rgb", seed: float = 3, yaw: float = 0.0, **kwargs) -> RenderArgs:
    kwargs.setdefault("mesh_resolution", MESH_RES)
    args = RenderArgs(mode=mode, **kwargs)
    args.latent.seed_x = seed
    args.view.yaw = yaw
    return args


def reference_ws(G, seed: int, cond: CameraPose, latent: LatentArgs) -> torch.Tensor:
    """ws of an integer seed through the generator's own mapping API."""
    c = camera_label(cond, G.rendering_kwargs, "cpu")
    with torch.no_grad():
        return G.mapping(seed_latent(seed, G.z_dim), c, truncation_psi=latent.psi,
                         truncation_cutoff=latent.trunc_cutoff)


# --- every render mode --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def outputs(G):
    """One render of every mode, same identity and camera."""
    r = GeneratorRenderer(G)
    return {mode: r.render(make_args(mode, yaw=0.2)) for mode in RENDER_MODES}


EXPECTED_FIELDS = {
    # mode: (image, image_raw + depth, depth_range, normals, mesh)
    "rgb": (True, True, False, False, False),
    "raw": (False, True, False, False, False),
    "depth": (False, True, True, False, False),
    "normals": (False, True, False, True, False),
    "mesh": (False, False, False, False, True),
    "side": (True, True, True, False, False),
}


def test_render_modes_are_all_covered():
    """The table of expected fields lists exactly the modes the renderer offers."""
    assert set(EXPECTED_FIELDS) == set(RENDER_MODES)


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_render_output_fields(G, outputs, mode):
    """Each mode fills exactly its fields, with the documented shapes, dtypes and finite values."""
    out = outputs[mode]
    R, r = G.img_resolution, G.neural_rendering_resolution
    has_image, has_neural, has_range, has_normals, has_mesh = EXPECTED_FIELDS[mode]
    assert out.args.mode == mode
    assert out.image_resolution == R == 64 and r == 64
    assert out.camera.shape == (1, 25)
    assert (out.image is not None) == has_image
    assert (out.image_raw is not None) == has_neural
    assert (out.depth is not None) == has_neural
    assert (out.depth_range is not None) == has_range
    assert (out.normals is not None) == has_normals
    assert (out.mesh is not None) == has_mesh
    for tensor, shape in ((out.image, (3, R, R)), (out.image_raw, (3, r, r)), (out.depth, (1, r, r)),
                          (out.normals, (3, r, r))):
        if tensor is not None:
            assert tensor.shape == shape and tensor.dtype == torch.float32
            assert torch.isfinite(tensor).all()
    if has_mesh:
        assert isinstance(out.mesh, Mesh) and len(out.mesh.faces) > 0
        assert np.isfinite(out.mesh.vertices).all()


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_display_frame_layouts(G, outputs, mode):
    """to_display_frame gives the texture layouts documented in DisplayFrame for each mode."""
    out = outputs[mode]
    frame = to_display_frame(out)
    R, r = G.img_resolution, G.neural_rendering_resolution
    assert frame.mode == mode and frame.image_resolution == R
    assert frame.camera.shape == (25,) and frame.camera.device.type == "cpu"
    assert torch.equal(frame.camera, out.camera[0])
    assert frame.mesh is out.mesh
    if mode in ("rgb", "side", "raw"):
        size = r if mode == "raw" else R
        assert frame.color.shape == (size, size, 4) and frame.color.dtype == torch.uint8
        assert (frame.color[..., 3] == 255).all()
        source = out.image_raw if mode == "raw" else out.image
        assert torch.equal(frame.color, image_to_rgba8(source))
    else:
        assert frame.color is None
    if mode in ("depth", "side"):
        assert frame.depth.shape == (r, r, 1) and frame.depth.dtype == torch.float32
        assert torch.equal(frame.depth[..., 0], out.depth[0])
        assert frame.depth_range == out.depth_range
    else:
        assert frame.depth is None and frame.depth_range is None
    if mode == "normals":
        assert frame.normals.shape == (r, r, 4) and frame.normals.dtype == torch.float32
        assert torch.equal(frame.normals[..., :3], out.normals.permute(1, 2, 0))
        assert (frame.normals[..., 3] == 1).all()
    else:
        assert frame.normals is None


@pytest.mark.parametrize("mode", [m for m in RENDER_MODES if m != "mesh"])
def test_frame_to_rgb_shapes(G, outputs, mode):
    """frame_to_rgb gives [H, W, 3] uint8; side-by-side frames are twice as wide as high."""
    rgb = frame_to_rgb(to_display_frame(outputs[mode]), DisplayArgs())
    size = G.neural_rendering_resolution if mode in ("raw", "depth", "normals") else G.img_resolution
    width = 2 * size if mode == "side" else size
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8
    assert rgb.shape == (size, width, 3)
    enlarged = frame_to_rgb(to_display_frame(outputs[mode]), DisplayArgs(), size=128)
    assert enlarged.shape == (128, 256 if mode == "side" else 128, 3)


def test_frame_to_rgb_rejects_mesh_frames(outputs):
    """A mesh frame has no image: frame_to_rgb raises ValueError."""
    with pytest.raises(ValueError, match="mesh"):
        frame_to_rgb(to_display_frame(outputs["mesh"]), DisplayArgs())


def test_frame_to_rgb_side_is_image_then_colorized_depth(outputs):
    """Side frames are the rgb picture on the left and the auto-range colormapped depth, enlarged
    by nearest neighbour, on the right; the nearest pixel gets the colormap's high end."""
    display = DisplayArgs(colormap="viridis")
    side = frame_to_rgb(to_display_frame(outputs["side"]), display)
    rgb = frame_to_rgb(to_display_frame(outputs["rgb"]), display)
    size = rgb.shape[0]
    assert np.array_equal(side[:, :size], rgb)
    depth = outputs["side"].depth
    near, far = outputs["side"].depth_range
    colored = colorize_depth(depth, near, far, "viridis").numpy()
    assert np.array_equal(side[:, size:], resize_nearest(colored, size))
    lut = colormap_lut("viridis")
    flat = depth.reshape(-1)
    assert np.array_equal(colored.reshape(-1, 3)[int(flat.argmin())], lut[-1])
    assert np.array_equal(colored.reshape(-1, 3)[int(flat.argmax())], lut[0])


def test_image_to_rgba8_values():
    """[-1, 1] maps to 0..255 (rounded, clamped outside), channels last, alpha opaque."""
    image = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0, 0.5]).reshape(1, 2, 3).repeat(3, 1, 1)
    image[1] = -image[1].clamp(-1, 1)
    out = image_to_rgba8(image)
    assert out.shape == (2, 3, 4) and out.dtype == torch.uint8
    assert out[..., 0].flatten().tolist() == [0, 128, 255, 255, 0, 191]
    assert out[..., 1].flatten().tolist() == [255, 128, 0, 0, 255, 64]
    assert (out[..., 3] == 255).all()


# --- caches and determinism ---------------------------------------------------------------------

def test_camera_change_reuses_triplanes(renderer):
    """Changing only the view camera reuses the cached tri-planes and still moves the image."""
    first = renderer.render(make_args(yaw=0.0))
    second = renderer.render(make_args(yaw=0.4))
    assert not first.backbone_cached
    assert second.backbone_cached
    assert not torch.allclose(first.image, second.image, atol=1e-3)


@pytest.mark.parametrize("change", ["seed", "psi", "mix", "noise_mode", "cond"])
def test_identity_change_recomputes_triplanes(G, renderer, change):
    """Changing seed, psi, style mixing, noise mode or the conditioning camera misses the cache, and
    the new render equals a fresh renderer's (nothing stale is reused from the ws cache)."""
    renderer.render(make_args())
    args = make_args()
    if change == "seed":
        args.latent.seed_x = 4
    elif change == "psi":
        args.latent.psi = 0.5
    elif change == "mix":
        args.latent.mix_seed, args.latent.mix_layers = 8, (0, 1)
    elif change == "noise_mode":
        args.latent.noise_mode = "none"
    else:
        args.cond.yaw = 0.3
    out = renderer.render(args)
    assert not out.backbone_cached
    assert torch.equal(out.image, GeneratorRenderer(G).render(args).image)


def test_cond_follows_view_makes_the_view_part_of_the_identity(G, renderer):
    """With cond_follows_view the ws are conditioned on the view camera, so a camera change is a
    new identity (no tri-plane reuse)."""
    args = make_args(yaw=0.3)
    args.cond_follows_view = True
    renderer.render(args)
    ws = renderer.latent_ws(args.latent, args.view)
    assert torch.allclose(ws, reference_ws(G, 3, args.view, args.latent), atol=1e-6)
    assert not torch.allclose(ws, reference_ws(G, 3, args.cond, args.latent), atol=1e-4)
    assert renderer.render(args.copy()).backbone_cached
    args.view.yaw = 0.1
    assert not renderer.render(args).backbone_cached


def test_render_is_deterministic(G, renderer):
    """The same request gives identical tensors, from the cache and from a fresh renderer."""
    args = make_args("side", yaw=-0.2)
    a = renderer.render(args)
    b = renderer.render(args.copy())
    c = GeneratorRenderer(G).render(args.copy())
    assert b.backbone_cached and not c.backbone_cached
    for other in (b, c):
        assert torch.equal(a.image, other.image)
        assert torch.equal(a.image_raw, other.image_raw)
        assert torch.equal(a.depth, other.depth)
        assert a.depth_range == other.depth_range


def test_explicit_ws_replaces_the_latent_and_is_not_cached(renderer):
    """render(args, ws) renders the given ws (same pixels as the latent that made them) and never
    touches the tri-plane cache."""
    args = make_args(yaw=0.1)
    ws = renderer.latent_ws(args.latent, args.cond)
    other = make_args(seed=11, yaw=0.1)  # its latent must be ignored
    a = renderer.render(other, ws=ws)
    b = renderer.render(other, ws=ws)
    assert not a.backbone_cached and not b.backbone_cached
    assert torch.equal(a.image, renderer.render(args).image)


# --- agreement with the generator's own API -----------------------------------------------------

def test_rgb_matches_generator_synthesis(G, renderer):
    """The rgb image and depth equal G.synthesis(G.mapping(z(seed), c_cond, psi), c_view)."""
    args = make_args(seed=5, yaw=0.25)
    args.view.pitch = -0.1
    args.cond.yaw, args.cond.pitch = -0.2, 0.05
    args.latent.psi = 0.6
    out = renderer.render(args)
    c_view = camera_label(args.view, G.rendering_kwargs, "cpu")
    assert torch.equal(out.camera, c_view)
    ws = reference_ws(G, 5, args.cond, args.latent)
    with torch.no_grad():
        ref = G.synthesis(ws, c_view, noise_mode="const")
    torch.testing.assert_close(out.image, ref["image"][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.depth, ref["image_depth"][0], atol=1e-5, rtol=0)


def test_raw_image_is_the_neural_render(G, renderer):
    """image_raw is the first three channels of the volume-rendered feature image (before any
    super-resolution). It is not synthesis()'s image_raw: for this model's SR layout EG3D's
    image_raw includes block0's toRGB addition (see models/superresolution.py)."""
    args = make_args("raw", yaw=0.3)
    out = renderer.render(args)
    ws = renderer.latent_ws(args.latent, args.cond)
    with torch.no_grad():
        planes = G.planes(ws, noise_mode="const")
        features, depth = G.render_neural(planes, out.camera, G.neural_rendering_resolution)
    torch.testing.assert_close(out.image_raw, features[0, :3], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depth, depth[0], atol=1e-6, rtol=0)


# --- seeds, blending and mixing -----------------------------------------------------------------

def test_seed_weights_integer_seeds():
    """An integer 2-D seed names exactly one seed, x + 100 * y (mod 2**32), with weight 1."""
    assert seed_weights(3, 0) == [(3, 1.0)]
    assert seed_weights(3.0, 2.0) == [(3 + SEED_STEP_Y * 2, 1.0)]
    assert SEED_STEP_Y == 100
    assert seed_weights(-1, 0) == [(2**32 - 1, 1.0)]


def test_seed_weights_fractional_seeds_are_bilinear():
    """Fractional seeds give the four lattice seeds with bilinear weights summing to one; a seed
    fractional along one axis only gives two."""
    weights = dict(seed_weights(2.25, 1.5))
    expected = {102: 0.75 * 0.5, 103: 0.25 * 0.5, 202: 0.75 * 0.5, 203: 0.25 * 0.5}
    assert weights.keys() == expected.keys()
    for seed, w in expected.items():
        assert weights[seed] == pytest.approx(w)
    assert sum(weights.values()) == pytest.approx(1.0)
    two = dict(seed_weights(7.0, 0.75))
    assert two.keys() == {7, 107}
    assert two[7] == pytest.approx(0.25) and two[107] == pytest.approx(0.75)


def test_seed_latent_is_a_fixed_normal_draw():
    """seed_latent is [1, z_dim] from a CPU generator seeded with the seed: repeatable, per seed."""
    z = seed_latent(42, 16)
    assert z.shape == (1, 16) and z.dtype == torch.float32
    assert torch.equal(z, torch.randn([1, 16], generator=torch.Generator().manual_seed(42)))
    assert torch.equal(z, seed_latent(42, 16))
    assert not torch.equal(z, seed_latent(43, 16))


def test_fractional_seed_blends_in_w(G, renderer):
    """The ws of a fractional seed are the weighted sum of its lattice seeds' ws."""
    latent = LatentArgs(seed_x=2.25, seed_y=1.5, psi=0.8)
    cond = CameraPose(yaw=0.1)
    ws = renderer.latent_ws(latent, cond)
    blend = sum(w * reference_ws(G, s, cond, latent) for s, w in seed_weights(2.25, 1.5))
    assert ws.shape == (1, G.num_ws, G.w_dim)
    torch.testing.assert_close(ws, blend, atol=1e-5, rtol=0)
    assert not torch.allclose(ws, reference_ws(G, 102, cond, latent), atol=1e-3)


def test_style_mixing_replaces_exactly_the_chosen_layers(G, renderer):
    """With mix_seed and mix_layers, those ws layers come from the mix seed and the rest from the
    identity; out-of-range layer indices are ignored."""
    cond = CameraPose()
    base = LatentArgs(seed_x=3)
    mixed = dataclasses.replace(base, mix_seed=9, mix_layers=(1, 4, 7, G.num_ws, -1))
    ws = renderer.latent_ws(mixed, cond)
    ws_base = reference_ws(G, 3, cond, base)
    ws_mix = reference_ws(G, 9, cond, base)
    for i in range(G.num_ws):
        source = ws_mix if i in (1, 4, 7) else ws_base
        torch.testing.assert_close(ws[:, i], source[:, i], atol=1e-6, rtol=0)
    assert not torch.allclose(ws_base[:, 1], ws_mix[:, 1], atol=1e-3)
    # The cached ws of the identity are not modified by mixing.
    torch.testing.assert_close(renderer.latent_ws(base, cond), ws_base, atol=1e-6, rtol=0)


def test_truncation_cutoff_reaches_the_mapping(G, renderer):
    """trunc_cutoff is passed to the mapping: only the first layers are truncated."""
    latent = LatentArgs(seed_x=3, psi=0.5, trunc_cutoff=4)
    ws = renderer.latent_ws(latent, CameraPose())
    torch.testing.assert_close(ws, reference_ws(G, 3, CameraPose(), latent), atol=1e-6, rtol=0)
    full = reference_ws(G, 3, CameraPose(), LatentArgs(seed_x=3, psi=0.5))
    assert torch.allclose(ws[:, :4], full[:, :4], atol=1e-6)
    assert not torch.allclose(ws[:, 4:], full[:, 4:], atol=1e-3)


# --- quality -------------------------------------------------------------------------------------

def test_superres_off_upsamples_the_raw_image(G, renderer):
    """superres=False: the image is the raw image bilinearly upsampled (antialiased) to R, which
    differs from the super-resolved image."""
    sr = renderer.render(make_args(yaw=0.2))
    args = make_args(yaw=0.2, quality=QualityArgs(superres=False))
    plain = renderer.render(args)
    assert plain.image.shape == sr.image.shape == (3, G.img_resolution, G.img_resolution)
    expected = F.interpolate(plain.image_raw[None], size=(G.img_resolution,) * 2, mode="bilinear",
                             align_corners=False, antialias=True)[0]
    torch.testing.assert_close(plain.image, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(plain.image_raw, sr.image_raw, atol=1e-6, rtol=0)
    assert not torch.allclose(plain.image, sr.image, atol=1e-2)


def test_neural_resolution_override(G, renderer):
    """neural_resolution=16 renders a 16 x 16 raw image, depth and normals; the final image stays R."""
    quality = QualityArgs(neural_resolution=16)
    out = renderer.render(make_args("side", quality=quality))
    assert out.image_raw.shape == (3, 16, 16) and out.depth.shape == (1, 16, 16)
    assert out.image.shape == (3, G.img_resolution, G.img_resolution)
    normals = renderer.render(make_args("normals", quality=QualityArgs(neural_resolution=16))).normals
    assert normals.shape == (3, 16, 16)
    assert G.neural_rendering_resolution == 64  # the generator's own setting is untouched


def test_sample_overrides_apply_during_the_render_only(G, renderer):
    """depth_samples / importance_samples travel with the render call (RenderOptions) and the
    generator's live rendering_kwargs are never edited, also when the render fails."""
    opts = G.rendering_kwargs
    before = (opts["depth_resolution"], opts["depth_resolution_importance"])
    default = renderer.render(make_args("raw"))
    quality = QualityArgs(depth_samples=6, importance_samples=4)
    seen = []
    original = G.render_neural

    def spy(*a, **k):
        options = a[3] if len(a) > 3 else k["options"]
        seen.append((options.num_coarse, options.num_fine))
        assert (opts["depth_resolution"], opts["depth_resolution_importance"]) == before
        return original(*a, **k)

    def boom(*a, **k):
        raise RuntimeError("render failed")

    try:
        G.render_neural = spy  # instance attribute shadows the method; removed below
        out = renderer.render(make_args("raw", quality=quality))
        assert seen == [(6, 4)]
        assert (opts["depth_resolution"], opts["depth_resolution_importance"]) == before
        assert not torch.allclose(out.image_raw, default.image_raw, atol=1e-4)

        G.render_neural = boom
        with pytest.raises(RuntimeError, match="render failed"):
            renderer.render(make_args("raw", quality=quality))
        assert (opts["depth_resolution"], opts["depth_resolution_importance"]) == before
    finally:
        del G.render_neural


# --- depth and normals --------------------------------------------------------------------------

def test_depth_lies_in_the_ray_range(G, outputs):
    """Depth is a ray distance inside [ray_start, ray_end]; depth_range is its (min, max)."""
    start, end = G.rendering_kwargs["ray_start"], G.rendering_kwargs["ray_end"]
    assert isinstance(start, (int, float)) and isinstance(end, (int, float))  # not "auto"
    for mode in ("depth", "side"):
        out = outputs[mode]
        assert out.depth.min() >= start - 1e-5 and out.depth.max() <= end + 1e-5
        assert out.depth_range == (float(out.depth.min()), float(out.depth.max()))
        assert out.depth_range[0] < out.depth_range[1]


def foreground(depth: torch.Tensor) -> torch.Tensor:
    d = depth[0]
    return d < d.median()


def test_depth_normals_are_unit_and_face_the_camera(renderer):
    """Depth-map normals are unit vectors and, in front (depth below the median), face the camera
    (OpenCV camera axes: negative z)."""
    out = renderer.render(make_args("normals", yaw=0.3, normals_source="depth"))
    length = out.normals.norm(dim=0)
    assert ((length - 1).abs() < 1e-3).all()
    fg = foreground(out.depth)
    assert (out.normals[2][fg] < 0).float().mean() > 0.9


def test_density_normals_point_down_the_density_gradient(G, renderer):
    """Density normals are unit vectors pointing against the density gradient at each pixel's
    expected surface point: their camera-space component along the ray is minus the normalised
    directional derivative of sigma there. (On the bundled model the rendered depth sits near the
    peak of a thin, foggy density shell, so many of them face away from the camera; on a clean
    surface they face it, see the sphere test.)"""
    args = make_args("normals", yaw=0.3, normals_source="density")
    out = renderer.render(args)
    length = out.normals.norm(dim=0)
    assert ((length - 1).abs() < 1e-3).all()
    _, planes = renderer.identity_planes(args)
    cam2world, intrinsics = unpack_label(out.camera)
    r = out.depth.shape[-1]
    origins, directions = generate_rays(cam2world, intrinsics, r)
    points = (origins + out.depth.reshape(1, -1, 1) * directions).detach().requires_grad_(True)
    with torch.enable_grad():
        sigma = G.run_decoder(planes, points, directions)["sigma"].sum()
        (grad,) = torch.autograd.grad(sigma, points)
    along_ray = (grad * directions).sum(-1) / grad.norm(dim=-1)  # d sigma / dt, normalised
    # Camera-space ray directions of the same pixels.
    rays_cam = directions[0] @ cam2world[0, :3, :3]
    normal_along_ray = (out.normals.reshape(3, -1).T * rays_cam).sum(-1)
    torch.testing.assert_close(normal_along_ray, -along_ray[0], atol=1e-4, rtol=0)


class SphereGenerator:
    """Stand-in generator whose scene is a ball of radius 0.6 at the origin: depth is the exact
    ray-sphere intersection and the raw density grows inwards (10 * (0.6 - |p|))."""

    RADIUS = 0.6

    def __init__(self):
        self.rendering_kwargs = {"avg_camera_radius": 2.7, "avg_camera_pivot": [0.0, 0.0, 0.0],
                                 "depth_resolution": 8, "depth_resolution_importance": 8, "density_noise": 0.0}
        self.z_dim, self.img_resolution, self.neural_rendering_resolution = 4, 32, 32

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None):
        return torch.zeros(1, 2, 4)

    def planes(self, ws, noise_mode="const"):
        return torch.zeros(1, 3, 1, 1, 1)

    def render_neural(self, planes, c, resolution, options=None):
        cam2world, intrinsics = unpack_label(c)
        o, d = generate_rays(cam2world, intrinsics, resolution)
        b = (o * d).sum(-1)
        t = -b - torch.sqrt(b * b - ((o * o).sum(-1) - self.RADIUS ** 2))
        depth = t.reshape(1, 1, resolution, resolution)
        return torch.zeros(1, 32, resolution, resolution), depth

    def buffers(self):
        yield torch.zeros(1)

    def mesh_fields(self, planes):
        return MeshFields(lambda p: 10 * (self.RADIUS - p.norm(dim=-1)), lambda p: torch.zeros_like(p), (-1.0, 1.0), None)


@pytest.mark.parametrize("source,atol", [("density", 1e-4), ("depth", 2e-2)])
def test_normals_on_an_analytic_sphere(source, atol):
    """On a sphere both normal sources give the true outward normal in camera space (OpenCV axes),
    so every pixel faces the camera; depth-map normals up to finite-difference error."""
    renderer = GeneratorRenderer(SphereGenerator())
    args = make_args("normals", yaw=0.5, normals_source=source)
    args.view.pitch = -0.2
    out = renderer.render(args)
    cam2world, intrinsics = unpack_label(out.camera)
    origins, directions = generate_rays(cam2world, intrinsics, 32)
    points = origins + out.depth.reshape(1, -1, 1) * directions
    world = points[0] / points[0].norm(dim=-1, keepdim=True)
    expected = (world @ cam2world[0, :3, :3]).T.reshape(3, 32, 32)
    assert (out.normals[2] < 0).all()
    torch.testing.assert_close(out.normals, expected, atol=atol, rtol=0)


# --- meshes --------------------------------------------------------------------------------------

def test_mesh_mode(G, renderer):
    """The mesh has faces and its vertices lie in the tri-plane box; with mesh_level None its level
    is the identity's surface_level; a camera-only change returns the cached mesh object."""
    args = make_args("mesh")
    out = renderer.render(args)
    mesh = out.mesh
    assert out.image is None and out.image_raw is None and out.depth is None
    lo, hi = G.mesh_fields(renderer.identity_planes(args)[1]).bounds
    assert (lo, hi) == (-G.rendering_kwargs["box_warp"] / 2, G.rendering_kwargs["box_warp"] / 2)
    assert len(mesh.faces) > 0 and mesh.faces.max() < len(mesh.vertices)
    assert (mesh.vertices >= lo - 1e-5).all() and (mesh.vertices <= hi + 1e-5).all()
    _, planes = renderer.identity_planes(args)
    assert mesh.level == pytest.approx(renderer.surface_level(planes), abs=1e-6)
    assert mesh.vertex_colors is None

    moved = make_args("mesh", yaw=0.6)
    moved.view.pitch = 0.2
    again = renderer.render(moved)
    assert again.backbone_cached and again.mesh is mesh
    assert not torch.equal(again.camera, out.camera)


def test_mesh_level_resolution_and_colors(G_density):
    """An explicit mesh_level is used and recorded; level, resolution and colours are part of the
    mesh cache key; colours are uint8 per vertex."""
    renderer = GeneratorRenderer(G_density)
    auto = renderer.render(make_args("mesh")).mesh
    fixed = renderer.render(make_args("mesh", mesh_level=2.0)).mesh
    assert fixed.level == 2.0 and fixed is not auto
    assert len(fixed.vertices) != len(auto.vertices)
    finer = renderer.render(make_args("mesh", mesh_level=2.0, mesh_resolution=MESH_RES + 8))
    assert finer.mesh is not fixed
    colored = renderer.render(make_args("mesh", mesh_level=2.0, mesh_colors=True)).mesh
    assert colored is not fixed
    assert colored.vertex_colors.shape == (len(colored.vertices), 3)
    assert colored.vertex_colors.dtype == np.uint8


def test_surface_level_is_the_median_density_at_the_rendered_surface(G, renderer, G_density):
    """surface_level is the median raw sigma at the expected surface points of the nearer half of
    the frontal view's pixels for a density model; an SDF model's (the bundled one) is its zero level."""
    assert G.renderer.sdf and renderer.surface_level(renderer.identity_planes(make_args())[1]) == 0.0
    G, renderer = G_density, GeneratorRenderer(G_density)
    _, planes = renderer.identity_planes(make_args())
    camera = camera_label(CameraPose(), G.rendering_kwargs, "cpu")
    with torch.no_grad():
        _, depth = G.render_neural(planes, camera, G.neural_rendering_resolution)
        origins, directions = generate_rays(*unpack_label(camera), G.neural_rendering_resolution)
        sigma = G.run_decoder(planes, origins + depth.reshape(1, -1, 1) * directions, directions)["sigma"]
    near = depth.reshape(-1) <= depth.median()
    assert renderer.surface_level(planes) == pytest.approx(float(sigma.reshape(-1)[near].median()), abs=1e-5)


# --- camera labels -------------------------------------------------------------------------------

def test_camera_label_frontal(G):
    """yaw = pitch = 0 puts the camera on the model's frontal (+z) axis at the average radius from
    the world origin, looking at the average pivot, with the pose's pinhole focal length."""
    opts = G.rendering_kwargs
    pose = CameraPose()
    label = camera_label(pose, opts, "cpu")
    radius, pivot = float(opts["avg_camera_radius"]), list(opts["avg_camera_pivot"])
    assert torch.equal(label, orbit_label(0.0, 0.0, radius, pivot, fov_to_focal(pose.fov_degrees)))
    cam2world, intrinsics = unpack_label(label)
    position = cam2world[0, :3, 3]
    torch.testing.assert_close(position, torch.tensor([0.0, 0.0, radius]), atol=1e-5, rtol=0)
    forward = cam2world[0, :3, 2]
    to_pivot = torch.tensor(pivot) - position
    torch.testing.assert_close(forward, to_pivot / to_pivot.norm(), atol=1e-6, rtol=0)
    assert intrinsics[0, 0, 0] == pytest.approx(4.2647, abs=1e-4)
    assert intrinsics[0, 0, 2] == intrinsics[0, 1, 2] == 0.5


def test_camera_label_explicit_radius_pivot_and_defaults():
    """Explicit radius/pivot are used as given; None takes the rendering_kwargs averages."""
    opts = {"avg_camera_radius": 2.0, "avg_camera_pivot": [0.0, 0.1, 0.0]}
    pose = CameraPose(yaw=0.3, pitch=-0.2, fov_degrees=20.0)
    torch.testing.assert_close(camera_label(pose, opts, "cpu"),
                               orbit_label(0.3, -0.2, 2.0, [0.0, 0.1, 0.0], fov_to_focal(20.0)), atol=0, rtol=0)
    explicit = CameraPose(yaw=0.3, pitch=-0.2, radius=3.5, pivot=(0.1, 0.0, 0.2), fov_degrees=20.0)
    label = camera_label(explicit, opts, "cpu")
    torch.testing.assert_close(label, orbit_label(0.3, -0.2, 3.5, [0.1, 0.0, 0.2], fov_to_focal(20.0)),
                               atol=0, rtol=0)
    assert float(unpack_label(label)[0][0, :3, 3].norm()) == pytest.approx(3.5, abs=1e-5)
    assert label.device.type == "cpu" and label.shape == (1, 25)
    assert math.isclose(float(unpack_label(label)[1][0, 0, 0]), fov_to_focal(20.0), rel_tol=1e-6)


def test_renderer_camera_uses_the_generator_averages(G, renderer):
    """GeneratorRenderer.camera is camera_label with the generator's rendering_kwargs."""
    pose = CameraPose(yaw=-0.4, pitch=0.1)
    assert torch.equal(renderer.camera(pose), camera_label(pose, G.rendering_kwargs, "cpu"))
