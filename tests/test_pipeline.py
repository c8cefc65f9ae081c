"""The modular generator pipeline (models/pipeline.py and its configs, embedders, checkpoints,
renderer and batch tools), run on every CPU-sized ``<method>-tiny`` preset.

Random-weight generators are built under a fixed torch seed, so every run sees the same networks.
Random weights say nothing about what a *trained* model renders, so the geometry is also checked on
analytic fields injected into otherwise real generators (an SDF sphere for StyleSDF, a radial
manifold field for GRAM, linear planes for the tri-plane embedder, a known volume for VolumeGAN's
embedder). Every tolerance of those cases is derived in its comments.

Facts used (../shared/docs/methods.md §3-4): StyleSDF's density sigma = sigmoid(-d / alpha) / alpha
with the last-delta (NeRF) quadrature; GRAM's crossing rule s_{k+1} <= l <= s_k, its linear root,
constant interval and opaque background plane at z = -0.12; EG3D's plane matrices (the official
third plane projects to (z, x), the corrected one to (z, y)) and EpiGRAF's align_corners=True;
VolumeGAN's volume features concatenated with NeRF PE of xyz.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from models.build import build_pipeline
from models.checkpoint import load_generator, open_generator, save_generator
from models.errors import CheckpointError
from models.methods import PIPELINE_METHODS, pipeline_preset
from models.pipeline import PipelineGenerator
from models.pipeline_config import PipelineConfig, with_component
from models.volume_rendering import ReLUDensity
from ops.camera import generate_rays, unpack_label
from ops.siren import positional_encoding
from renderers.render_args import RenderArgs
from renderers.renderer import GeneratorRenderer

TINY = tuple(f"{method}-tiny" for method in PIPELINE_METHODS) + ("eg3d-tiny",)
"""Every pipeline method at CPU size, plus EG3D's components as a pipeline."""
BUILD_SEED = 3  # torch seed of every generator built here (all nine render a non-empty scene)
MESH_RES = 32


@pytest.fixture(autouse=True)
def no_grad():
    """Everything runs without autograd, as the viewer does (normals enable it locally)."""
    with torch.no_grad():
        yield


def fresh(name: str) -> PipelineGenerator:
    """A newly built tiny generator in eval mode (for tests that change it)."""
    torch.manual_seed(BUILD_SEED)
    return build_pipeline(name).eval().requires_grad_(False)


_SHARED: dict[str, PipelineGenerator] = {}


def shared(name: str) -> PipelineGenerator:
    """One generator per preset for the read-only tests of this module."""
    if name not in _SHARED:
        _SHARED[name] = fresh(name)
    return _SHARED[name]


def latents(G, n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))


def two_cameras(G) -> torch.Tensor:
    """[2, 25]: two different orbit cameras at the model's radius, pivot and field of view."""
    return torch.cat([G.default_camera(yaw=0.15, pitch=-0.05), G.default_camera(yaw=-0.1, pitch=0.1)])


def rays(camera: torch.Tensor, resolution: int, grid: str = "centers") -> tuple[torch.Tensor, torch.Tensor]:
    cam2world, intrinsics = unpack_label(camera)
    return generate_rays(cam2world, intrinsics, resolution, grid=grid)


def miss_distance(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Closest approach of each ray to the world origin (directions are unit)."""
    along = (origins * directions).sum(-1, keepdim=True)
    return torch.linalg.vector_norm(origins - along * directions, dim=-1)


# --- 1. every preset speaks the EG3D generator API ---------------------------------------------------

@pytest.mark.parametrize("name", TINY)
def test_preset_builds_with_the_documented_shapes(name):
    G = shared(name)
    assert isinstance(G, PipelineGenerator) and G.config.preset == name
    assert G.config == pipeline_preset(name)
    z, c = latents(G), two_cameras(G)
    ws = G.mapping(z, c)
    assert ws.shape == (2, G.num_ws, G.w_dim)
    out = G.synthesis(ws, c)
    R, r = G.img_resolution, G.neural_rendering_resolution
    assert out["image"].shape == (2, 3, R, R)
    assert out["image_raw"].shape == (2, 3, r, r)
    assert out["image_depth"].shape == (2, 1, r, r)
    for key, value in out.items():
        assert torch.isfinite(value).all(), key
    assert not torch.equal(out["image"][0], out["image"][1])  # two identities, two views


@pytest.mark.parametrize("name", TINY)
def test_depth_lies_in_the_ray_range(name):
    """The rendered depth is a weighted mean of sample depths, so its range follows from the
    integrator. Midpoint (EG3D) normalises by the opacity and clamps to the samples: [near, far] for
    every ray. The last-delta (NeRF) weights sum to the opacity; an opaque ray's depth is in
    [near, far], a transparent one's is at least near x opacity (sum w t, unnormalised, as pi-GAN
    has it) and at most far. GRAM composites manifold hits (inside [near, far]) in front of its
    opaque background plane, so its opacity is 1 and its depth lies between near and the plane's
    distance along the ray (which, from an oblique camera, can be nearer than far: the hits behind
    it get no weight)."""
    G = shared(name)
    z, c = latents(G), two_cameras(G)
    r = G.neural_rendering_resolution
    ws = G.mapping(z, c)
    out = G.synthesis(ws, c)
    origins, directions = rays(c, r, G.config.renderer.pixel_grid)  # the model's own pixel grid
    result = G.render_rays(G.planes(ws), origins, directions)
    near, far = float(G.rendering_kwargs["ray_start"]), float(G.rendering_kwargs["ray_end"])
    if G.config.points.depth_along_axis:  # StyleSDF: near/far are depths along the optical axis
        result = G.render_composite(G.planes(ws), c, r)
        cosine = (directions * c[:, None, [2, 6, 10]]).sum(-1)  # OpenCV: camera z is the third column
        near, far = near, far / float(cosine.min())
    depth = result.depth[..., 0]
    opacity = result.weights.sum(2)[..., 0]
    # synthesis renders exactly these rays in raster order
    assert torch.allclose(out["image_depth"].reshape(2, -1), depth, atol=1e-6)

    eps = 1e-5
    assert opacity.max() > 0.01, "the scene is empty: the range check below would be vacuous"
    assert torch.all(opacity <= 1 + 1e-5)
    integrator = G.config.integrator.kind
    if integrator == "midpoint":
        assert torch.all(depth >= near - eps) and torch.all(depth <= far + eps)
    elif integrator == "last_delta":
        assert torch.all(depth >= near * opacity - eps) and torch.all(depth <= far + eps)
        opaque = opacity > 1 - 1e-6
        assert torch.all(depth[opaque] >= near - eps)
    else:
        assert integrator == "constant_delta" and G.config.embedder.kind == "manifold"
        plane_z = -0.12 * G.config.points.box_side / 0.24
        plane_depth = (plane_z - origins[..., 2]) / directions[..., 2]
        assert torch.all(plane_depth > near)
        assert torch.allclose(opacity, torch.ones_like(opacity), atol=1e-5)
        assert torch.all(depth >= near - eps) and torch.all(depth <= plane_depth + eps)


@pytest.mark.parametrize("name", TINY)
def test_eg3d_style_calls(name):
    G = shared(name)
    z, c = latents(G), two_cameras(G)
    ws = G.mapping(z, c)
    full = G(z, c)
    parts = G.synthesis(ws, c)
    for key in ("image", "image_raw", "image_depth"):
        assert torch.equal(full[key], parts[key]), key

    half = G.config.points.box_side / 2
    xyz = (torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1) * half
    dirs = torch.nn.functional.normalize(-xyz - torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    sampled = G.sample(xyz, dirs, z, c)
    mixed = G.sample_mixed(xyz, dirs, ws)
    assert sampled["sigma"].shape == mixed["sigma"].shape == (2, 50, 1)
    assert sampled["rgb"].shape[:2] == (2, 50) and sampled["rgb"].shape[2] >= 3
    for key in mixed:
        assert torch.equal(sampled[key], mixed[key]), key
        assert torch.isfinite(mixed[key]).all(), key
    if G.config.decoder.kind == "sdf_siren":
        assert mixed["sdf"].shape == (2, 50, 1)
        alpha = G.renderer.sdf_alpha.abs()
        scale = G.config.embedder.coordinate_scale  # density per world unit; the SDF is in normalised units
        if not G.config.density.per_world_unit:  # StyleSDF's code: per normalised unit
            scale = 1.0
        assert torch.allclose(mixed["sigma"], scale * torch.sigmoid(-mixed["sdf"] / alpha) / alpha, rtol=1e-5)
    else:
        assert "sdf" not in mixed


@pytest.mark.parametrize("name", TINY)
def test_truncation_to_the_average(name):
    G = shared(name)
    c = G.default_camera(3)
    z = latents(G, 3)
    free = G.mapping(z, c)
    assert not torch.allclose(free[0], free[1])
    ws = G.mapping(z, c, truncation_psi=0)
    assert torch.equal(ws[0], ws[1]) and torch.equal(ws[0], ws[2])
    if G.config.mapping.kind == "none":  # GRAF / GIRAFFE: z itself, whose average is 0
        assert torch.equal(ws, torch.zeros_like(ws))
    # psi = 0.5 lands halfway between the average and the free ws (StyleSDF's decoder ws are its own
    # mapping of the truncated renderer w, truncated again: only the renderer's are linear in psi)
    stop = G.ws_slices[2].start if G.config.upsampler.kind == "stylesdf_decoder" else G.num_ws
    half = G.mapping(z, c, truncation_psi=0.5)
    assert torch.allclose(half[:, :stop], ((free + ws) / 2)[:, :stop], atol=1e-6)
    if G.num_ws > 1:  # the cutoff truncates only the first layers
        cut = G.mapping(z, c, truncation_psi=0, truncation_cutoff=1)
        assert torch.equal(cut[:, :1], ws[:, :1]) and torch.equal(cut[:, 1:stop], free[:, 1:stop])


@pytest.mark.parametrize("name", TINY)
def test_eval_mode_is_deterministic(name):
    G = fresh(name)
    z, c = latents(G), two_cameras(G)
    a, b = G(z, c), G(z, c)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Training turns the sample jitter on (it is what eval mode must leave out).
    if G.config.points.perturb != "none":
        G.train()
        torch.manual_seed(0)
        jittered = G(z, c)
        assert not torch.equal(jittered["image_depth"], a["image_depth"])


# --- 2. checkpoints -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TINY)
def test_checkpoint_round_trip(name, tmp_path):
    G = fresh(name)
    # A live option the viewer edited is folded into the saved config.
    G.rendering_kwargs["depth_resolution"] = int(G.rendering_kwargs["depth_resolution"]) + 2
    path = tmp_path / f"{name}.safetensors"
    save_generator(G, path, metadata={"kimg": 12})
    loaded = load_generator(path)
    assert type(loaded) is PipelineGenerator
    assert loaded.config == G.current_config()
    assert loaded.config.points.num_coarse == G.rendering_kwargs["depth_resolution"]
    assert loaded.rendering_kwargs == G.rendering_kwargs
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    state, reloaded = G.state_dict(), loaded.state_dict()
    assert state.keys() == reloaded.keys()
    assert all(torch.equal(state[k], reloaded[k]) for k in state)
    z, c = latents(G), two_cameras(G)
    a, b = G(z, c), loaded(z, c)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_open_generator_builds_a_preset_by_name():
    G = open_generator("pigan-tiny")
    again = open_generator("preset:pigan-tiny")
    assert type(G) is PipelineGenerator and G.config == pipeline_preset("pigan-tiny")
    assert not G.training
    # seeded: the same random weights every time
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in G.state_dict().items())


def _rewrite_config(path, edit) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    edit(config)
    meta["config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=meta)


def test_unknown_decoder_kind_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_generator(shared("pigan-tiny"), path)
    _rewrite_config(path, lambda cfg: cfg["decoder"].update(kind="hyper_siren"))
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid model config")
    assert "unknown decoder 'hyper_siren'; expected one of" in message and "sdf_siren" in message
    assert "\n" not in message


def test_unknown_config_key_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_generator(shared("gram-tiny"), path)
    _rewrite_config(path, lambda cfg: cfg["embedder"].update(warp_factor=2))
    with pytest.raises(CheckpointError, match="invalid model config.*unknown embedder 'manifold' config keys: warp_factor"):
        load_generator(path)


# --- 3. the viewer's renderer -----------------------------------------------------------------------

def _check_normals(normals: torch.Tensor, r: int, solid: torch.Tensor | None = None) -> None:
    """[3, r, r] normals are unit vectors, except zero vectors where the geometry is degenerate
    (``ops.normals`` documents both sources so: flat depth, or a vanishing field gradient); and
    unit wherever ``solid`` [r, r] says the pixel and its 8 neighbours are well defined."""
    assert normals.shape == (3, r, r) and torch.isfinite(normals).all()
    length = normals.norm(dim=0)
    unit = (length - 1).abs() < 1e-4
    assert torch.all(unit | (length < 1e-6))
    assert unit.any()
    if solid is not None:
        assert torch.all(unit[solid])


def _opaque_neighbourhoods(G, scene, camera: torch.Tensor, r: int) -> torch.Tensor:
    """[r, r] bool: pixels whose 3 x 3 neighbourhood is opaque (> 0.99), interior pixels only."""
    origins, directions = rays(camera, r, G.config.renderer.pixel_grid)
    opacity = G.render_rays(scene, origins, directions).weights.sum(2).reshape(1, 1, r, r)
    solid = -torch.nn.functional.max_pool2d(-opacity, 3, 1, 1)[0, 0] > 0.99
    solid[[0, -1], :] = False
    solid[:, [0, -1]] = False
    return solid


@pytest.mark.parametrize("name", TINY)
def test_renderer_every_mode(name):
    G = shared(name)
    renderer = GeneratorRenderer(G)
    R, r = G.img_resolution, G.neural_rendering_resolution

    args = RenderArgs(mode="rgb", mesh_resolution=MESH_RES)
    out = renderer.render(args)
    assert out.image.shape == (3, R, R) and out.image_raw.shape == (3, r, r) and out.depth.shape == (1, r, r)
    assert torch.isfinite(out.image).all() and torch.isfinite(out.depth).all()
    # the viewer's picture is the generator's own synthesis of that identity and camera
    ws = renderer.latent_ws(args.latent, args.cond)
    expected = G.synthesis(ws, renderer.camera(args.view))
    assert torch.allclose(out.image, expected["image"][0], atol=1e-5)
    assert torch.allclose(out.depth, expected["image_depth"][0], atol=1e-6)

    depth = renderer.render(RenderArgs(mode="depth"))
    lo, hi = depth.depth_range
    assert lo <= hi and lo == pytest.approx(float(depth.depth.min())) and hi == pytest.approx(float(depth.depth.max()))

    _, scene = renderer.identity_planes(RenderArgs())
    solid = _opaque_neighbourhoods(G, scene, out.camera, r)
    # Depth normals are well defined on any opaque patch; the gradient of an untrained field may
    # vanish anywhere (ReLU), so density normals are checked on the analytic sphere below.
    _check_normals(renderer.render(RenderArgs(mode="normals", normals_source="depth")).normals, r, solid)
    _check_normals(renderer.render(RenderArgs(mode="normals", normals_source="density")).normals, r)

    side = renderer.render(RenderArgs(mode="side"))
    assert side.image.shape == (3, R, R) and side.depth.shape == (1, r, r) and side.depth_range is not None

    mesh = renderer.render(RenderArgs(mode="mesh", mesh_resolution=MESH_RES)).mesh
    fields = G.mesh_fields(scene)
    lo, hi = fields.bounds
    assert len(mesh.faces) > 0 and np.isfinite(mesh.vertices).all()
    assert mesh.vertices.min() >= lo - 1e-6 and mesh.vertices.max() <= hi + 1e-6
    assert (lo, hi) == pytest.approx((-G.config.points.box_side / 2, G.config.points.box_side / 2))
    if G.config.decoder.kind == "sdf_siren":
        assert fields.level == 0.0 and mesh.level == 0.0  # the SDF's zero level set
    elif G.config.embedder.kind == "manifold":
        levels = [float(v) for v in G.embedder.levels]
        assert fields.inside == "below"
        assert mesh.level in levels and mesh.level == G.embedder.dominant_level(G, scene)
    else:
        # The frontal view's surface level, or the box's median where that level has no surface in the box
        _, grid, _ = renderer.identity_mesh(scene, MESH_RES, None, False)
        level = renderer.surface_level(scene)
        expected = level if grid.min() < level < grid.max() else float(np.median(grid))
        assert fields.level is None and mesh.level == pytest.approx(expected)


@pytest.mark.parametrize("name", ["gram-tiny", "volumegan-tiny", "epigraf-tiny", "giraffe-tiny"])
def test_render_batch_matches_single_renders(name):
    """Several identities in one pass (scenes sliced and concatenated: no features, a feature
    volume, tri-planes, a composition) give each request's own picture."""
    G = shared(name)
    requests = []
    for seed, yaw in ((0, 0.0), (7, 0.3), (2, -0.2)):
        args = RenderArgs(mode="side")
        args.latent.seed_x, args.view.yaw = seed, yaw
        requests.append(args)
    batch = GeneratorRenderer(G, identities=3).render_batch(requests)
    for args, out in zip(requests, batch):
        single = GeneratorRenderer(G).render(args)
        assert torch.allclose(out.image, single.image, atol=1e-5)
        assert torch.allclose(out.depth, single.depth, atol=1e-5)
    assert not torch.allclose(batch[0].image, batch[1].image)


def test_frozen_components_stay_frozen():
    config = pipeline_preset("stylesdf-tiny")
    config.frozen = ("embedder", "decoder", "renderer")  # StyleSDF stage 2: only the upsampler trains
    G = PipelineGenerator(config).requires_grad_(True)
    assert not any(p.requires_grad for p in G.decoder.parameters())
    assert not G.renderer.sdf_alpha.requires_grad
    assert all(p.requires_grad for p in G.upsampler.parameters())
    assert all(p.requires_grad for p in G.mapping_network.parameters())


@pytest.mark.parametrize("name", ["gram-tiny", "pigan-tiny", "stylesdf-tiny"])
def test_auto_ray_bounds_render_and_mesh(name):
    """near = far = 'auto' (the ray-box intersection, PointSamplerConfig) works everywhere the
    fixed range does: rendering, the mesh level (GRAM: its dominant manifold) and the mesh."""
    config = pipeline_preset(name)
    config.points.near = config.points.far = "auto"
    torch.manual_seed(BUILD_SEED)
    G = PipelineGenerator(config).eval()
    out = G(latents(G), two_cameras(G))
    assert torch.isfinite(out["image_depth"]).all()
    renderer = GeneratorRenderer(G)
    _, scene = renderer.identity_planes(RenderArgs())
    fields = G.mesh_fields(scene)
    if name == "gram-tiny":
        assert fields.level in [float(v) for v in G.embedder.levels]
    mesh = renderer.render(RenderArgs(mode="mesh", mesh_resolution=MESH_RES)).mesh
    assert len(mesh.faces) > 0


# --- 4a. StyleSDF: an exact SDF sphere -----------------------------------------------------------

SPHERE_R = 0.06  # world radius of the sphere at the origin
SDF_ALPHA = 0.005  # the learnable alpha, in the decoder's (normalised) units
SDF_SAMPLES = 512
SDF_RES = 15  # odd: pixel 7 looks straight down the axis


def test_stylesdf_sphere_depth_silhouette_normals_and_mesh():
    """Derivation. The decoder's SDF is d = s (|x| - R) with s = coordinate_scale (it sees
    coordinates x s, and the SDF is in those units), so along the central ray (camera at distance
    1, unit direction) d = -s u with u = t - t0 and t0 = 1 - R. The renderer converts the density
    sigmoid(-d / alpha) / alpha from per normalised unit to per world unit (x s), so
    sigma = (1 / a) sigmoid(u / a) with a = alpha / s, the optical depth is tau(u) = softplus(u / a)
    and the transmittance T = sigmoid(-u / a). With S = sigmoid(-Y), Y = u / a, P(Y > y) = S is
    uniform: E[Y] = E[-log S] + E[log(1 - S)] = 1 - H_1 = 0. Hence the expected depth is exactly
    t0: an exact SDF renders at its zero level (with the units mixed it would sit a fog of mean free
    path alpha behind it, which is what this test caught). The StyleSDF preset now follows the
    official code (density per normalised unit, depths along the optical axis, force_background):
    this derivation is for our per-world-unit convention, which legacy configs keep.

    Quadrature. With the last-delta rule on samples t_i = near + i h, depth = near + h sum_{i>=1} T_i
    (the ray leaves the sphere at T ~ e^-(0.12 s / alpha)). sigma rises along the ray up to the
    centre, so the left-Riemann optical depth lies between tau(t_{i-1}) and tau(t_i), giving
    T(t_i) <= T_i <= T(t_{i-1}); and T falls, so both Riemann sums of T are within h T(near) = h of
    the integral. The error is therefore at most h = 0.24 / 511 = 4.7e-4. The region past the
    centre, where sigma falls again, carries a negligible T and changes the depth by < 1e-6.
    """
    config = pipeline_preset("stylesdf-tiny")
    config.density = config.density.replace(per_world_unit=True, alpha_as_is=False)
    config.points = config.points.replace(offset_grid=False, depth_along_axis=False)
    config.integrator = config.integrator.replace(force_background=False, depth_sum=False)
    torch.manual_seed(BUILD_SEED)
    G = PipelineGenerator(config).eval().requires_grad_(False)
    scale = float(G.config.embedder.coordinate_scale)
    channels = G.feature_channels

    def exact_sphere(scene, points, directions):
        sdf = (torch.linalg.vector_norm(points, dim=-1, keepdim=True) - SPHERE_R) * scale
        return {"rgb": torch.full(points.shape[:2] + (channels,), 0.5), "raw": sdf}

    G._decode = exact_sphere
    G.renderer.sdf_alpha.fill_(SDF_ALPHA)
    G.rendering_kwargs["depth_resolution"] = SDF_SAMPLES
    near, far = float(G.rendering_kwargs["ray_start"]), float(G.rendering_kwargs["ray_end"])
    h = (far - near) / (SDF_SAMPLES - 1)

    camera = G.default_camera()
    scene = G.planes(G.mapping(latents(G, 1), camera))
    _, depth = G.render_neural(scene, camera, SDF_RES)
    origins, directions = rays(camera, SDF_RES)
    result = G.render_rays(scene, origins, directions)
    assert torch.allclose(result.depth.reshape(-1), depth.reshape(-1), atol=1e-6)
    opacity = result.weights.sum(2).reshape(-1)

    centre = SDF_RES // 2 * SDF_RES + SDF_RES // 2
    assert miss_distance(origins, directions)[0, centre] < 1e-6  # really the axis
    expected = 1 - SPHERE_R  # 1 - H_1 = 0: no fog offset (see the docstring)
    got = float(depth.reshape(-1)[centre])
    assert abs(got - expected) <= h + 2e-5

    # Silhouette. A ray passing >= 0.01 outside the sphere sees d >= 0.01 s = 16.7 alpha, so
    # sigma <= s e^-16.7 / alpha = 1e-4 per world unit over at most 0.24: opacity <= 2.4e-5.
    # A ray passing >= 0.01 inside crosses >= 2 sqrt(0.055^2 - 0.05^2) = 0.046 where d <= -8.3
    # alpha, i.e. sigma >= 0.9998 s / alpha: optical depth >= 70, opacity ~ 1 (less h sigma).
    miss = miss_distance(origins, directions).reshape(-1)
    outside, inside = miss > SPHERE_R + 0.01, miss < SPHERE_R - 0.01
    assert outside.sum() > 50 and inside.sum() > 4
    assert opacity[outside].max() < 2.5e-5
    # no surface there: depth ~0 (sum w t, unnormalised) or the far end (normalised, as EG3D)
    missed = depth.reshape(-1)[outside]
    assert torch.all((missed <= 1e-5 * far) | ((missed - far).abs() <= 1e-4))
    assert opacity[inside].min() > 0.999

    # Normals from the field: the gradient of an exact SDF is radial, wherever it is evaluated.
    renderer = GeneratorRenderer(G)
    normals = renderer.density_normals(scene, camera, depth)  # [3, r, r] camera space
    points = origins[0] + depth.reshape(-1, 1) * directions[0]
    radial = torch.nn.functional.normalize(points, dim=-1)
    cam2world, _ = unpack_label(camera)
    radial_camera = radial @ cam2world[0, :3, :3]  # R^T n for each row
    got_normals = normals.reshape(3, -1).T
    assert torch.allclose(got_normals[inside], radial_camera[inside], atol=1e-4)
    assert torch.allclose(got_normals[centre], torch.tensor([0.0, 0.0, -1.0]), atol=1e-4)  # faces the camera

    # Mesh: the zero level of the SDF. The grid value of -SDF along a cube edge is linear
    # interpolated; f = |x| - R has f'' <= 1 / |x| <= 1 / (R - v) on an edge near the surface, so
    # a vertex where the interpolant vanishes has | |x| - R | <= v^2 / (8 (R - v)) (v: voxel).
    mesh, _, bounds = renderer.identity_mesh(scene, MESH_RES, None, False)
    assert mesh.level == 0.0
    voxel = (bounds[1] - bounds[0]) / (MESH_RES - 1)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert len(radius) > 100
    assert np.abs(radius - SPHERE_R).max() <= voxel**2 / (8 * (SPHERE_R - voxel)) + 1e-5


# --- 4b. GRAM: an analytic radial manifold field ------------------------------------------------

OUTER_RADIUS = 0.08  # the outermost level's sphere
FIELD_SLOPE = 250.0  # ds / d|x|


def test_gram_radial_manifolds_depth_and_mesh():
    """s(x) = l_0 + b (|x| - r_0) with b > 0: it falls along every inward ray (the direction GRAM's
    crossing rule s_{k+1} <= l <= s_k accepts), level l is the sphere |x| = r_0 + (l - l_0) / b, the
    outermost level l_0 = levels[0] is the sphere r_0 = 0.08 and the innermost (8) 0.02. With a
    constant, very high density (alpha = 1 - e^-40 = 1) the first valid hit takes all the weight, so
    a ray that meets the outer sphere has depth t_c - sqrt(r_0^2 - D^2) (t_c: distance to the
    closest approach, D: its distance from the centre), and every other ray stops on the
    background plane.

    Tolerance. Between the two samples around the hit GRAM replaces f(t) = |x(t)| by its chord.
    f'' = D^2 / |x|^3 and f' = (t - t_c) / |x|; over the bracketing interval (within h of the hit,
    h = 0.24 / 11 = 0.022) |t - t_c| >= g = sqrt(r_0^2 - D^2) - h and |x| >= m = sqrt(D^2 + g^2),
    so the root moves by at most (h^2 / 8) (D^2 / m^3) / (g / m). On the axis (D = 0) the chord is
    exact; we test the rays with D <= r_0 / 2, where the bound is <= 5e-4.
    """
    G = fresh("gram-tiny")
    levels = G.embedder.levels
    l0 = float(levels[0])
    assert l0 == max(float(v) for v in levels)

    def radial_field(points):
        return l0 + FIELD_SLOPE * (torch.linalg.vector_norm(points, dim=-1) - OUTER_RADIUS)

    def opaque(features, directions, ws, codes=None):
        n, m = features.shape[:2]
        return {"rgb": torch.full((n, m, 3), 0.25), "raw": torch.full((n, m, 1), 1000.0)}

    G.embedder.field = radial_field
    G.decoder.forward = opaque

    res = 15
    camera = G.default_camera()
    scene = G.planes(G.mapping(latents(G, 1), camera))
    _, depth = G.render_neural(scene, camera, res)
    depth = depth.reshape(-1).double()
    origins, directions = rays(camera, res, G.config.renderer.pixel_grid)
    o, d = origins[0].double(), directions[0].double()
    t_c = -(o * d).sum(-1)
    D = miss_distance(origins, directions)[0].double()

    near, far = float(G.rendering_kwargs["ray_start"]), float(G.rendering_kwargs["ray_end"])
    h = (far - near) / (int(G.rendering_kwargs["depth_resolution"]) - 1)
    central = D <= OUTER_RADIUS / 2
    assert central.sum() >= 9
    chord = torch.sqrt((OUTER_RADIUS**2 - D**2).clamp_min(0))
    expected = t_c - chord
    g = chord - h
    m = torch.sqrt(D**2 + g**2)
    tolerance = h**2 / 8 * (D**2 / m**3) / (g / m) + 1e-5
    error = (depth - expected).abs()
    assert torch.all(error[central] <= tolerance[central])
    centre = res // 2 * res + res // 2
    assert abs(float(depth[centre]) - (1 - OUTER_RADIUS)) < 1e-5  # the chord is exact on the axis

    # Rays that miss every manifold stop on the opaque background plane z = -0.12.
    misses = D > OUTER_RADIUS + 0.005
    assert misses.sum() > 50
    plane = (-0.12 - o[:, 2]) / d[:, 2]
    assert torch.allclose(depth[misses], plane[misses], atol=1e-5)

    # The mesh: the dominant manifold is the outermost sphere (every level is equally opaque and
    # it is met by the most rays); its level set is solid below (inside='below'). Vertices lie on
    # |x| = r_0 within v^2 / (8 (r_0 - v)) (the argument of the SDF case: (s - l_0) / b = |x| - r_0).
    fields = G.mesh_fields(scene)
    assert fields.inside == "below" and fields.level == l0
    mesh, _, bounds = GeneratorRenderer(G).identity_mesh(scene, MESH_RES, None, False)
    assert mesh.level == l0
    voxel = (bounds[1] - bounds[0]) / (MESH_RES - 1)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert len(radius) > 100
    assert np.abs(radius - OUTER_RADIUS).max() <= voxel**2 / (8 * (OUTER_RADIUS - voxel)) + 1e-5
    # and its faces point outwards: the signed volume of the closed sphere is positive (~4/3 pi r^3)
    v = mesh.vertices[mesh.faces].astype(np.float64)
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert volume == pytest.approx(4 / 3 * math.pi * OUTER_RADIUS**3, rel=0.05)


# --- 4b'. a density sphere: the automatic mesh level --------------------------------------------

DENSITY_R = 0.09  # covers ~58% of the model's frontal view (asin(0.09) = 5.2 of its 6 degrees)
DENSITY_SLOPE = 1e5  # raw density K (R - |x|): ReLU makes the outside empty


def test_automatic_mesh_level_of_a_density_sphere():
    """A pi-GAN generator whose density is K (R - |x|) holds a solid ball of radius R. Rays that
    hit it stop about sqrt(pi / (2 K)) = 0.004 inside (optical depth K s^2 / 2 head-on), where the
    raw density is ~K x 0.004 = 400; rays that miss it see no density at all.

    ``GeneratorRenderer.surface_level`` takes the median raw density at the expected surface
    points (camera + depth along the ray) of the nearer half of the frontal view's pixels. The ball
    covers more than half of the frame, so that nearer half is ball pixels: a positive level a few
    thousandths inside, whose mesh is a sphere just inside |x| = R. The empty pixels have no
    surface and must not rank as the nearest (EG3D's integrator puts them at the far end).
    """
    G = fresh("pigan-tiny")
    channels = G.feature_channels

    def density_ball(scene, points, directions):
        raw = DENSITY_SLOPE * (DENSITY_R - torch.linalg.vector_norm(points, dim=-1, keepdim=True))
        return {"rgb": torch.full(points.shape[:2] + (channels,), 0.5), "raw": raw}

    G._decode = density_ball
    G.rendering_kwargs["depth_resolution"] = 128
    renderer = GeneratorRenderer(G)
    _, scene = renderer.identity_planes(RenderArgs())

    out = renderer.render(RenderArgs(mode="depth", view=renderer.default_pose()))  # surface_level's view
    r = G.neural_rendering_resolution
    origins, directions = rays(out.camera, r, G.config.renderer.pixel_grid)
    D = miss_distance(origins, directions)[0]
    hit, empty = D < DENSITY_R - 0.005, D > DENSITY_R + 0.005
    assert 0.5 < (D < DENSITY_R).float().mean() < 0.75 and empty.float().mean() > 0.25
    depth = out.depth.reshape(-1)
    o, d = origins[0], directions[0]
    entry = -(o * d).sum(-1) - torch.sqrt((DENSITY_R**2 - D**2).clamp_min(0))
    assert torch.all(depth[hit] > entry[hit]) and torch.all(depth[hit] < entry[hit] + 0.02)

    level = renderer.surface_level(scene)
    assert 0 < level < DENSITY_SLOPE * 0.02, f"level {level:g} was not measured on the ball"
    # The raw density is linear in |x|, so the level set is the sphere |x| = R - level / K, and
    # marching cubes puts vertices on it within v^2 / (8 (r - v)) (see the SDF sphere above).
    mesh, _, bounds = renderer.identity_mesh(scene, MESH_RES, None, False)
    iso_radius = DENSITY_R - level / DENSITY_SLOPE
    voxel = (bounds[1] - bounds[0]) / (MESH_RES - 1)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radius - iso_radius).max() <= voxel**2 / (8 * (iso_radius - voxel)) + 1e-5


# --- 4c. the tri-plane embedder -----------------------------------------------------------------

# Plane i is sampled at the first two coordinates of x @ inv(M_i) (methods.md §3.1): for both sets
# M_0 and M_1 give (x, y) and (x, z); EG3D's third matrix [[0,0,1],[1,0,0],[0,1,0]] gives (z, x)
# again and the corrected [[0,0,1],[0,1,0],[1,0,0]] gives (z, y). EpiGRAF's (x, y), (x, z), (y, z) in its
# world (front on +x) are (z, y), (z, -x), (y, -x) in ours (front on +z).
PLANE_PAIRS = {"official": [(0, 1), (0, 2), (2, 0)], "corrected": [(0, 1), (0, 2), (2, 1)],
               "epigraf": [(2, 1), (2, 0), (1, 0)]}
PLANE_SIGNS = {"epigraf": [(1, 1), (1, -1), (1, -1)]}
"""Signs of the plane coordinates where not all +1."""


@pytest.mark.parametrize("name", ["epigraf-tiny", "eg3d-tiny"])
def test_triplane_embedder_reproduces_linear_planes(name):
    """Bilinear interpolation reproduces a linear function exactly between texel centres, so planes
    holding f_i(u, v) = a_i u + b_i v + c_i (u indexes width, v height, both in [-1, 1] over the
    box) give the plane average of the f_i at any point inside. Texel j sits at u = -1 + 2 j / (W - 1)
    with align_corners (EpiGRAF) and at -1 + (2 j + 1) / W without (EG3D), where points must stay
    half a texel inside the border."""
    G = shared(name)
    config = G.config.embedder
    assert (config.axes, config.align_corners) == (
        ("epigraf", True) if name == "epigraf-tiny" else ("official", False))
    embedder = G.embedder
    box = G.config.points.box_side
    C, W = embedder.channels, config.resolution
    gen = torch.Generator().manual_seed(5)
    a, b, c0 = (torch.randn(3, C, generator=gen) for _ in range(3))
    if config.align_corners:
        grid = -1 + 2 * torch.arange(W) / (W - 1)
        limit = 1.0
    else:
        grid = -1 + (2 * torch.arange(W) + 1) / W
        limit = 1 - 1 / W
    u, v = grid[None, :], grid[:, None]  # [1, W] columns, [W, 1] rows
    planes = torch.stack([a[p, :, None, None] * u + b[p, :, None, None] * v + c0[p, :, None, None] for p in range(3)])
    planes = planes[None].expand(2, -1, -1, -1, -1).contiguous()  # [N, 3, C, W, W]

    unit = (torch.rand(2, 200, 3, generator=gen) * 2 - 1) * limit  # grid coordinates
    points = unit * box / 2
    got = embedder(planes, points)
    signs = PLANE_SIGNS.get(config.axes, [(1, 1)] * 3)
    expected = sum(a[p] * si * unit[..., i, None] + b[p] * sj * unit[..., j, None] + c0[p]
                   for p, ((i, j), (si, sj)) in enumerate(zip(PLANE_PAIRS[config.axes], signs))) / 3
    assert got.shape == (2, 200, C)
    assert torch.allclose(got, expected, atol=2e-5)


# --- 4d. the feature-volume embedder -----------------------------------------------------------

def test_volume_embedder_reads_voxels_and_appends_pe():
    G = shared("volumegan-tiny")
    embedder, config = G.embedder, G.config.embedder
    n_vox = config.resolution
    C = config.channels
    lo, hi = (torch.tensor(b) for b in config.bounds)
    gen = torch.Generator().manual_seed(6)
    volume = torch.randn(2, C, n_vox, n_vox, n_vox, generator=gen)
    index = torch.randint(0, n_vox, (2, 30, 3), generator=gen)  # (x, y, z) voxel indices
    # Voxel (d, h, w) = (z, y, x) index is centred at lo + index * (hi - lo) / (n - 1): the bounds
    # are the corner voxels' centres (ops.feature_volume's convention). linspace hits both bounds
    # exactly; lo + 7 * step can round past hi, and the box is a hard mask (outside reads zero).
    axes = [torch.linspace(float(lo[a]), float(hi[a]), n_vox) for a in range(3)]
    points = torch.stack([axes[a][index[..., a]] for a in range(3)], dim=-1)
    features = embedder(volume, points)
    assert features.shape == (2, 30, C + 3 * (1 + 2 * config.pe_frequencies))
    voxels = torch.stack([volume[i][:, index[i, :, 2], index[i, :, 1], index[i, :, 0]].T for i in range(2)])
    assert torch.allclose(features[..., :C], voxels, atol=1e-5)
    pe = positional_encoding(points * config.coordinate_scale, config.pe_frequencies)
    assert torch.equal(features[..., C:], pe)

    # Halfway between two x-neighbours: their mean (trilinear); outside the box: as config.outside says.
    step = (hi - lo) / (n_vox - 1)
    i0 = torch.tensor([2, 3, 4])
    mid = (lo + i0 * step + torch.tensor([0.5, 0.0, 0.0]) * step).reshape(1, 1, 3).expand(2, 1, 3)
    between = embedder(volume, mid)[:, 0, :C]
    average = (volume[:, :, 4, 3, 2] + volume[:, :, 4, 3, 3]) / 2
    assert torch.allclose(between, average, atol=1e-5)
    far_out = (hi + 0.05).reshape(1, 1, 3).expand(2, 1, 3)
    outside = embedder(volume, far_out)[..., :C]
    if config.outside == "border":  # VolumeGAN's own sampler clamps to the border voxels
        assert torch.allclose(outside[:, 0], volume[:, :, -1, -1, -1], atol=1e-6)
    else:  # 'zero': the box is a hard mask
        assert torch.equal(outside, torch.zeros(2, 1, C))


# --- 5. component swaps --------------------------------------------------------------------------

SWAPS = [
    ("pigan-tiny", "embedder", "volume"),
    ("eg3d-tiny", "embedder", "volume"),
    ("gram-tiny", "decoder", "siren"),
    ("volumegan-tiny", "upsampler", "none"),
    ("epigraf-tiny", "embedder", "manifold"),
    ("graf-tiny", "embedder", "composition"),
    ("graf-tiny", "embedder", "giraffe_scene"),  # GIRAFFE's field network and boxes come with it
    ("pigan-tiny", "decoder", "sdf_siren"),
    ("stylenerf-tiny", "density", "softplus"),
    ("volumegan-tiny", "decoder", "siren"),  # FiLM mapping: the StyleGAN upsampler goes, rendering at full size
    ("gram-tiny", "embedder", "volume"),  # GramRF reads coordinates: pi-GAN's SIREN takes the features
]


EMBEDDER_CLASSES = {"coordinate": "CoordinateEmbedder", "triplane": "TriplaneEmbedder", "volume": "VolumeEmbedder",
                    "manifold": "ManifoldEmbedder", "composition": "CompositionEmbedder",
                    "giraffe_scene": "GiraffeSceneEmbedder", "stylenerf": "StyleNeRFEmbedder"}


@pytest.mark.parametrize("base,component,kind", SWAPS)
def test_component_swaps_build_and_render(base, component, kind):
    config = with_component(pipeline_preset(base), component, kind)
    assert getattr(config, component).kind == kind
    config.validate()
    torch.manual_seed(BUILD_SEED)
    G = PipelineGenerator(config).eval()
    assert type(G.embedder).__name__ == EMBEDDER_CLASSES[config.embedder.kind]
    z, c = latents(G), two_cameras(G)
    out = G(z, c)
    R, r = G.img_resolution, G.neural_rendering_resolution
    assert out["image"].shape == (2, 3, R, R) and out["image_depth"].shape == (2, 1, r, r)
    assert all(torch.isfinite(v).all() for v in out.values())
    rendered = GeneratorRenderer(G).render(RenderArgs(mode="side"))
    assert rendered.image.shape == (3, R, R) and torch.isfinite(rendered.depth).all()


@torch.no_grad()
def test_osg_sdf_head_renders_its_density_channel_as_an_sdf_of_bounded_width():
    """``osg_sdf`` (EG3D's tri-plane MLP as an SDF head, the default model's ``eg3d-sdf-tiny``):
    'raw' is a signed distance in world units, its density is sigmoid(-d / a) / a with
    a = min(|alpha|, ``alpha_max``), the bound holds whatever alpha learns, and a narrower alpha
    is used as it is. An SDF head needs an SDF density, and EG3D's density head refuses one."""
    from models.decoders import OSGSDFFieldDecoder
    from models.eg3d import eg3d_preset
    from models.methods.eg3d import from_eg3d
    from models.volume_rendering import SDFSigmoidDensity

    eg3d = from_eg3d(eg3d_preset("tiny"))
    config = eg3d.copy()
    config.decoder = OSGSDFFieldDecoder.Config(hidden=16, out_features=8)
    config.density = SDFSigmoidDensity.Config(alpha_init=0.03, alpha_max=0.03)
    config.validate()
    torch.manual_seed(BUILD_SEED)
    G = PipelineGenerator(config).eval()
    assert G.renderer.sdf and G.embedder.coordinate_scale == 1.0  # the SDF is in world units
    xyz = (torch.rand(2, 64, 3, generator=torch.Generator().manual_seed(2)) - 0.5) * 0.9
    dirs = torch.nn.functional.normalize(torch.randn_like(xyz), dim=-1)
    ws = G.mapping(latents(G, 2), G.default_camera(2))
    for stored, used in ((0.5, 0.03), (-0.5, 0.03), (0.01, 0.01)):
        G.renderer.sdf_alpha.fill_(stored)
        mixed = G.sample_mixed(xyz, dirs, ws)
        expected = torch.sigmoid(-mixed["sdf"] / used) / used
        assert torch.allclose(mixed["sigma"], expected, rtol=1e-5, atol=1e-6), stored
    assert mixed["sdf"].shape == (2, 64, 1) and mixed["rgb"].shape == (2, 64, 8)

    with pytest.raises(ValueError, match="decoder 'osg_sdf' and density 'softplus_shifted' do not match"):
        dataclasses.replace(config, density=eg3d.density).validate()
    with pytest.raises(ValueError, match="decoder 'osg' and density 'sdf_sigmoid' do not match"):
        dataclasses.replace(config, decoder=eg3d.decoder).validate()


def _sdf_with_relu() -> None:
    config = pipeline_preset("stylesdf-tiny")
    config.density = ReLUDensity.Config()
    config.validate()


@pytest.mark.parametrize("make,message", [
    (_sdf_with_relu, r"decoder 'sdf_siren' and density 'relu' do not match"),
    (lambda: with_component(pipeline_preset("pigan-tiny"), "density", "sdf_sigmoid"),
     r"decoder 'siren' and density 'sdf_sigmoid' do not match"),
    # the FiLM mapping's ws cannot drive a StyleGAN upsampler
    (lambda: with_component(pipeline_preset("pigan-tiny"), "upsampler", "stylegan"),
     r"upsampler 'stylegan' needs StyleGAN2 ws"),
    (lambda: with_component(pipeline_preset("giraffe-tiny"), "decoder", "osg"),
     r"the 'giraffe_scene' embedder needs a decoder that reads codes from z, not 'osg'"),
    (lambda: with_component(pipeline_preset("pigan-tiny"), "embedder", "voxels"),
     r"unknown embedder 'voxels'; expected one of coordinate, triplane"),
    (lambda: with_component(pipeline_preset("pigan-tiny"), "camera", "prior"), r"unknown component 'camera'"),
    (lambda: with_component(pipeline_preset("stylesdf-tiny"), "embedder", "triplane"),
     r"decoder 'sdf_siren' reads 3-d coordinates: use the 'coordinate' or 'manifold' or 'giraffe_scene' embedder, "
     r"not 'triplane'"),
    (lambda: pipeline_preset("nerf-tiny"), r"unknown pipeline preset 'nerf-tiny'"),
])
def test_invalid_combinations_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_dict_round_trip_and_unknown_keys():
    config = with_component(pipeline_preset("eg3d-tiny"), "embedder", "volume")
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown PipelineConfig keys: colour"):
        PipelineConfig.from_dict({**config.to_dict(), "colour": 1})


# --- 6. batch tools on pipeline checkpoints ----------------------------------------------------------

def quiet(_: str) -> None:
    pass


@pytest.mark.parametrize("name", ["gram-tiny", "stylesdf-tiny", "giraffe-tiny"])
def test_batch_tools_on_a_pipeline_checkpoint(name, tmp_path):
    import trimesh

    from renderers import batch as B
    from renderers.video import read_video_info

    path = tmp_path / f"{name}.safetensors"
    save_generator(fresh(name), path)
    G, label = B.load_model(str(path), "cpu")
    assert type(G) is PipelineGenerator and label == path.name
    R = G.img_resolution

    views = B.parse_views("3")
    paths = B.run_images(G, [0, 5], views, tmp_path / "images", depth=True, normals=True, grid=True,
                         progress=False, log=quiet)
    assert [p.name for p in paths] == ["seed0000.png", "seed0005.png", "grid.png"]
    strips = [np.asarray(Image.open(p)) for p in paths[:2]]
    assert all(s.shape == (3 * R, 3 * R, 3) for s in strips)  # rgb, depth, normals rows x 3 views
    assert np.array_equal(np.asarray(Image.open(paths[2])), np.concatenate(strips, axis=0))
    assert not np.array_equal(strips[0], strips[1])

    result = B.run_video(G, [1], tmp_path / "orbit.mp4", frames=3, fps=10, mode="side", progress=False, log=quiet)
    info = read_video_info(result.path)
    assert (info["frames"], info["size"], info["codec"]) == (3, (2 * R, R), "h264")

    messages = []
    # (seed 3: the random SDF of stylesdf-tiny's seed 2 is negative in the whole box: no surface)
    (mesh_path, mesh), = B.run_mesh(G, [3], tmp_path / "meshes", res=MESH_RES, progress=False, log=messages.append)
    assert mesh_path.name == "seed0003.ply" and mesh_path.stat().st_size > 0
    loaded = trimesh.load(mesh_path, process=False)
    assert len(loaded.faces) == len(mesh.faces) > 0
    half = G.config.points.box_side / 2
    assert np.all(np.abs(loaded.vertices) <= half + 1e-5)
    renderer = GeneratorRenderer(G)
    _, scene = renderer.identity_planes(B.seed_request(3))
    level = renderer.surface_level(scene)
    assert mesh.level == pytest.approx(level)
    assert any(m.startswith(f"seed 3: level {level:.4g} (automatic)") for m in messages)
    if name == "stylesdf-tiny":
        assert level == 0.0
    if name == "gram-tiny":
        assert level in [float(v) for v in G.embedder.levels]
